"""Discord embeds for event context, every notice kind and digests, with plain calls.

Hostile text goes in every field a server or a person wrote; it must stay inert: markdown
escaped, mentions broken, within Discord's limits.
"""

from __future__ import annotations

import re
from datetime import UTC

import pytest
from notice_samples import GEO, HOSTILE, T, every_notice, login

from secmon.protocol import kinds as k
from secmon.protocol import messages as m
from secmon.protocol import notices
from secmon.quiet import Digest
from secmon_discord.format import (
    AMBER,
    BLUE,
    DESCRIPTION_LIMIT,
    FIELD_LIMIT,
    GREEN,
    RED,
    TITLE_LIMIT,
    digest_embed,
    embed,
    embed_for,
    notice_embed,
)  # fmt: skip


def shown(markdown: str) -> str:
    """What a reader sees: escapes undone, zero-width spaces gone."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u200b", "")


def inert(markdown: str) -> bool:
    """No live mention and no markdown character without its backslash."""
    unescaped = re.sub(r"\\.", "", markdown)
    return "@everyone" not in markdown and "<@1" not in markdown and not re.search(r"[*_`|\[\]()<>~]", unescaped)


def field(e, name):
    return next(f["value"] for f in e["fields"] if f["name"] == name)


def test_every_notice_kind_has_an_embed():
    embeds = {kind: notice_embed(n, UTC) for kind, n in every_notice().items()}
    assert set(embeds) == notices.NOTICE_KINDS
    down = embeds[notices.NODE_DOWN]
    assert down["title"] == "🔴 Node down" and down["color"] == RED
    assert shown(down["description"]).splitlines() == [
        "Node: ok #2 (10.0.0.2)",
        "Silent since 2025-11-29 02:07:56 (more than 1 min)",
        "At 2025-11-29 02:09:01",
    ]
    assert down["timestamp"] == "2025-11-29T02:09:01.000Z"
    assert embeds[notices.NODE_BACK]["title"] == "🟢 Node back" and embeds[notices.NODE_BACK]["color"] == BLUE
    assert "Away 5 min 12 s" in shown(embeds[notices.NODE_BACK]["description"])
    assert embeds[notices.SOURCE_FAILING]["color"] == AMBER
    assert "30 failures on 3 nodes, 2 users tried" in shown(embeds[notices.SOURCE_FAILING]["description"])
    assert "By: telegram:42 @ok via ok (uid 1000)" in shown(embeds[notices.COMMAND_RUN]["description"])
    assert "Rule #3: 203.0.113.0/24 user:root" in shown(embeds[notices.MUTE_ADDED]["description"])


@pytest.mark.parametrize("kind", sorted(notices.NOTICE_KINDS))
def test_hostile_text_in_every_notice_is_inert(kind):
    e = notice_embed(every_notice(HOSTILE)[kind], UTC)
    assert inert(e["description"]) and HOSTILE in shown(e["description"])
    assert len(e["description"]) <= DESCRIPTION_LIMIT and len(e["title"]) <= TITLE_LIMIT


def test_a_source_gone_quiet_is_green():
    ended = m.NoticeUpdate(10, T, notices.SOURCE_FAILING, source=m.SourceFailures("203.0.113.9", 130, 3, 12, T, T,
                           ended=True))  # fmt: skip
    e = notice_embed(ended, UTC)
    assert e["title"] == "✅ Source quiet again" and e["color"] == GREEN


def test_event_context_flags_lead_and_geo_is_a_field():
    context = m.EventContext(GEO, [notices.NEW_HOST, notices.NEW_COUNTRY], after_failures=7)
    e = embed(login(context))
    assert e["title"] == "✅ SSH login accepted" and e["color"] == AMBER
    assert shown(e["description"]).replace("**", "").splitlines() == [
        "🆕 New host, country for alice",
        "⚠️ After 7 failures from this source",
    ]
    assert e["description"].startswith("**") and field(e, "Where") == "Germany \\(DE\\), Berlin · AS64496 Example Net"
    assert "description" not in embed(login(m.EventContext(GEO))) and embed(login())["color"] == GREEN


def test_hostile_geo_and_user_names_are_inert():
    geo = m.SourceContext("DE", HOSTILE, HOSTILE, 1, HOSTILE)
    e = embed(login(m.EventContext(geo, [notices.NEW_HOST]), user=HOSTILE))
    assert inert(field(e, "Where")) and HOSTILE in shown(field(e, "Where"))
    flag = e["description"].removeprefix("**").removesuffix("**")
    assert inert(flag) and shown(flag) == f"🆕 New host for {HOSTILE}"


def test_digest_embed_counts_tops_and_details_within_limits():
    digest = Digest("22:00-07:00", T, T + 3600)
    for i in range(300):
        digest.add(login(kind=k.SSH_FAILED_PASSWORD, host=f"198.51.100.{i % 4}", user=HOSTILE))
    digest.add(every_notice(HOSTILE)[notices.MUTE_ADDED])
    e = digest_embed(digest, UTC)
    assert e["title"].startswith("🌙 Quiet hours 22:00-07:00: 301 messages held back (300 auth events)")
    assert shown(field(e, "Held, per kind")) == "SSH password failed: 300\nMute rule added: 1"
    assert shown(field(e, "Top sources")).startswith("198.51.100.0 (75), 198.51.100.1 (75)")
    assert shown(field(e, "Nodes")) == "web-1 (300)"
    details = field(e, "First held")
    *held, more = details.splitlines()
    assert held and all(inert(line) for line in held) and HOSTILE in shown(held[0])
    assert more == f"… and {301 - len(held)} more"
    assert all(len(f["value"]) <= FIELD_LIMIT for f in e["fields"])
    assert embed_for(digest, UTC) == e and embed_for(login(), UTC) == embed(login())
