"""The words of a history query (eventquery.py), shared by the CLI and the HTTP bridge."""

from __future__ import annotations

import time

import pytest

from secmon import eventquery
from secmon.eventquery import QueryError
from secmon.protocol import messages as m

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", NOW - 30),
        ("15m", NOW - 900),
        ("2h", NOW - 7200),
        ("7d", NOW - 7 * 86400),
        ("1w", NOW - 604800),
        ("1.5h", NOW - 5400),
        ("2026-11-29T10:00:00Z", 1_795_946_400.0),
        ("2026-11-29T11:00:00+01:00", 1_795_946_400.0),
        ("2026-11-29", time.mktime((2026, 11, 29, 0, 0, 0, 0, 0, -1))),  # no zone: local time
    ],
)
def test_times_are_iso_or_how_long_ago(text, expected):
    assert eventquery.parse_time(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "yesterday", "-5m", "5 m", "5y", "2026-13-01"])
def test_what_is_no_time_says_so_naming_the_parameter(text):
    with pytest.raises(QueryError, match=r"^since: .* is neither an ISO 8601 time nor a duration"):
        eventquery.parse_point(text, NOW, "since") if text.strip() else eventquery.parse_time(text, NOW, "since")


def test_digits_are_a_sequence_anything_else_a_time():
    assert eventquery.parse_point("12345", NOW, "since") == (12345, None)
    assert eventquery.parse_point("1h", NOW, "since") == (None, NOW - 3600)


@pytest.mark.parametrize(("text", "seconds"), [("1m", 60), ("5m", 300), ("1h", 3600), ("1d", 86400), ("90", 90)])
def test_buckets(text, seconds):
    assert eventquery.parse_bucket(text) == seconds


@pytest.mark.parametrize(("text", "message"), [("0", "at least 1 second"), ("soon", "is not a duration"),
                                               ("inf", "at least 1 second"), ("nan", "at least 1 second")])  # fmt: skip
def test_bad_buckets(text, message):
    with pytest.raises(QueryError, match=rf"^bucket: .*{message}"):
        eventquery.parse_bucket(text)


def test_limits_flags_and_sources():
    assert eventquery.parse_limit("10000") == 10000
    for bad in ("0", "10001", "-1", "1.5", ""):
        with pytest.raises(QueryError, match=r"^limit: must be a whole number from 1 to 10000"):
            eventquery.parse_limit(bad)
    assert [eventquery.parse_flag(t, "failures") for t in ("1", "TRUE", "yes", "0", "false", "")] == [
        True, True, True, False, False, False,
    ]  # fmt: skip
    with pytest.raises(QueryError, match=r"^failures: must be 1/true or 0/false"):
        eventquery.parse_flag("maybe", "failures")
    assert eventquery.check_source(" 10.0.0.0/8 ") == "10.0.0.0/8"
    assert eventquery.check_source("gw.example.net") == "gw.example.net"  # a name sshd logged is matched as written
    for bad in ("10.0.0.0/33", "2001:db8::/129", "fe80::zz", "a/b"):
        with pytest.raises(QueryError, match=r"^source: .* is not an IP address or CIDR network"):
            eventquery.check_source(bad)


def test_the_whole_filter():
    query = eventquery.event_filter(
        now=NOW, since="1h", until="99", nodes=["alpha", " ", "3"], kinds=["su_failed"], user="root",
        source="192.0.2.0/24", failures=True,
    )  # fmt: skip
    assert query == m.EventFilter(
        since_time=NOW - 3600, until_seq=99, nodes=["alpha", "3"], kinds=["su_failed"], user="root",
        source="192.0.2.0/24", failures=True,
    )  # fmt: skip
