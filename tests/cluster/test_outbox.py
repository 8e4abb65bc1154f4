"""The outbox, with plain calls: order, bounds, windows and batches, in memory and in SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from secmon.hub.outbox import CONTROL_RESERVE, DATABASE, Outbox, Pending


def item(n: int) -> Pending:
    return Pending(f"n1:{n}", f"payload {n}".encode(), "n1", n)


def ids(items: list[Pending]) -> list[str]:
    return [i.msg_id for i in items]


def rows_on_disk(directory: Path) -> list[str]:
    with sqlite3.connect(directory / DATABASE) as db:  # another connection: sees only what is committed
        return [r[0] for r in db.execute("SELECT msg_id FROM outbox ORDER BY row")]


@pytest.fixture(params=["memory", "sqlite"])
def outbox(request, tmp_path: Path):
    box = Outbox(100, tmp_path if request.param == "sqlite" else None)
    yield box
    box.close()


def test_peek_gives_a_window_after_what_is_in_flight_and_drops_nothing(outbox):
    for n in range(1, 11):
        assert outbox.put(item(n))
    assert ids(outbox.peek(4)) == ["n1:1", "n1:2", "n1:3", "n1:4"]
    assert ids(outbox.peek(4, skip=8)) == ["n1:9", "n1:10"]  # only what there is
    assert outbox.peek(4, skip=10) == []
    assert len(outbox) == 10


def test_pop_drops_the_oldest_in_order_and_returns_them(outbox):
    for n in range(1, 8):
        outbox.put(item(n))
    assert ids(outbox.pop(3)) == ["n1:1", "n1:2", "n1:3"]
    assert ids(outbox.pop()) == ["n1:4"]
    assert outbox.pop(0) == []
    assert ids(outbox.items()) == ["n1:5", "n1:6", "n1:7"]
    with pytest.raises(IndexError):
        outbox.pop(4)
    assert len(outbox) == 3


def test_a_full_outbox_takes_nothing_more():
    box = Outbox(3)
    assert [box.put(item(n), control=True) for n in range(1, 6)] == [True, True, True, False, False]
    box.pop(2)
    assert box.put(item(6), control=True)
    assert ids(box.items()) == ["n1:3", "n1:6"]


def test_a_batch_of_puts_is_committed_once_when_it_ends(tmp_path: Path):
    box = Outbox(100, tmp_path)
    with box.batch():
        for n in range(1, 6):
            box.put(item(n))
        assert rows_on_disk(tmp_path) == []  # not yet committed
        assert len(box) == 5
    assert rows_on_disk(tmp_path) == [f"n1:{n}" for n in range(1, 6)]
    box.put(item(6))  # outside a batch: committed at once
    assert rows_on_disk(tmp_path)[-1] == "n1:6"
    box.close()


def test_a_failed_batch_keeps_none_of_its_puts(tmp_path: Path):
    box = Outbox(100, tmp_path)
    box.put(item(1))
    with pytest.raises(RuntimeError), box.batch():
        box.put(item(2))
        box.put(item(3))
        raise RuntimeError("the read failed half way")
    assert ids(box.items()) == ["n1:1"]
    assert rows_on_disk(tmp_path) == ["n1:1"]
    box.close()


def test_pop_commits_the_dropped_rows_at_once_and_a_restart_keeps_the_rest(tmp_path: Path):
    box = Outbox(1000, tmp_path)
    with box.batch():
        for n in range(1, 301):
            box.put(item(n))
    box.pop(256)
    assert len(rows_on_disk(tmp_path)) == 44
    box.put(item(301))
    box.close()
    again = Outbox(1000, tmp_path)
    assert ids(again.items()) == [f"n1:{n}" for n in range(257, 302)]
    assert again.items()[0] == Pending("n1:257", b"payload 257", "n1", 257, again.items()[0].row)
    assert ids(again.pop(2)) == ["n1:257", "n1:258"]
    again.close()
    assert rows_on_disk(tmp_path)[0] == "n1:259"


def test_a_batch_in_memory_is_plain_puts():
    box = Outbox(2)
    with box.batch():
        assert box.put(item(1), control=True) and box.put(item(2), control=True)
        assert not box.put(item(3))
    assert ids(box.items()) == ["n1:1", "n1:2"]


def test_events_and_joins_leave_a_reserve_that_only_control_messages_take():
    box = Outbox(8)
    assert box.reserve == 4  # half of a small outbox; CONTROL_RESERVE of a large one
    assert [box.put(item(n)) for n in range(1, 6)] == [True, True, True, True, False]
    assert not box.room()
    assert [box.put(item(n), control=True) for n in range(6, 11)] == [True, True, True, True, False]
    assert len(box) == 8
    assert Outbox(10_000).reserve == CONTROL_RESERVE
