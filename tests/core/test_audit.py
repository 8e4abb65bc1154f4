"""hub/audit.py and hub/noticelog.py: the command records and notices kept, in memory and in the state dir."""

from __future__ import annotations

import sqlite3

import pytest

from secmon.errors import ConfigError, StateCorrupt
from secmon.hub.audit import DATABASE, CommandAudit
from secmon.hub.noticelog import NoticeLog
from secmon.protocol import messages as m
from secmon.protocol import notices
from secmon.protocol.codec import MAX_FRAME, encode, encode_body
from secmon.protocol.queries import MAX_LIMIT

ALICE = m.Requester(1000, "alice")
BOT = m.Requester(998, "secmon", "telegram:42 @alice")


def test_a_record_finishes_when_every_node_has_answered():
    audit = CommandAudit(100)
    record = audit.open(BOT, "uptime", "-", [(1, "web1"), (2, "db1")], 10.0)
    assert record.id == 1 and record.finished is None and record.outcomes == []
    assert audit.outcome(record.id, 2, m.SUCCESS, 0, 11.0) is None  # db1 answered, web1 not yet
    (shown,), more = audit.records(None, 10)
    assert not more and shown.finished is None and shown.outcomes == [m.CommandOutcome(2, "db1", m.SUCCESS, 0, 11.0)]
    done = audit.outcome(record.id, 1, m.FAILURE, 3, 12.5)
    assert done is not None and done.finished == 12.5 and done.requester == BOT
    assert done.outcomes == [
        m.CommandOutcome(1, "web1", m.FAILURE, 3, 12.5),
        m.CommandOutcome(2, "db1", m.SUCCESS, 0, 11.0),
    ]
    assert audit.outcome(record.id, 1, m.SUCCESS, 0, 13.0) is None  # once per node
    assert audit.records(None, 10)[0] == [done]


def test_a_request_that_ran_nowhere_is_finished_at_once_with_no_outcomes():
    audit = CommandAudit(100)
    record = audit.open(ALICE, "uptime", "no-such-node", [], 20.0)
    assert record.finished == 20.0 and record.outcomes == []
    assert audit.outcome(record.id, 1, m.SUCCESS, 0, 21.0) is None


def test_records_are_bounded_and_queried_latest_first_by_time():
    audit = CommandAudit(3)
    for n in range(5):
        audit.open(ALICE, f"l{n}", "-", [], 100.0 + n)
    records, more = audit.records(None, 10)
    assert [r.label for r in records] == ["l2", "l3", "l4"] and not more  # the oldest two left
    records, more = audit.records(None, 2)
    assert [r.label for r in records] == ["l3", "l4"] and more
    records, more = audit.records(103.0, 10)
    assert [r.label for r in records] == ["l3", "l4"] and not more


def test_records_and_ids_survive_a_restart_in_the_state_dir(tmp_path):
    audit = CommandAudit(100, tmp_path)
    first = audit.open(ALICE, "uptime", "web1", [(1, "web1")], 10.0)
    audit.outcome(first.id, 1, m.SUCCESS, 0, 11.0)
    running = audit.open(BOT, "df", "-", [(1, "web1"), (2, "web2")], 12.0)  # still running when the hub stops
    audit.outcome(running.id, 2, m.SUCCESS, 0, 12.5)
    audit.close()
    again = CommandAudit(100, tmp_path, now=20.0)
    records, _ = again.records(None, 10)
    assert [(r.id, r.label, r.requester, r.finished) for r in records] == [
        (1, "uptime", ALICE, 11.0),
        (2, "df", BOT, 20.0),  # finished at the next start: web1's answer will never come
    ]
    assert [(o.serial, o.status) for o in records[1].outcomes] == [(2, m.SUCCESS)]
    assert again.open(ALICE, "w", "-", [], 13.0).id == 3  # ids are never reused
    again.close()
    assert CommandAudit(100, tmp_path, now=30.0).records(None, 10)[0][1].finished == 20.0  # once


def test_an_unreadable_audit_database_is_one_line(tmp_path):
    (tmp_path / DATABASE).write_bytes(b"not a database, not at all" * 100)
    with pytest.raises((ConfigError, StateCorrupt)) as caught:
        CommandAudit(100, tmp_path)
    assert str(tmp_path / DATABASE) in str(caught.value) and "\n" not in str(caught.value)


def notice(seq: int, time: float) -> m.NoticeUpdate:
    node = m.NodeRef(1, "web1", "10.0.0.1")
    return m.NoticeUpdate(seq, time, notices.NODE_DOWN, node=node, outage=m.Outage(time, 60))


def test_notices_are_kept_bounded_and_survive_a_restart(tmp_path):
    log = NoticeLog(3, tmp_path)
    for n in range(5):
        log.add(notice(1000 + n * 7, 50.0 + n))
    found, more = log.latest(None, 10)
    assert [n.seq for n in found] == [1014, 1021, 1028] and not more
    log.close()
    again = NoticeLog(3, tmp_path)
    found, more = again.latest(None, 2)
    assert [n.seq for n in found] == [1021, 1028] and more
    assert found[-1] == notice(1028, 54.0)
    assert [n.seq for n in again.latest(53.0, 10)[0]] == [1021, 1028]
    again.close()
    rows = sqlite3.connect(tmp_path / "notices.sqlite3").execute("SELECT count(*) FROM notices").fetchone()
    assert rows[0] >= 3


def test_a_full_answer_of_notices_or_records_fits_in_a_frame():
    """10,000 command records of a 60-node fleet encode to about 58 MB: an answer keeps the newest
    that fit its budget, well inside a frame, and says there are more."""
    outcomes = [m.CommandOutcome(s, f"web-{s:03d}.eu-central.example.org", m.SUCCESS, 0, 1.0) for s in range(1, 61)]
    log, audit = NoticeLog(MAX_LIMIT), CommandAudit(MAX_LIMIT)
    for n in range(MAX_LIMIT):
        record = m.CommandRecord(n + 1, 1.0 + n, BOT, "uptime", "-", outcomes, 2.0 + n)
        log.add(m.NoticeUpdate(n + 1, 2.0 + n, notices.COMMAND_RUN, command=record))
        audit.kept.put(record.id, record.time, encode_body(m.AuditList(0, [record])))
    found, more = log.latest(None, MAX_LIMIT)
    answer = encode(m.NoticeList(1, MAX_LIMIT, found, more))
    assert more and len(answer) <= MAX_FRAME and 1_000 < len(found) < MAX_LIMIT
    assert found[-1].seq == MAX_LIMIT and [n.seq for n in found] == list(range(found[0].seq, MAX_LIMIT + 1))
    records, more = audit.records(None, MAX_LIMIT)
    answer = encode(m.AuditList(1, records, more))
    assert more and len(answer) <= MAX_FRAME and records[-1].id == MAX_LIMIT and 1_000 < len(records) < MAX_LIMIT


def test_a_row_with_no_time_is_left_out_not_a_failure_of_every_query(tmp_path):
    log = NoticeLog(10, tmp_path)
    log.add(notice(5, 50.0))
    log.close()
    with sqlite3.connect(tmp_path / "notices.sqlite3") as db:  # a damaged or doctored file
        db.execute("INSERT INTO notices VALUES (3, NULL, ?)", (b"x",))
        db.execute("INSERT INTO notices VALUES (4, 'yesterday', ?)", (b"x",))
    again = NoticeLog(10, tmp_path)
    assert [n.seq for n in again.latest(10.0, 10)[0]] == [5] and [n.seq for n in again.latest(None, 10)[0]] == [5]
    again.close()
