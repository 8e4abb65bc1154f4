"""Telegram HTML, with plain function calls."""

from __future__ import annotations

from datetime import UTC
from html.parser import HTMLParser

import pytest

from secmon.folding import Notice
from secmon.protocol import kinds as k
from secmon.protocol import messages as m
from secmon_telegram import format as fmt


class Checker(HTMLParser):
    """Telegram's HTML subset is strict: every tag must be known and closed."""

    ALLOWED = frozenset({"b", "i", "code", "pre"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.text = ""

    def handle_starttag(self, tag, attrs):
        assert tag in self.ALLOWED, tag
        self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack.pop() == tag

    def handle_data(self, data):
        self.text += data


def visible(html: str) -> str:
    checker = Checker()
    checker.feed(html)
    checker.close()
    assert checker.stack == []
    return checker.text


def event(kind=k.SSH_ACCEPTED, user="alice", host="192.0.2.7", **extra):
    e = m.AuthEvent(1, 1764382141.0, kind, "sshd", 42, user, host, 5151, "publickey", **extra)
    return Notice(m.AuthUpdate(9, 2, "web-1", "10.0.0.2", e))


def test_event_message_is_short_and_complete():
    text = visible(fmt.event_message(event(), UTC))
    assert text == "✅ SSH login accepted alice from 192.0.2.7:5151 (publickey)\nweb-1 (10.0.0.2) · 2025-11-29 02:09:01"


def test_hostile_names_are_escaped_and_shown_as_typed():
    for name in ("<b>x</b>", "&", "a&amp;b", "</code><script>"):
        html = fmt.event_message(event(k.SSH_INVALID_USER, user=name), UTC)
        assert name in visible(html)


def test_folded_burst():
    n = event(k.SSH_INVALID_USER)
    folded = Notice(n.update, 42, 1764382000.0, ["<admin>", "oracle"], [k.SSH_INVALID_USER])
    text = visible(fmt.event_message(folded, UTC))
    assert text.startswith("❌ 42 more failures from 192.0.2.7 on web-1 (10.0.0.2)")
    assert "users: <admin>, oracle …" in text


def test_long_output_is_trimmed_within_the_limit_with_a_note():
    result = m.CommandResult(1, m.SUCCESS, 0, "<&>" * 5000, serial=2)
    html = fmt.command_result(result, "web-1")
    assert len(html) <= fmt.MESSAGE_LIMIT
    text = visible(html)
    assert "output trimmed" in text and text.rstrip().endswith("not shown")


def test_node_details_show_sessions_peers_and_labels():
    node = m.NodeInfo(
        2, "web-1", "10.0.0.2", True, 1764382141.0,
        [m.Session("<root>", "pts/0", "192.0.2.1", 1764382141.0)],
        [m.WgPeer("wg0", "abcdefghijklmnop", None, None)], "ok", ["who", "wg"], ["uptime"],
    )  # fmt: skip
    text = visible(fmt.node_details(node, UTC))
    assert "🟢 connected" in text
    assert "<root> on pts/0 from 192.0.2.1 since 2025-11-29 02:09:01" in text
    assert "wg0 abcdefghijkl… no endpoint, handshake never" in text
    assert "Commands uptime" in text
    assert visible(fmt.node_list([node])) == "Nodes\n🟢 web-1 #2 10.0.0.2 · sessions: 1"


@pytest.mark.parametrize("kind", [*sorted(k.LABELS), "ssh_something_new"])
def test_telegram_and_discord_show_the_same_label(kind):
    from secmon_discord.format import embed

    notice = event(kind)
    first_line = visible(fmt.event_message(notice, UTC)).split("\n")[0]
    telegram = first_line.removeprefix("✅ ").removeprefix("❌ ").removesuffix(" alice from 192.0.2.7:5151 (publickey)")
    discord = embed(notice)["title"].removeprefix("✅ ").removeprefix("❌ ")
    assert telegram == discord == k.label(kind) != ""
