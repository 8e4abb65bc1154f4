"""Discord embeds and escaping, with plain function calls."""

from __future__ import annotations

import pytest

from secmon.folding import Notice
from secmon.protocol import kinds as k
from secmon.protocol import messages as m
from secmon_discord.format import FIELD_LIMIT, embed, escape, payload


def notice(kind=k.SSH_ACCEPTED, user="alice", host="192.0.2.7", **extra) -> Notice:
    event = m.AuthEvent(1, 1764382141.0, kind, "sshd", 4242, user, host, 5151, "publickey", **extra)
    return Notice(m.AuthUpdate(7, 3, "web-1", "10.0.0.3", event))


def field(e, name):
    return next(f["value"] for f in e["fields"] if f["name"] == name)


def test_accepted_login_embed_has_every_detail():
    e = embed(notice())
    assert e["title"] == "✅ SSH login accepted"
    assert e["timestamp"] == "2025-11-29T02:09:01.000Z"
    assert field(e, "User") == "alice"
    assert field(e, "From") == "192.0.2.7\\:5151"
    assert field(e, "Method") == "publickey"
    assert field(e, "PID") == "4242"
    assert field(e, "Node") == "web\\-1 \\(10.0.0.3\\)"


@pytest.mark.parametrize("kind", sorted(k.FAILURE_KINDS))
def test_failures_are_marked(kind):
    e = embed(notice(kind))
    assert e["title"].startswith("❌ ") and e["color"] == 0xD2352C


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("@everyone", "@\u200beveryone"),
        ("<@123456>", "\\<@\u200b123456\\>"),
        (
            "**bold** _x_ `code` ~~s~~ ||spoiler||",
            "\\*\\*bold\\*\\* \\_x\\_ \\`code\\` \\~\\~s\\~\\~ \\|\\|spoiler\\|\\|",
        ),
        ("[link](http://evil)", "\\[link\\]\\(http\\://evil\\)"),
        ("", "\u200b"),
    ],
)
def test_escaping(raw, shown):
    assert escape(raw) == shown


def test_long_values_are_cut_to_discords_limit():
    assert len(escape("x" * 5000)) == FIELD_LIMIT


def test_payload_disables_every_mention():
    body = payload([embed(notice(user="@everyone"))], "Security alert")
    assert body["allowed_mentions"] == {"parse": []}
    assert body["content"] == "Security alert"
    assert "@everyone" not in str(body["embeds"])


def test_folded_burst_says_how_many():
    n = notice(k.SSH_INVALID_USER)
    folded = Notice(n.update, 499, 1764382000.0, ["admin", "oracle"], [k.SSH_INVALID_USER])
    e = embed(folded)
    assert e["title"] == "❌ 499 more failures from 192.0.2.7"
    assert "SSH invalid user" in e["description"] and "admin, oracle …" in e["description"]
