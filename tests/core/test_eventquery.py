"""The words of a history query (eventquery.py), shared by the CLI and the HTTP bridge."""

from __future__ import annotations

import math
import time

import pytest

from secmon import eventquery
from secmon.eventquery import QueryError
from secmon.protocol import messages as m
from secmon.protocol import queries

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


@pytest.mark.parametrize(("text", "message"), [("0", "from 1 s to 366 days"), ("soon", "is not a duration"),
                                               ("inf", "whole seconds"), ("nan", "whole seconds"),
                                               ("1e308", "whole seconds"), ("1.5", "whole seconds"),
                                               ("367d", "whole seconds"), ("0.5s", "whole seconds")])  # fmt: skip
def test_bad_buckets(text, message):
    with pytest.raises(QueryError, match=rf"^bucket: .*{message}"):
        eventquery.parse_bucket(text)


def test_limits_flags_and_sources():
    assert eventquery.parse_limit("10000") == 10000
    for bad in ("0", "10001", "-1", "1.5", "", "²", "1" * 5000, "١٠"):
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


def test_a_bucket_is_whole_seconds_up_to_a_year():
    assert eventquery.parse_bucket("1.5m") == 90
    assert eventquery.parse_bucket("366d") == 366 * 86400


@pytest.mark.parametrize(
    "text",
    ["0001-01-01", "1969-12-31T23:59:59Z", "9999-12-31", "9" * 400 + "s", "99999999999999999d", "²", "١٢٣",
     "1" * 19],
)  # fmt: skip
def test_times_and_sequences_out_of_range_are_a_query_error(text):
    with pytest.raises(QueryError, match=r"^since: "):
        eventquery.event_filter(now=NOW, since=text)


def test_a_sequence_is_at_most_18_digits():
    assert eventquery.parse_point("9" * 18, NOW, "until") == (10**18 - 1, None)
    with pytest.raises(QueryError, match=r"^until: sequence 1111111111111111111 is too large"):
        eventquery.parse_point("1" * 19, NOW, "until")


def test_since_after_until_is_a_query_error():
    with pytest.raises(QueryError, match=r"^since: is later than until"):
        eventquery.event_filter(now=NOW, since="1h", until="2h")
    with pytest.raises(QueryError, match=r"^since: sequence 9 is after until 3"):
        eventquery.event_filter(now=NOW, since="9", until="3")
    assert eventquery.event_filter(now=NOW, since="5", until="5").since_seq == 5  # empty, but a fair question


@pytest.mark.parametrize("node", ["²", "1" * 19])
def test_digits_that_are_no_serial_are_no_node(node):
    with pytest.raises(QueryError, match=r"^node: .* is not a serial"):
        eventquery.event_filter(now=NOW, nodes=[node])


@pytest.mark.parametrize(
    ("request_", "words"),
    [
        (m.QueryEvents(1, m.EventFilter(since_time=math.nan)), "since: must be a finite time"),
        (m.QueryEvents(1, m.EventFilter(until_time=-math.inf)), "until: must be a finite time"),
        (m.QueryEvents(1, m.EventFilter(since_time=-62135596800.0)), "since: must be a time from 1970-01-01"),
        (m.QueryEvents(1, m.EventFilter(since_seq=2**64)), "since: a sequence must be a whole number"),
        (m.QueryEvents(1, m.EventFilter(until_seq=-1)), "until: a sequence must be a whole number"),
        (m.QueryEvents(1, m.EventFilter(nodes=["²"])), "node: '²' is not a serial"),
        (m.QueryEvents(1, m.EventFilter(since_time=20.0, until_time=10.0)), "since: is later than until"),
        (m.QueryEvents(1, m.EventFilter(), limit=0), "limit: must be a whole number from 1 to 10000"),
        (m.QueryEvents(1, m.EventFilter(), limit=2**70), "limit: must be a whole number from 1 to 10000"),
        (m.QueryStats(1, m.EventFilter(), bucket=1.5), "bucket: must be a whole number of seconds"),
        (m.QueryStats(1, m.EventFilter(), bucket=1e308), "bucket: must be a whole number of seconds"),
        (m.QueryStats(1, m.EventFilter(), bucket=math.nan), "bucket: must be a whole number of seconds"),
        (m.QueryStats(1, m.EventFilter(), group="user"), "group: must be node or kind"),
        (m.QueryStats(1, m.EventFilter(), by="hour"), "by: must be time or one of"),
        (m.QueryStats(1, m.EventFilter(), by="user", limit=1001), "limit: must be a whole number from 1 to 1000"),
    ],
)
def test_the_hub_checks_each_query_against_the_same_bounds(request_, words):
    assert queries.query_problem(request_).startswith(words)


def test_a_query_within_the_bounds_passes_the_hubs_check():
    query = eventquery.event_filter(now=NOW, since="1h", until="1m", nodes=["3", "alpha"])
    assert queries.query_problem(m.QueryEvents(1, query, limit=queries.MAX_LIMIT)) is None
    assert queries.query_problem(m.QueryStats(1, query, bucket=eventquery.parse_bucket("366d"))) is None
    assert eventquery.MAX_LIMIT is queries.MAX_LIMIT and eventquery.MAX_STATS_LIMIT is queries.MAX_STATS_LIMIT
