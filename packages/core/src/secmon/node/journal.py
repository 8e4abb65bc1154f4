"""The node's journal of unacknowledged auth events, kept in SQLite when asked to.

With SECMON_STATE_DIR the node keeps its id, its next event number, every
event the hub has not acknowledged and the auth source's position in
``node.sqlite3`` there, so a node that restarts (or crashes) still delivers
what it saw and reads on from where it was. A batch's events and the position
after it are written in one transaction: after a crash either both are there
(the events are resent, the lines not read again) or neither (the lines are
read again and numbered as before, so the hub, which drops sequence numbers
it has, sees each once). Without it, the same interface keeps everything in
memory for the life of the process.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections import deque
from pathlib import Path

import msgpack

from ..collectors.positions import Position, dump_position, load_position
from ..config import state_directory, state_error
from ..protocol import messages as m

_FIELDS = [name for name in m.AuthEvent.__dataclass_fields__]
DATABASE = "node.sqlite3"  # in SECMON_STATE_DIR
POSITION_KEY = "auth_position"


class MemoryJournal:
    """Unacknowledged events in memory, bounded; the oldest go first when full."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.node_id = uuid.uuid4().hex  # a restarted node numbers its events afresh
        self.next_seq = 1
        self.events: deque[m.AuthEvent] = deque()
        self.position: Position | None = None  # where the auth source was read up to

    def add_batch(self, events: list[m.AuthEvent], position: Position | None = None) -> int:
        """Keep the events of one read, and the source's position after it; returns how many
        of the oldest had to be dropped to make room."""
        self.events.extend(events)
        if events:
            self.next_seq = events[-1].seq + 1
        if position is not None:
            self.position = position
        dropped = max(0, len(self.events) - self.limit)
        for _ in range(dropped):
            self.events.popleft()
        return dropped

    def acknowledge(self, seq: int) -> None:
        events = self.events
        while events and events[0].seq <= seq:
            events.popleft()

    def close(self) -> None:
        pass


class SqliteJournal(MemoryJournal):
    """The same, written through to SQLite so a restart loses nothing."""

    def __init__(self, directory: Path, limit: int) -> None:
        super().__init__(limit)
        path = state_directory(directory) / DATABASE
        try:
            self._open(path)
        except (sqlite3.Error, msgpack.UnpackException, ValueError, TypeError) as exc:  # or an event not decoding
            raise state_error(path, exc) from None

    def _open(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # survives a crash of the process, cheaply
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        meta = dict(self.db.execute("SELECT key, value FROM meta"))
        if "node_id" in meta:
            self.node_id = meta["node_id"]
            self.next_seq = int(meta["next_seq"])
            self.position = load_position(meta.get(POSITION_KEY, ""))
        else:
            self._save_meta()
        for (body,) in self.db.execute("SELECT body FROM events ORDER BY seq"):
            self.events.append(m.AuthEvent(**dict(zip(_FIELDS, msgpack.unpackb(body), strict=True))))

    def _save_meta(self) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)", [("node_id", self.node_id), ("next_seq", str(self.next_seq))]
        )

    def add_batch(self, events: list[m.AuthEvent], position: Position | None = None) -> int:
        if not events and (position is None or position == self.position):
            return 0
        rows = [(event.seq, msgpack.packb([getattr(event, name) for name in _FIELDS])) for event in events]
        kept = len(self.events)
        dropped = max(0, kept + len(events) - self.limit)
        next_seq = events[-1].seq + 1 if events else self.next_seq
        # One transaction for the whole batch, written before memory changes: a write that fails
        # leaves the journal, on disk and in memory, as it was before the batch.
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?)", rows)
            if dropped:
                first_kept = self.events[dropped] if dropped < kept else events[dropped - kept]
                self.db.execute("DELETE FROM events WHERE seq < ?", (first_kept.seq,))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", ("next_seq", str(next_seq)))
            if position is not None:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (POSITION_KEY, dump_position(position)))
        return super().add_batch(events, position)

    def acknowledge(self, seq: int) -> None:
        if self.events and self.events[0].seq <= seq:
            super().acknowledge(seq)
            self.db.execute("DELETE FROM events WHERE seq <= ?", (seq,))

    def close(self) -> None:
        self.db.close()


def open_journal(directory: Path | None, limit: int) -> MemoryJournal:
    return MemoryJournal(limit) if directory is None else SqliteJournal(directory, limit)
