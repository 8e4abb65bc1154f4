"""The node's SQLite journal: a read's events and the position after it are kept all or not at all."""

from __future__ import annotations

import sqlite3

import pytest

from secmon.collectors.positions import FilePosition
from secmon.node.journal import DATABASE, SqliteJournal
from secmon.protocol import messages as m

FIELDS = {"time": 1.0, "process": "sshd", "pid": 7, "user": "u", "host": None, "port": None, "kind": "ssh_invalid_user"}


def events(*seqs: int) -> list[m.AuthEvent]:
    return [m.AuthEvent(seq=seq, **FIELDS) for seq in seqs]


def test_a_batch_that_fails_half_way_leaves_nothing_of_itself(tmp_path):
    before = FilePosition("/var/log/auth.log", 1, 2, 100)
    journal = SqliteJournal(tmp_path, limit=10)
    journal.add_batch(events(1, 2), before)
    journal.close()
    # The disk fills up at the batch's second event: the first one was written already.
    with sqlite3.connect(tmp_path / DATABASE) as db:
        db.execute(
            "CREATE TRIGGER full BEFORE INSERT ON events WHEN NEW.seq = 4 BEGIN SELECT RAISE(ABORT, 'disk full'); END"
        )
    db.close()
    journal = SqliteJournal(tmp_path, limit=10)
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        journal.add_batch(events(3, 4, 5), FilePosition("/var/log/auth.log", 1, 2, 400))
    assert ([e.seq for e in journal.events], journal.next_seq, journal.position) == ([1, 2], 3, before)
    journal.close()

    again = SqliteJournal(tmp_path, limit=10)
    # Neither event 3 nor the position after the batch: the lines are read again and numbered as before.
    assert ([e.seq for e in again.events], again.next_seq, again.position) == ([1, 2], 3, before)
    again.close()


def test_a_full_journal_drops_its_oldest_on_disk_as_in_memory(tmp_path):
    journal = SqliteJournal(tmp_path, limit=3)
    assert journal.add_batch(events(1, 2), None) == 0
    assert journal.add_batch(events(3, 4, 5, 6), None) == 3  # older kept ones go first, then the batch's own
    assert [e.seq for e in journal.events] == [4, 5, 6]
    journal.close()
    again = SqliteJournal(tmp_path, limit=3)
    assert ([e.seq for e in again.events], again.next_seq) == ([4, 5, 6], 7)
    again.close()


def test_acknowledged_events_are_gone_after_a_restart(tmp_path):
    journal = SqliteJournal(tmp_path, limit=10)
    journal.add_batch(events(1, 2, 3), FilePosition("/var/log/auth.log", 1, 2, 300))
    journal.acknowledge(2)
    journal.close()
    again = SqliteJournal(tmp_path, limit=10)
    assert ([e.seq for e in again.events], again.next_seq) == ([3], 4)
    again.close()
