"""Telegram HTML for event context, every notice kind, digests and mute rules, with plain calls.

Hostile text goes in every field that came from a server or a person (GeoIP names, mute
reasons, who, labels, user names); the HTML must stay valid and show it as typed.
"""

from __future__ import annotations

from datetime import UTC

import pytest
from notice_samples import GEO, HOSTILE, T, every_notice, login, rule
from test_messages import visible

from secmon.protocol import kinds as k
from secmon.protocol import messages as m
from secmon.protocol import notices
from secmon.quiet import Digest
from secmon_telegram import format as fmt


def test_every_notice_kind_has_a_message():
    shown = {kind: visible(fmt.notice_message(n, UTC)) for kind, n in every_notice().items()}
    assert set(shown) == notices.NOTICE_KINDS
    assert shown[notices.NODE_DOWN].splitlines() == [
        "🔴 Node down",
        "Node: ok #2 (10.0.0.2)",
        "Silent since 2025-11-29 02:07:56 (more than 1 min)",
        "At 2025-11-29 02:09:01",
    ]
    assert "Away 5 min 12 s" in shown[notices.NODE_BACK]
    assert "Delivered 4 events written while away" in shown[notices.NODE_BACK]
    assert "Collector: auth\nError: ok" in shown[notices.COLLECTOR_FAILED]
    assert shown[notices.COLLECTOR_OK].startswith("✅ Collector working again\nNode: ok #2")
    added = shown[notices.MUTE_ADDED]
    assert "Rule #3: 203.0.113.0/24 user:root" in added and "until 2025-11-29 04:09:01 · reason: ok" in added
    assert "By: ok" in added
    assert "By: the hub (expired)" in shown[notices.MUTE_EXPIRED]
    failing = shown[notices.SOURCE_FAILING]
    assert "Source: 203.0.113.9\nWhere: ok (DE), ok · AS64496 ok" in failing
    assert "30 failures on 3 nodes, 2 users tried" in failing and "Nodes: ok, web-2, web-3" in failing
    command = shown[notices.COMMAND_RUN]
    assert command.startswith("⚠️ Command run\nLabel: ok on ok\nBy: telegram:42 @ok via ok (uid 1000)")
    assert "ok: success\ndb-1: failure (exit 1)" in command


def test_a_source_gone_quiet_and_a_command_that_ran_nowhere():
    failing = every_notice()[notices.SOURCE_FAILING]
    ended = m.NoticeUpdate(10, T, notices.SOURCE_FAILING, source=m.SourceFailures("203.0.113.9", 130, 3, 12, T, T,
                           ended=True))  # fmt: skip
    assert visible(fmt.notice_message(ended, UTC)).startswith("✅ Source quiet again\nSource: 203.0.113.9")
    assert "counted, not sent" in visible(fmt.notice_message(failing, UTC))
    nowhere = m.NoticeUpdate(11, T, notices.COMMAND_RUN, command=m.CommandRecord(6, T, m.Requester(0, "root"),
                             "uptime", "nosuch", [], T))  # fmt: skip
    text = visible(fmt.notice_message(nowhere, UTC))
    assert "Ran nowhere" in text and "By: root (uid 0)" in text


@pytest.mark.parametrize("kind", sorted(notices.NOTICE_KINDS))
def test_hostile_text_in_every_notice_is_escaped(kind):
    html = fmt.notice_message(every_notice(HOSTILE)[kind], UTC)
    assert "<script>" not in html and "<b>x</b>" not in html
    assert HOSTILE in visible(html)


def test_event_context_geo_and_flags_lead_the_message():
    context = m.EventContext(GEO, [notices.NEW_HOST, notices.NEW_ASN, notices.NEW_COUNTRY], after_failures=12)
    lines = visible(fmt.event_message(login(context), UTC)).splitlines()
    assert lines == [
        "🆕 New host, ASN, country for alice",
        "⚠️ After 12 failures from this source",
        "✅ SSH login accepted alice from 203.0.113.5:22 (publickey)",
        "🌍 Germany (DE), Berlin · AS64496 Example Net",
        "web-1 (10.0.0.2) · 2025-11-29 02:09:01",
    ]
    plain = visible(fmt.event_message(login(m.EventContext(GEO)), UTC)).splitlines()
    assert plain[0].startswith("✅ SSH login accepted") and "🌍 Germany (DE), Berlin · AS64496 Example Net" in plain


def test_hostile_geo_and_user_names_are_escaped():
    geo = m.SourceContext("D<", HOSTILE, HOSTILE, 1, HOSTILE)
    html = fmt.event_message(login(m.EventContext(geo, [notices.NEW_HOST]), user=HOSTILE), UTC)
    text = visible(html)
    assert f"🆕 New host for {HOSTILE}" in text and f"{HOSTILE} (D<), {HOSTILE} · AS1 {HOSTILE}" in text
    assert "<script>" not in html


def test_digest_counts_tops_and_details_within_the_limit():
    digest = Digest("22:00-07:00", T, T + 3600)
    for i in range(300):
        digest.add(login(kind=k.SSH_FAILED_PASSWORD, host=f"198.51.100.{i % 4}", user=HOSTILE))
    digest.add(every_notice(HOSTILE)[notices.COLLECTOR_FAILED])
    html = fmt.digest_message(digest, UTC)
    assert len(html) <= fmt.MESSAGE_LIMIT and "<script>" not in html
    text = visible(html)
    assert text.startswith("🌙 Quiet hours 22:00-07:00: 301 messages held back (300 auth events) since 2025-11-29")
    assert "• SSH password failed: 300\n• Collector failing: 1" in text
    assert "Top sources: 198.51.100.0 (75), 198.51.100.1 (75)" in text
    assert "Nodes: web-1 (300)" in text
    assert f"SSH password failed {HOSTILE} from 198.51.100.0 on web-1" in text
    assert "… and 289 more" in text


def test_every_outgoing_item_has_a_message():
    assert fmt.message(login(), UTC) == fmt.event_message(login(), UTC)
    down = every_notice()[notices.NODE_DOWN]
    assert fmt.message(down, UTC) == fmt.notice_message(down, UTC)
    digest = Digest("22:00-07:00", T, T)
    digest.add(login())
    assert fmt.message(digest, UTC) == fmt.digest_message(digest, UTC)


def test_mute_rules_listed_escaped():
    assert fmt.mute_list([], UTC) == "No mute rules: every event is pushed."
    html = fmt.mute_list([rule(reason=HOSTILE, by=HOSTILE), rule(id=4, source=None, expires=None, reason="")], UTC)
    text = visible(html)
    assert text.splitlines() == [
        "🔇 2 mute rules",
        f"#3 203.0.113.0/24 user:root · until 2025-11-29 04:09:01 · reason: {HOSTILE} · by {HOSTILE}",
        "#4 user:root · no expiry · by alice (uid 1000)",
    ]


def test_a_long_mute_list_is_cut_between_rules_even_when_a_matcher_holds_a_newline():
    """A rule saved before the hub refused control characters can hold a newline inside its <code>: the cut
    to Telegram's limit falls between whole rules, never inside one, wherever that rule sits."""
    filler = [m.MuteRule(n, None, f"u{n}", None, None, T, None, "x" * 60, "cli") for n in range(1, 200)]
    for position in range(30, 45):
        for pad in range(0, 120, 7):
            odd = m.MuteRule(999, None, "a" * pad + "\n" + "b" * 200, None, None, T, None, "", "")
            html = fmt.mute_list([*filler[:position], odd, *filler[position:]], UTC)
            assert len(html) <= fmt.MESSAGE_LIMIT
            text = visible(html)  # every tag known and closed
            kept, note = text.rsplit("\n", 1)
            assert note == "… cut to Telegram's limit" and kept.endswith((" · by cli", "b · no expiry")), kept[-300:]
