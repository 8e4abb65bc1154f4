"""The hub's event history (hub/history.py) with plain calls: filters, bounds, retention, counts, restarts."""

from __future__ import annotations

import random

import anyio
import pytest

from secmon.hub import history as h
from secmon.hub.history import BadQuery, EventHistory, Retention
from secmon.protocol import messages as m
from secmon.protocol.batches import EventOrigin, EventRun, auth_update_frames

DAY = 86_400
T0 = 1_795_996_800.0  # 2026-11-30 00:00:00 UTC, a day's start
ALPHA = EventOrigin(1, "alpha", "10.0.0.1")
BRAVO = EventOrigin(2, "bravo", "10.0.0.2")


def event(seq: int, when: float, kind: str = "ssh_failed_password", user: str | None = "root",
          host: str | None = "192.0.2.9", **more) -> dict:  # fmt: skip
    fields = {"seq": seq, "time": when, "kind": kind, "process": "sshd", "pid": 100 + seq, "user": user,
              "host": host, "port": 2000 + seq, **more}  # fmt: skip
    return {k: v for k, v in fields.items() if v is not None}


def fill(history: EventHistory, runs: list[tuple[int, EventOrigin, list[dict]]], now: float = T0 + DAY) -> int:
    """Add runs as the hub does and write them; the last sequence."""
    for first, origin, events in runs:
        history.add(first, origin, f"id-{origin.serial}", events)
    history._write(history._take(), now=now)
    return max(first + len(events) - 1 for first, _, events in runs)


@pytest.fixture(params=["memory", "disk"])
def where(request, tmp_path):
    """Where a history lives: in memory (no rollups), or in a state directory (with them)."""
    return None if request.param == "memory" else tmp_path


@pytest.fixture
def small(where) -> tuple[EventHistory, int]:
    """Ten events from two nodes over an hour, IPv4 and IPv6 sources, several kinds and users."""
    history = EventHistory(where, Retention())
    last = fill(history, [
        (100, ALPHA, [event(1, T0 + 60, host="192.0.2.9"), event(2, T0 + 120, user="admin", kind="ssh_invalid_user",
                                                                  host="192.0.2.200")]),
        (102, BRAVO, [event(1, T0 + 180, host="2001:db8::5"), event(2, T0 + 240, kind="ssh_accepted", user="deploy",
                                                                    host="198.51.100.4", method="publickey")]),
        (104, ALPHA, [event(3, T0 + 600, kind="sudo_command", user="deploy", host=None, command="/bin/ls",
                            target_user="root", tty="pts/0")]),
        (105, BRAVO, [event(3, T0 + 1200, host="2001:db8:1::9", user="oracle", kind="ssh_invalid_user")]),
        (106, ALPHA, [event(4, T0 + 1800, host="203.0.113.7"), event(5, T0 + 2400, host="gw.example.net", user="bob")]),
        (108, BRAVO, [event(4, T0 + 3000, kind="ssh_disconnected", user="deploy", host="198.51.100.4"),
                      event(5, T0 + 3500, host="::ffff:192.0.2.9")]),
    ])  # fmt: skip
    return history, last


def seqs(history: EventHistory, last: int, limit: int = 100, **filters) -> list[int]:
    events, _more = history.select_events(m.EventFilter(**filters), limit, last)
    return [e.seq for e in events]


def test_an_event_comes_back_as_it_was_broadcast(small):
    history, last = small
    events, more = history.select_events(m.EventFilter(), 100, last)
    assert not more and [e.seq for e in events] == list(range(100, 110))
    sudo = events[4]
    assert sudo == m.StoredEvent(104, 1, "alpha", "10.0.0.1", m.AuthEvent(
        seq=3, time=T0 + 600, kind="sudo_command", process="sshd", pid=103, user="deploy", command="/bin/ls",
        target_user="root", tty="pts/0", port=2003))  # fmt: skip
    assert events[3].event.method == "publickey" and events[3].event.host == "198.51.100.4"


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"nodes": ["alpha"]}, [100, 101, 104, 106, 107]),
        ({"nodes": ["2"]}, [102, 103, 105, 108, 109]),  # a serial
        ({"nodes": ["10.0.0.2", "alpha"]}, list(range(100, 110))),  # an address, or a hostname
        ({"kinds": ["ssh_invalid_user", "ssh_accepted"]}, [101, 103, 105]),
        ({"user": "deploy"}, [103, 104, 108]),
        ({"failures": True}, [100, 101, 102, 105, 106, 107, 109]),
        ({"since_seq": 105}, [106, 107, 108, 109]),  # exclusive
        ({"until_seq": 102}, [100, 101, 102]),  # inclusive
        ({"since_time": T0 + 600, "until_time": T0 + 1800}, [104, 105, 106]),  # both inclusive
        ({"source": "192.0.2.0/24"}, [100, 101]),
        ({"source": "192.0.2.9"}, [100]),
        ({"source": "2001:db8::/32"}, [102, 105]),
        ({"source": "2001:db8::/48"}, [102]),
        ({"source": "::ffff:0:0/96"}, [109]),  # an IPv4-mapped address is IPv6 as written
        ({"source": "0.0.0.0/0"}, [100, 101, 103, 106, 108]),  # every IPv4 source, no IPv6 one
        ({"source": "::/0"}, [102, 105, 109]),  # every IPv6 source, no IPv4 one
        ({"source": "gw.example.net"}, [107]),  # a name sshd logged, matched as written
        ({"user": "root", "nodes": ["bravo"], "failures": True}, [102, 109]),
        ({"nodes": ["charlie"]}, []),
    ],
)
def test_filters(small, filters, expected):
    history, last = small
    assert seqs(history, last, **filters) == expected


def test_the_latest_come_back_oldest_first_and_more_says_older_ones_match(small):
    history, last = small
    events, more = history.select_events(m.EventFilter(failures=True), 3, last)
    assert [e.seq for e in events] == [106, 107, 109] and more
    events, more = history.select_events(m.EventFilter(failures=True), 7, last)
    assert len(events) == 7 and not more


def test_nothing_after_the_sequence_asked_at(small):
    history, _ = small
    assert seqs(history, 104) == [100, 101, 102, 103, 104]
    assert seqs(history, 104, until_seq=107) == [100, 101, 102, 103, 104]


def test_what_cannot_be_answered_is_a_bad_query(small):
    history, last = small
    for limit in (0, 10_001):
        with pytest.raises(BadQuery, match=r"^limit: must be 1 to 10000"):
            history.select_events(m.EventFilter(), limit, last)
    with pytest.raises(BadQuery, match=r"^source: '10.0.0.0/40' is not an IP address"):
        history.select_events(m.EventFilter(source="10.0.0.0/40"), 10, last)
    for request, message in [
        (m.QueryStats(1, m.EventFilter(), by="colour"), "^by: must be time or one of node, kind, source, user"),
        (m.QueryStats(1, m.EventFilter(), group="user"), "^group: must be node or kind"),
        (m.QueryStats(1, m.EventFilter(), bucket=0.5), "^bucket: must be at least 1 second"),
        (m.QueryStats(1, m.EventFilter(since_time=T0 - 30 * DAY), bucket=60), "^bucket: 60 s makes 44641 buckets"),
        (m.QueryStats(1, m.EventFilter(), by="user", limit=0), "^limit: must be 1 to 1000"),
    ]:
        with pytest.raises(BadQuery, match=message):
            history.select_stats(request, last, T0 + DAY)


# --- counts ------------------------------------------------------------------------------


def test_counts_per_bucket_fill_the_gaps_with_zeros(small):
    history, last = small
    request = m.QueryStats(1, m.EventFilter(since_time=T0 - 1100, until_time=T0 + 3599), bucket=600)
    stats = history.select_stats(request, last, T0 + DAY)
    [series] = stats.series
    assert (series.key, series.start) == ("all", T0 - 1200)  # whole buckets: the first holds ``since``
    assert series.failures == [0, 0, 3, 0, 1, 1, 1, 1]
    assert series.successes == [0, 0, 1, 1, 0, 0, 0, 0]  # ssh_accepted, sudo_command
    assert series.other == [0, 0, 0, 0, 0, 0, 0, 1]  # ssh_disconnected
    empty = history.select_stats(m.QueryStats(1, m.EventFilter(since_time=T0 + 7200), bucket=600), last, T0 + 9000)
    assert [(s.key, s.failures) for s in empty.series] == [("all", [0, 0, 0, 0])]  # to the bucket holding now


def test_counts_per_node_and_kind(small):
    history, last = small
    request = m.QueryStats(1, m.EventFilter(since_time=T0), bucket=3600, group="node")
    stats = history.select_stats(request, last, T0 + 7200)
    assert [(s.key, s.failures, s.successes, s.other) for s in stats.series] == [
        ("alpha", [4, 0, 0], [1, 0, 0], [0, 0, 0]),
        ("bravo", [3, 0, 0], [1, 0, 0], [1, 0, 0]),
    ]
    request = m.QueryStats(1, m.EventFilter(since_time=T0, failures=True), bucket=3600, group="kind")
    stats = history.select_stats(request, last, T0 + 3600)
    assert [(s.key, s.failures) for s in stats.series] == [
        ("ssh_failed_password", [5, 0]),
        ("ssh_invalid_user", [2, 0]),
    ]


def test_rankings(small):
    history, last = small
    stats = history.select_stats(m.QueryStats(1, m.EventFilter(), by="source", limit=2), last, T0 + DAY)
    assert stats.rows == [
        m.StatsRow("198.51.100.4", 2, 0, 1, 1, T0 + 240, T0 + 3000),
        m.StatsRow("192.0.2.200", 1, 1, 1, 1, T0 + 120, T0 + 120),
    ]
    stats = history.select_stats(m.QueryStats(1, m.EventFilter(), by="user", limit=1), last, T0 + DAY)
    assert stats.rows == [m.StatsRow("root", 4, 4, 2, 1, T0 + 60, T0 + 3500)]
    stats = history.select_stats(m.QueryStats(1, m.EventFilter(), by="node"), last, T0 + DAY)
    assert [(r.key, r.count, r.failures, r.nodes, r.users) for r in stats.rows] == [
        ("alpha", 5, 4, 1, 4), ("bravo", 5, 3, 1, 3)
    ]  # fmt: skip


def test_the_rollups_answer_exactly_as_the_events_do(tmp_path):
    """Over days of random events, every count from the rollups equals the count from the events alone."""
    rng = random.Random(3)
    history = EventHistory(tmp_path, Retention())
    assert history.rolled_up
    nodes = [ALPHA, BRAVO, EventOrigin(3, "charlie", "10.0.0.3")]
    kinds = ["ssh_failed_password", "ssh_invalid_user", "ssh_accepted", "su_opened", "ssh_disconnected", "sudo_failure"]
    sources = ["192.0.2.1", "192.0.2.2", "198.51.100.9", "2001:db8::1", None]
    users = ["root", "admin", "deploy", None]
    seq = 1_000
    for chunk in range(40):  # a write every ~2.4 hours over 4 days
        runs = []
        for _ in range(rng.randrange(1, 30)):
            count = rng.randrange(1, 4)
            runs.append((seq, rng.choice(nodes), [
                event(seq + i, T0 + rng.uniform(chunk, chunk + 1) * 0.1 * DAY, rng.choice(kinds), rng.choice(users),
                      rng.choice(sources)) for i in range(count)]))  # fmt: skip
            seq += count
        fill(history, runs, now=T0 + 5 * DAY)
    last, now = seq - 1, T0 + 4.2 * DAY
    requests = []
    for _ in range(150):
        since = rng.choice([None, T0 + rng.uniform(-DAY, 4 * DAY)])
        until = rng.choice([None, None, (since or T0) + rng.uniform(0, 3 * DAY)])
        nodes_filter = rng.choice([[], [], ["alpha"], ["bravo", "charlie"]])
        kinds_filter = rng.choice([[], [], ["ssh_accepted", "sudo_failure"]])
        query = m.EventFilter(since_time=since, until_time=until, nodes=nodes_filter, kinds=kinds_filter,
                              failures=rng.random() < 0.3)  # fmt: skip
        bucket = rng.choice([3600, 7200, DAY, 2 * DAY, 900])
        requests.append(m.QueryStats(1, query, bucket=bucket, group=rng.choice(["", "node", "kind"])))
        requests.append(m.QueryStats(1, m.EventFilter(since_time=since, until_time=until),
                                     by=rng.choice(m.STATS_KEYS), limit=rng.choice([1, 3, 10])))  # fmt: skip
    for request in requests:
        assert history.select_stats(request, last, now) == history.select_stats(request, last, now, rollups=False), (
            request
        )


def test_in_memory_the_answers_are_those_of_the_database(tmp_path):
    """Over random events, every query read from the runs held in memory answers as SQLite's does."""
    rng = random.Random(5)
    memory, disk = EventHistory(None, Retention()), EventHistory(tmp_path, Retention())
    nodes = [ALPHA, BRAVO, EventOrigin(3, "charlie", "10.0.0.3")]
    kinds = ["ssh_failed_password", "ssh_invalid_user", "ssh_accepted", "su_opened", "ssh_disconnected", "sudo_failure"]
    sources = ["192.0.2.1", "192.0.2.200", "198.51.100.9", "2001:db8::1", "2001:db8:1::2", "gw.example.net", None]
    users = ["root", "admin", "deploy", None]
    seq, runs = 1_000, []
    for _ in range(400):
        count = rng.randrange(1, 4)
        runs.append((seq, rng.choice(nodes), [
            event(seq + i, T0 + rng.uniform(0, 3 * DAY), rng.choice(kinds), rng.choice(users), rng.choice(sources))
            for i in range(count)]))  # fmt: skip
        seq += count
    fill(memory, runs, now=T0 + 3 * DAY)
    last = fill(disk, runs, now=T0 + 3 * DAY)
    now = T0 + 3.1 * DAY
    for _ in range(200):
        since = rng.choice([None, T0 + rng.uniform(-DAY, 3 * DAY)])
        query = m.EventFilter(
            since_seq=rng.choice([None, None, rng.randrange(1_000, seq)]),
            until_seq=rng.choice([None, None, rng.randrange(1_000, seq)]),
            since_time=since,
            until_time=rng.choice([None, None, (since or T0) + rng.uniform(0, 2 * DAY)]),
            nodes=rng.choice([[], [], ["alpha"], ["2", "10.0.0.3"]]),
            kinds=rng.choice([[], [], ["ssh_accepted", "sudo_failure"]]),
            user=rng.choice([None, None, "root", "nobody"]),
            source=rng.choice([None, None, "192.0.2.0/24", "2001:db8::/32", "gw.example.net", "198.51.100.9"]),
            failures=rng.random() < 0.3,
        )
        asked = rng.choice([last, last - 50])
        limit = rng.choice([1, 5, 100])
        assert memory.select_events(query, limit, asked) == disk.select_events(query, limit, asked), query
        ranking = m.QueryStats(1, query, by=rng.choice(m.STATS_KEYS), limit=rng.choice([1, 3, 10]))
        group = rng.choice(["", "node", "kind"])
        series = m.QueryStats(1, query, bucket=rng.choice([3600, 7200, DAY, 900]), group=group)
        for request in (ranking, series):
            assert memory.select_stats(request, asked, now) == disk.select_stats(request, asked, now, rollups=False), (
                request
            )
    disk.close()


# --- retention ----------------------------------------------------------------------------


def test_events_past_their_age_leave_a_bounded_number_per_write(monkeypatch, where):
    monkeypatch.setattr(h, "TRIM_STEP", 4)
    history = EventHistory(where, Retention(days=1))
    fill(history, [(1, ALPHA, [event(i, T0 + i) for i in range(1, 11)]),
                   (11, ALPHA, [event(i, T0 + DAY + i) for i in range(11, 14)])], now=T0 + 2)  # fmt: skip
    assert history.count == 13
    history._write([], now=T0 + DAY + 11.5)  # ten are past a day: four go per write
    assert (history.count, seqs(history, 100)[0]) == (9, 5)
    history._write([], now=T0 + DAY + 11.5)
    history._write([], now=T0 + DAY + 11.5)
    assert seqs(history, 100) == [11, 12, 13] and history.count == 3
    stats = history.select_stats(m.QueryStats(1, m.EventFilter(), by="kind"), 100, T0 + 2 * DAY)
    assert [(r.key, r.count) for r in stats.rows] == [("ssh_failed_password", 3)]  # the rollups forgot them too


def test_the_oldest_leave_past_the_count(where):
    history = EventHistory(where, Retention(max_events=5))
    fill(history, [(1, ALPHA, [event(i, T0 + 100 - i) for i in range(1, 5)])])  # times run backwards
    fill(history, [(5, BRAVO, [event(i, T0 + i) for i in range(1, 5)])])
    assert history.count == 5
    if history.rolled_up:  # the oldest by time left (the rollups need that): seqs 5, 6, 7 (T0+1..3)
        assert seqs(history, 100) == [1, 2, 3, 4, 8]
    else:  # in memory, the first to arrive
        assert seqs(history, 100) == [4, 5, 6, 7, 8]


def test_a_restart_keeps_the_history(tmp_path):
    history = EventHistory(tmp_path, Retention())
    fill(history, [(10, ALPHA, [event(1, T0), event(2, T0 + 1)]), (12, BRAVO, [event(1, T0 + 2, user="x")])])
    history.add(13, ALPHA, "id-1", [event(3, T0 + 3)])  # added, not yet written: close writes it
    history.close()
    assert (tmp_path / "history.sqlite3").exists()
    again = EventHistory(tmp_path, Retention())
    assert (again.count, again.last_seq) == (4, 13)
    assert seqs(again, 100) == [10, 11, 12, 13] and seqs(again, 100, user="x") == [12]
    stats = again.select_stats(m.QueryStats(1, m.EventFilter(), by="node"), 100, T0 + DAY)
    assert [(r.key, r.count) for r in stats.rows] == [("alpha", 3), ("bravo", 1)]
    again.close()


def test_updates_the_ring_held_but_the_history_lost_are_recovered(tmp_path):
    history = EventHistory(tmp_path, Retention())
    fill(history, [(10, ALPHA, [event(1, T0)])])
    frames = [
        *auth_update_frames(ALPHA, 10, EventRun([event(1, T0)])),  # already kept
        *auth_update_frames(ALPHA, 11, EventRun([event(2, T0 + 1), event(3, T0 + 2, user="late")])),
        *auth_update_frames(BRAVO, 13, EventRun([event(1, T0 + 3)])),
    ]
    assert history.recover(frames) == 3
    events, _ = history.select_events(m.EventFilter(), 100, 100)
    assert [(e.seq, e.hostname, e.event.user) for e in events] == [
        (10, "alpha", "root"), (11, "alpha", "root"), (12, "alpha", "late"), (13, "bravo", "root")
    ]  # fmt: skip
    assert history.recover(frames) == 0


# --- the hub's side: flushes and the sequence of an answer ---------------------------------


@pytest.mark.anyio
async def test_a_query_writes_what_was_added_and_answers_up_to_the_sequence_it_was_asked_at():
    history = EventHistory(None, Retention())
    history.add(1, ALPHA, "id-1", [event(1, T0), event(2, T0 + 1)])
    history.add(3, BRAVO, "id-2", [event(1, T0 + 2)])
    last_seq, events, more = await history.events(m.EventFilter(), 10, lambda: 2)
    assert last_seq == 2 and [e.seq for e in events] == [1, 2] and not more
    stats = await history.stats(m.QueryStats(1, m.EventFilter(), by="node"), lambda: 3, T0 + DAY)
    assert [(r.key, r.count) for r in stats.rows] == [("alpha", 2), ("bravo", 1)]
    history.add(4, BRAVO, "id-2", [event(2, T0 + 3)])
    await history.flush()
    assert history.count == 4 and history.last_seq == 4


@pytest.mark.anyio
async def test_the_flusher_writes_on_its_own_and_what_is_left_when_stopped(monkeypatch, tmp_path):
    monkeypatch.setattr(h, "FLUSH_INTERVAL", 0.01)
    history = EventHistory(tmp_path, Retention())
    async with anyio.create_task_group() as tg:
        tg.start_soon(history.run_flusher)
        history.add(1, ALPHA, "id-1", [event(1, T0)])
        with anyio.fail_after(5):
            while history.count < 1:
                await anyio.sleep(0.01)
        history.add(2, ALPHA, "id-1", [event(2, T0 + 1)])
        tg.cancel_scope.cancel()
    assert history.count == 2


def test_a_flood_the_writes_cannot_follow_is_bounded(monkeypatch, caplog, tmp_path):
    monkeypatch.setattr(h, "MAX_PENDING", 5)
    history = EventHistory(tmp_path, Retention())
    for first in range(1, 13, 3):
        history.add(first, ALPHA, "id-1", [event(first + i, T0) for i in range(3)])
    assert sum(len(run[3]) for run in history._pending) == 6  # past 5 waiting, runs are not kept
    history._write(history._take())
    assert history.count == 6 and "6 events were not kept" in caplog.text


def test_a_node_query_names_a_serial_only_in_ascii_digits_that_fit(small):
    history, last = small
    assert seqs(history, last, nodes=["2"]) == [102, 103, 105, 108, 109]
    assert seqs(history, last, nodes=["²"]) == []  # a digit to Python, not a serial
    assert seqs(history, last, nodes=["9" * 30]) == []  # beyond any serial (and SQLite's integers)


def test_a_chart_from_a_sequence_starts_at_that_sequence_s_first_event(where):
    history = EventHistory(where, Retention())
    last = fill(history, [(1, ALPHA, [event(1, T0)]), (2, ALPHA, [event(2, T0 + 20 * DAY)])], now=T0 + 20 * DAY)
    request = m.QueryStats(1, m.EventFilter(since_seq=1), bucket=60)  # one event, 20 days after the oldest
    [series] = history.select_stats(request, last, T0 + 20 * DAY + 60).series
    assert series.start == T0 + 20 * DAY and sum(series.failures) == 1


@pytest.mark.anyio
@pytest.mark.parametrize("on_disk", [False, True])
async def test_an_answer_stays_within_its_byte_budget_and_says_more(on_disk, tmp_path, monkeypatch):
    monkeypatch.setattr(h, "ANSWER_BUDGET", 50_000)
    history = EventHistory(tmp_path if on_disk else None, Retention())
    command = "/usr/bin/true " + "x" * 1_000  # sudo logs whatever a user typed
    runs = [event(i, T0 + i, kind="sudo_command", command=command) for i in range(1, 201)]
    history.add(1, ALPHA, "id-1", runs)
    _, events, more = await history.events(m.EventFilter(), 200, lambda: 200)
    assert more and 0 < len(events) < 200
    assert [e.seq for e in events] == list(range(201 - len(events), 201))  # the newest kept, oldest first
    assert sum(len(e.event.command or "") for e in events) <= 50_000


# --- event context --------------------------------------------------------------------

BERLIN = m.SourceContext("DE", "Germany", "Berlin", 64496, "Example <Net>")


def test_each_event_keeps_its_context_and_a_query_returns_it(where):
    history = EventHistory(where, Retention())
    contexts = [m.EventContext(BERLIN, ["host", "asn"], 3, [2, 5]), None, m.EventContext(summarized=41)]
    history.add(10, ALPHA, "id-1", [event(1, T0), event(2, T0 + 1), event(3, T0 + 2)], contexts)
    history.add(13, BRAVO, "id-2", [event(1, T0 + 3)])
    history._write(history._take(), now=T0 + 10)
    events, _ = history.select_events(m.EventFilter(), 100, 13)
    assert [e.context for e in events] == [*contexts, None]
    events, _ = history.select_events(m.EventFilter(since_seq=10, until_seq=12), 100, 13)  # cut within the run
    assert [e.context for e in events] == contexts[1:]


def test_contexts_survive_a_restart_and_the_ring_restores_them(tmp_path):
    history = EventHistory(tmp_path, Retention())
    history.add(1, ALPHA, "id-1", [event(1, T0)], [m.EventContext(new=["host"])])
    history.close()
    again = EventHistory(tmp_path, Retention())
    run = EventRun([event(2, T0 + 1), event(3, T0 + 2)])
    frames = auth_update_frames(ALPHA, 2, run, contexts=[None, m.EventContext(muted=[7])])
    assert again.recover(frames) == 2
    events, _ = again.select_events(m.EventFilter(), 10, 3)
    assert [e.context for e in events] == [m.EventContext(new=["host"]), None, m.EventContext(muted=[7])]


def test_a_history_from_before_contexts_gets_the_column(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / h.DATABASE)
    schema = h._SCHEMA[0].replace(", context BLOB)", ")")
    old.execute(schema)
    old.execute(f"INSERT INTO events VALUES ({', '.join('?' * 19)})",
                (1, 1, "alpha", "10.0.0.1", "id-1", 1, None, 1, T0, "ssh_failed_password", "sshd", None, "root",
                 None, None, None, None, None, None))  # fmt: skip
    old.commit()
    old.close()
    history = EventHistory(tmp_path, Retention())
    history.add(2, ALPHA, "id-1", [event(2, T0 + 1)], [m.EventContext(after_failures=1)])
    history._write(history._take(), now=T0 + 10)
    events, _ = history.select_events(m.EventFilter(), 10, 2)
    assert [(e.seq, e.context) for e in events] == [(1, None), (2, m.EventContext(after_failures=1))]


def test_memory_drops_keep_contexts_aligned():
    history = EventHistory(None, Retention(max_events=2))
    history.add(1, ALPHA, "id-1", [event(1, T0), event(2, T0 + 1), event(3, T0 + 2)],
                [m.EventContext(muted=[1]), m.EventContext(muted=[2]), m.EventContext(muted=[3])])  # fmt: skip
    events, _ = history.select_events(m.EventFilter(), 10, 3)
    assert [(e.seq, e.context.muted) for e in events] == [(2, [2]), (3, [3])]
