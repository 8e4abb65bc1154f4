"""A bounded log of records the hub keeps for queries (the command audit, the notices), in memory
and, with SECMON_STATE_DIR, written through to SQLite so a restarted hub still has them.

Records are keyed by a number that only grows (an audit id, a notice's seq) and carry
a Unix time that queries filter on; the body is opaque bytes (its owner encodes it).
Memory holds them all, up to the bound: a few thousand small records. An answer
carries at most ANSWER_BUDGET bytes of them (well inside a frame), the newest first. A record is
written when it is put (a record that changes is put again); a failed write is
logged and the hub goes on with what it has in memory.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from ..config import state_directory, state_error
from ..protocol.codec import Decoded, decode_body
from ..protocol.errors import RemoteProtocolError
from .history import ANSWER_BUDGET  # the bytes of bodies one answer carries at most, as for events

log = logging.getLogger("secmon.hub")

TRIM_EVERY = 100  # puts between trims of the table down to the bound


class KeptLog:
    """The latest ``limit`` records by key, each (time, body)."""

    def __init__(self, limit: int, directory: Path | None, database: str, table: str) -> None:
        """Open (or create) ``database`` in ``directory`` (None: memory only); ConfigError naming the file
        when it cannot be used."""
        self.limit = limit
        self.table = table
        self._records: dict[int, tuple[float, bytes]] = {}  # by key, in key order
        self._since_trim = 0
        self.db: sqlite3.Connection | None = None
        if directory is None:
            return
        self.path = state_directory(directory) / database
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(f"CREATE TABLE IF NOT EXISTS {table} (key INTEGER PRIMARY KEY, time REAL, body BLOB)")
            rows = self.db.execute(
                f"SELECT key, time, body FROM (SELECT * FROM {table} ORDER BY key DESC LIMIT ?) ORDER BY key", (limit,)
            ).fetchall()
        except sqlite3.Error as exc:
            raise state_error(self.path, exc) from None
        # A row without a number for its time or bytes for its body (a damaged or doctored file) is left
        # out: every query filters on the time, and one such row would fail them all.
        self._records = {
            key: (float(time), body) for key, time, body in rows
            if type(time) in (int, float) and type(body) is bytes and type(key) is int
        }  # fmt: skip
        if len(self._records) < len(rows):
            left_out = len(rows) - len(self._records)
            log.warning("%s: left out %d %s rows with no time or body", self.path, left_out, table)

    @property
    def last_key(self) -> int:
        """The highest key held (0 when none)."""
        return next(reversed(self._records), 0)

    def __len__(self) -> int:
        return len(self._records)

    def put(self, key: int, time: float, body: bytes) -> None:
        """Keep (or replace) the record ``key``; past the bound the oldest go."""
        if key in self._records or key > self.last_key:
            self._records[key] = (time, body)
        else:  # older than the newest: rare (a replaced record is in place already); keep key order
            self._records[key] = (time, body)
            self._records = dict(sorted(self._records.items()))
        while len(self._records) > self.limit:
            del self._records[next(iter(self._records))]
        if self.db is None:
            return
        try:
            self.db.execute(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?, ?)", (key, time, body))
            self._since_trim += 1
            if self._since_trim >= TRIM_EVERY:
                self._since_trim = 0
                self.db.execute(f"DELETE FROM {self.table} WHERE key < ?", (next(iter(self._records)),))
        except sqlite3.Error as exc:
            log.error("cannot write %s to %s: %s (it is kept in memory)", self.table, self.path, exc)

    def latest(self, since: float | None, limit: int) -> tuple[list[bytes], bool]:
        """The bodies of the latest ``limit`` records at or after ``since``, oldest first, and whether
        older ones pass too; past ANSWER_BUDGET bytes of bodies the older ones are left out (``more``)."""
        found: list[bytes] = []
        size = 0
        for time, body in reversed(self._records.values()):
            if since is not None and time < since:
                continue
            size += len(body)
            if len(found) == limit or (size > ANSWER_BUDGET and found):
                return found[::-1], True
            found.append(body)
        return found[::-1], False

    def latest_messages(self, since: float | None, limit: int) -> tuple[list[Decoded], bool]:
        """``latest``, each body decoded as the message it was encoded from; one this version
        cannot read is said in the log and left out."""
        bodies, more = self.latest(since, limit)
        found: list[Decoded] = []
        for body in bodies:
            try:
                message = decode_body(body)
            except RemoteProtocolError as exc:
                log.warning("%s: a stored record cannot be read: %s", self.table, exc)
                continue
            found.append(message)
        return found, more

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
