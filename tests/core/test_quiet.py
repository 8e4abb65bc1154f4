"""Quiet hours with plain calls: the window, the gate, the digest and its bounds."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from secmon import quiet
from secmon.errors import ConfigError
from secmon.folding import Notice
from secmon.protocol import kinds as k
from secmon.protocol import messages as m
from secmon.protocol import notices
from secmon.quiet import Digest, QuietGate, QuietHours

BERLIN = ZoneInfo("Europe/Berlin")
UTC = ZoneInfo("UTC")


def at(text: str, tz=UTC) -> float:
    """Unix time of "YYYY-MM-DD HH:MM[:SS]" in ``tz``."""
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def auth(kind=k.SSH_FAILED_PASSWORD, host="203.0.113.9", user="root", node="web-1", context=None, seq=1) -> Notice:
    event = m.AuthEvent(seq, 0.0, kind, "sshd", 1, user, host, 22)
    return Notice(m.AuthUpdate(seq, 1, node, "10.0.0.1", event, context))


def notice(kind, seq=1, **fields) -> m.NoticeUpdate:
    return m.NoticeUpdate(seq, 0.0, kind, **fields)


NODE = m.NodeRef(2, "db-1", "10.0.0.2")


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [("22:00-07:00", 22 * 3600, 7 * 3600), ("0:30-6:05", 1800, 6 * 3600 + 300), ("12:00:05-12:00:09", 43205, 43209)],
)
def test_parse(text, start, end):
    hours = QuietHours.parse(text, BERLIN)
    assert (hours.start, hours.end, hours.tz, hours.text) == (start, end, BERLIN, text)


@pytest.mark.parametrize("text", ["22-07", "22:00", "24:00-07:00", "22:60-07:00", "22:00-07:00:61", "x", "07:00-07:00"])
def test_bad_ranges_are_one_line_config_errors(text):
    with pytest.raises(ConfigError, match="QUIET_HOURS must"):
        QuietHours.parse(text)


def test_timezone_words():
    assert quiet.parse_timezone("local") is None
    assert quiet.parse_timezone("Europe/Berlin") == BERLIN
    with pytest.raises(ConfigError, match="TIMEZONE must be an IANA zone"):
        quiet.parse_timezone("Mars/Base")


def test_a_window_across_midnight_in_its_zone():
    hours = QuietHours.parse("22:00-07:00", BERLIN)
    assert not hours.inside(at("2026-11-30 21:59:59", BERLIN))
    assert hours.inside(at("2026-11-30 22:00", BERLIN))
    assert hours.inside(at("2026-12-01 03:00", BERLIN))
    assert not hours.inside(at("2026-12-01 07:00", BERLIN))  # the end is not part of it
    assert not hours.inside(at("2026-11-30 20:30", UTC))  # 21:30 in Berlin
    assert hours.inside(at("2026-11-30 21:30", UTC))  # 22:30 in Berlin
    assert hours.window_end(at("2026-11-30 23:00", BERLIN)) == at("2026-12-01 07:00", BERLIN)
    assert hours.window_end(at("2026-12-01 03:00", BERLIN)) == at("2026-12-01 07:00", BERLIN)


def test_a_window_within_a_day_and_across_a_dst_change():
    hours = QuietHours.parse("01:00-05:00", BERLIN)
    assert hours.inside(at("2026-03-29 04:30", BERLIN)) and not hours.inside(at("2026-03-29 05:30", BERLIN))
    # 29 March 2026: Berlin skips from 02:00 to 03:00; the window still ends at 05:00 local
    assert hours.window_end(at("2026-03-29 01:30", BERLIN)) == at("2026-03-29 05:00", BERLIN)
    assert hours.window_end(at("2026-03-29 06:00", BERLIN)) == at("2026-03-30 05:00", BERLIN)


def test_without_hours_everything_passes():
    gate = QuietGate(None)
    item = auth()
    assert gate.offer(item, 0.0) == [item] and gate.next_due() is None and gate.flush() == []


def test_the_gate_holds_all_but_critical_and_digests_once_when_the_window_ends():
    hours = QuietHours.parse("22:00-07:00", UTC)
    gate = QuietGate(hours)
    night = at("2026-11-30 23:00")
    down = notice(notices.NODE_DOWN, node=NODE, outage=m.Outage(night - 90, 60.0))
    back = notice(notices.NODE_BACK, node=NODE, outage=m.Outage(night - 90, 60.0, 95.0, 2))
    new_login = auth(k.SSH_ACCEPTED, context=m.EventContext(new=[notices.NEW_HOST]))
    after_failures = auth(k.SSH_ACCEPTED, context=m.EventContext(after_failures=12))
    plain_login = auth(k.SSH_ACCEPTED, host="192.0.2.1", user="alice")
    failure = auth()
    mute = notice(notices.MUTE_ADDED, mute=m.MuteChange(m.MuteRule(3, user="bob"), "alice (uid 1000)"))
    for critical in (down, back, new_login, after_failures):
        assert gate.offer(critical, night) == [critical]
    for held in (plain_login, failure, mute):
        assert gate.offer(held, night + 1) == []
    assert gate.holding == 3 and gate.next_due() == at("2026-12-01 07:00")
    assert gate.due(at("2026-12-01 06:59:59")) == []
    morning = auth(k.SSH_ACCEPTED, host="192.0.2.2", user="carol")
    digest, passed = gate.offer(morning, at("2026-12-01 07:00"))
    assert passed is morning and isinstance(digest, Digest)
    assert digest.held == 3 and digest.window == "22:00-07:00" and digest.first == night + 1
    assert dict(digest.events) == {k.SSH_ACCEPTED: 1, k.SSH_FAILED_PASSWORD: 1}
    assert dict(digest.notices) == {notices.MUTE_ADDED: 1}
    assert digest.details == [plain_login, failure, mute]
    assert gate.holding == 0 and gate.due(at("2026-12-02 08:00")) == []  # once


def test_a_digest_counts_everything_but_keeps_few_details_notable_ones_first():
    digest = Digest("22:00-07:00", 0.0, 1.0)
    for i in range(500):
        digest.add(auth(host=f"198.51.100.{i % 7}", node=f"web-{i % 3}"))
    folded = auth(host="198.51.100.0")
    folded.count = 40
    digest.add(folded)
    failing = m.SourceFailures("203.0.113.9", 30, 3, 2, 0.0, 1.0, ["web-0", "web-1", "web-2"], ["root"])
    digest.add(notice(notices.SOURCE_FAILING, source=failing))
    digest.add(notice(notices.COLLECTOR_FAILED, node=NODE, collector=m.CollectorState("auth", "gone")))
    assert digest.held == 503 and digest.event_count == 540
    assert digest.events[k.SSH_FAILED_PASSWORD] == 540
    assert digest.top_sources(1) == [("198.51.100.0", 72 + 40)]  # 72 single failures and the folded 40
    assert digest.sources["203.0.113.9"] == 30
    assert digest.nodes["db-1"] == 1 and digest.nodes["web-0"] == 167
    assert len(digest.details) == quiet.MAX_DETAILS and digest.left_out == 503 - quiet.MAX_DETAILS
    kept_notices = [d for d in digest.details if type(d) is m.NoticeUpdate]
    assert [n.kind for n in kept_notices] == [notices.SOURCE_FAILING, notices.COLLECTOR_FAILED]


def test_a_digest_counts_a_botnets_sources_within_its_bound():
    digest = Digest("22:00-07:00", 0.0, 1.0)
    count = quiet.MAX_COUNTED + 250
    for i in range(count):
        digest.add(auth(host=f"10.{i // 65536}.{i // 256 % 256}.{i % 256}"))
    assert len(digest.sources) == quiet.MAX_COUNTED and digest.other_sources == 250
    assert digest.event_count == count
