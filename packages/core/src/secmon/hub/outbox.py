"""What a hub of a cluster has yet to publish: its messages in order, bounded, on disk with a state dir.

Everything a hub publishes passes through here first, so a message outlives a
NATS outage (and, with SECMON_STATE_DIR, a hub crash: it is committed before
the node is acknowledged). The publisher reads a window of messages from the
front (``peek``) and drops them once JetStream has acknowledged them (``pop``);
the rest keep their order. On disk, the puts of one ``batch`` and each ``pop``
are one transaction, so a flood costs a commit per node read and per run of
acknowledgements, not one per message.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from ..config import state_directory, state_error

DATABASE = "outbox.sqlite3"  # in SECMON_STATE_DIR
# Room kept for control messages (a node left, forgotten, a hub lost): events and joins are refused
# this far below the limit, so a flood of events cannot crowd out a node's departure.
CONTROL_RESERVE = 64


@dataclass(frozen=True, slots=True)
class Pending:
    """One message to publish: its JetStream message id and bytes; for an auth event, whose and which."""

    msg_id: str
    payload: bytes
    node_id: str = ""
    event_seq: int = 0  # 0: not an auth event
    row: int = 0  # its row in the database (0 in memory)


class Outbox:
    """A bounded FIFO of Pending messages, in memory or in SQLite (``durable``)."""

    def __init__(self, limit: int, directory: Path | None = None) -> None:
        """Open the outbox; with ``directory``, what a previous run left unpublished is still there."""
        self.limit = limit
        self.reserve = min(CONTROL_RESERVE, limit // 2)  # places only control messages may take
        self._items: deque[Pending] = deque()
        self.db: sqlite3.Connection | None = None
        self._batching = False
        if directory is None:
            return
        path = state_directory(directory) / DATABASE
        try:
            self.db = sqlite3.connect(path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS outbox (row INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL,"
                " payload BLOB NOT NULL, node_id TEXT NOT NULL, event_seq INTEGER NOT NULL)"
            )
            rows = self.db.execute("SELECT msg_id, payload, node_id, event_seq, row FROM outbox ORDER BY row")
            self._items.extend(Pending(*row) for row in rows)
        except sqlite3.Error as exc:
            raise state_error(path, exc) from None

    @property
    def durable(self) -> bool:
        """Whether what is put here survives the hub's crash (committed to disk)."""
        return self.db is not None

    def __len__(self) -> int:
        return len(self._items)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make the puts inside one transaction, committed when the block ends (none of them if it fails)."""
        if self.db is None or self._batching:
            yield
            return
        kept = len(self._items)
        self._batching = True
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            while len(self._items) > kept:
                self._items.pop()
            raise
        else:
            self.db.execute("COMMIT")
        finally:
            self._batching = False

    def room(self, control: bool = False) -> bool:
        """Whether a message fits: a control message up to the limit, any other up to the reserve."""
        return len(self._items) < (self.limit if control else self.limit - self.reserve)

    def put(self, item: Pending, control: bool = False) -> bool:
        """Keep a message after the others; False (nothing kept) when there is no ``room`` for it."""
        if not self.room(control):
            return False
        if self.db is not None:
            cursor = self.db.execute(
                "INSERT INTO outbox (msg_id, payload, node_id, event_seq) VALUES (?, ?, ?, ?)",
                (item.msg_id, item.payload, item.node_id, item.event_seq),
            )
            assert cursor.lastrowid is not None  # an INSERT sets it
            item = Pending(item.msg_id, item.payload, item.node_id, item.event_seq, cursor.lastrowid)
        self._items.append(item)
        return True

    def front(self) -> Pending | None:
        """The oldest message, or None."""
        return self._items[0] if self._items else None

    def peek(self, count: int, skip: int = 0) -> list[Pending]:
        """Up to ``count`` messages after the oldest ``skip``, oldest first (nothing is dropped)."""
        return list(islice(self._items, skip, skip + count))

    def items(self) -> list[Pending]:
        """Every message, oldest first."""
        return list(self._items)

    def pop(self, count: int = 1) -> list[Pending]:
        """Drop the oldest ``count`` messages (JetStream has them), in one transaction; they are returned."""
        if count > len(self._items):
            raise IndexError(f"pop({count}) from an outbox of {len(self._items)}")
        if self.db is not None and count:
            # rows only grow, so the oldest ``count`` are the rows up to the last of them
            self.db.execute("DELETE FROM outbox WHERE row <= ?", (self._items[count - 1].row,))
        return [self._items.popleft() for _ in range(count)]

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
