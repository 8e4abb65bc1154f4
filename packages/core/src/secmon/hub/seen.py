"""First seen: which (user, host), (user, ASN) and (user, country) pairs the fleet has logged in from.

``FirstSeen.mark`` answers, for one accepted login, which of its pairs were
never seen before (on any node) and remembers them all as seen now. The memory
is bounded (SECMON_SEEN_MAX pairs; the least recently seen leave first) and
lives in ``seen.sqlite3`` in the state directory when the hub has one, so a
restart does not flag every user's usual address as new again; in memory
otherwise. Accepted logins are rare next to failures, so each is written at
once (WAL, one small transaction).
"""

from __future__ import annotations

import logging
import sqlite3
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

from ..config import state_directory, state_error

log = logging.getLogger("secmon.hub")

DATABASE = "seen.sqlite3"
DEFAULT_MAX = 100_000  # pairs remembered: years of a fleet's logins, a few MB
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS seen (user TEXT NOT NULL, what TEXT NOT NULL, value TEXT NOT NULL,"
    " last REAL NOT NULL, PRIMARY KEY (user, what, value)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS seen_last ON seen (last)",
)

Pair = tuple[str, str, str]  # user, what (notices.NEW_*), value


class FirstSeen:
    """The pairs seen, most recently seen last; persisted in ``directory`` when given."""

    def __init__(self, directory: Path | None, most: int = DEFAULT_MAX) -> None:
        """Load what was seen (ConfigError with one line when the file cannot be used)."""
        self.most = most
        self._seen: OrderedDict[Pair, float] = OrderedDict()
        self.db: sqlite3.Connection | None = None
        if directory is None:
            return
        path = state_directory(directory) / DATABASE
        try:
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self.db.execute(statement)
            rows = self.db.execute("SELECT user, what, value, last FROM seen ORDER BY last").fetchall()
        except sqlite3.Error as exc:
            raise state_error(path, exc) from None
        for user, what, value, last in rows:
            self._seen[(user, what, value)] = last
        self._trim()

    def __len__(self) -> int:
        return len(self._seen)

    def mark(self, pairs: Iterable[Pair], now: float) -> list[str]:
        """The ``what`` of each pair never seen before, in order; all of them are seen as of ``now``."""
        seen = self._seen
        new: list[str] = []
        rows = []
        for pair in pairs:
            if pair in seen:
                seen.move_to_end(pair)
            else:
                new.append(pair[1])
            seen[pair] = now
            rows.append((*pair, now))
        if self.db is not None and rows:
            try:
                with self.db:
                    self.db.execute("BEGIN")
                    self.db.executemany("INSERT OR REPLACE INTO seen VALUES (?, ?, ?, ?)", rows)
            except sqlite3.Error as exc:  # the memory still holds it; the relay goes on
                log.error("first seen: could not write: %s", exc)
        self._trim()
        return new

    def _trim(self) -> None:
        """The least recently seen pairs leave, past the bound."""
        excess = len(self._seen) - self.most
        if excess <= 0:
            return
        gone = [self._seen.popitem(last=False)[0] for _ in range(excess)]
        if self.db is not None:
            try:
                with self.db:
                    self.db.execute("BEGIN")
                    self.db.executemany("DELETE FROM seen WHERE user = ? AND what = ? AND value = ?", gone)
            except sqlite3.Error as exc:
                log.error("first seen: could not forget old pairs: %s", exc)

    def close(self) -> None:
        """Close the file."""
        if self.db is not None:
            self.db.close()
            self.db = None
