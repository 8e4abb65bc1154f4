"""The hub's optional persistence: the update ring and per-node event dedup, in SQLite.

With SECMON_STATE_DIR a restarted hub continues its update sequence where it
stopped, still holds the recent updates subscribers resume from, and still
knows the last auth event it took from each node id — so a node's resend
after a hub crash is not broadcast twice. Updates are committed before they
are broadcast or acknowledged; WAL with synchronous=NORMAL survives a crash
of the process (not of the machine) at little cost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..config import state_directory, state_error
from ..protocol.batches import UpdateFrame

DATABASE = "hub.sqlite3"  # in SECMON_STATE_DIR
TRIM_EVERY = 1_000  # updates between trims of the ring table down to its size


class HubStore:
    def __init__(self, directory: Path, ring_size: int) -> None:
        """Open (or create) ``hub.sqlite3`` in ``directory``; ConfigError with one line when it cannot be used."""
        self.path = state_directory(directory) / DATABASE
        self.ring_size = ring_size
        self._since_trim = 0
        with self._read_errors():
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # A frame holds the updates seq..last (``last`` is NULL in rows stored before batches).
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS ring (seq INTEGER PRIMARY KEY, frame BLOB NOT NULL, last INTEGER)"
            )
            if "last" not in {row[1] for row in self.db.execute("PRAGMA table_info(ring)")}:
                self.db.execute("ALTER TABLE ring ADD COLUMN last INTEGER")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS node_events (node_id TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)"
            )
            self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")

    @contextmanager
    def _read_errors(self) -> Iterator[None]:
        """What start-up reads: a database SQLite cannot read becomes one line naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            raise state_error(self.path, exc) from None

    def load_ring(self) -> tuple[int | None, list[UpdateFrame]]:
        """The first sequence this hub ever issued (None if never), and the held frames in order."""
        with self._read_errors():
            row = self.db.execute("SELECT value FROM meta WHERE key = 'first_seq'").fetchone()
            frames = self.db.execute(
                "SELECT seq, last, frame FROM"
                " (SELECT seq, coalesce(last, seq) AS last, frame FROM ring ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (self.ring_size,),
            ).fetchall()
        return (row[0] if row else None), [UpdateFrame(*held) for held in frames]

    def remember_first(self, seq: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('first_seq', ?)", (seq,))

    def last_event_seq(self, node_id: str) -> int:
        row = self.db.execute("SELECT last_seq FROM node_events WHERE node_id = ?", (node_id,)).fetchone()
        return row[0] if row else 0

    def save(self, frames: list[UpdateFrame], node_id: str | None = None, last_event_seq: int = 0) -> None:
        """Commit broadcast frames and a node's dedup mark, at once."""
        rows = [(update.first, update.last, update.frame) for update in frames]
        with self.db:
            self.db.execute("BEGIN")
            self.db.executemany("INSERT OR REPLACE INTO ring (seq, last, frame) VALUES (?, ?, ?)", rows)
            if node_id:
                self.db.execute("INSERT OR REPLACE INTO node_events VALUES (?, ?)", (node_id, last_event_seq))
        self._since_trim += len(frames)
        if self._since_trim >= TRIM_EVERY:
            self._since_trim = 0
            newest = frames[-1].last
            self.db.execute("DELETE FROM ring WHERE coalesce(last, seq) <= ?", (newest - self.ring_size,))

    def close(self) -> None:
        self.db.close()
