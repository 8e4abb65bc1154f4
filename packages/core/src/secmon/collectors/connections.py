"""What earlier log lines of one process said about its connection, for lines that do not say it.

sshd names the remote host on some lines of a connection and not on others
(``Disconnecting: Too many authentication failures [preauth]``); every line of
one connection comes from one process, so remembering the host, port and user
each pid last named lets the parser attribute the silent lines. su and sudo
report one fact twice (their own line and PAM's), and the same record tells the
parser it has already reported it.

Pure: the caller passes the clock (the line's time), so tests replay a log
without waiting. Memory is bounded twice: entries expire ``ttl`` seconds after
their pid was last seen, and the least recently seen go first past ``limit``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

# Pids remembered at most. sshd's MaxStartups (default 100) bounds the connections
# that have not logged in yet, the ones whose lines need attributing; a busy server's
# sessions add more, and 4096 small records stay well under a megabyte.
MAX_CONNECTIONS = 4096
# Seconds an entry lives after its pid's last line: sshd's LoginGraceTime is 120 s by
# default, so a connection still authenticating has logged within this long.
CONNECTION_TTL = 600.0
# Expired entries are dropped this many times per ttl, not on every line: between sweeps
# an expired entry costs only its memory, and a lookup still sees that it has expired.
SWEEPS_PER_TTL = 16


@dataclass(slots=True)
class Connection:
    """What one process's lines have said so far."""

    host: str | None = None
    port: int | None = None
    user: str | None = None
    attempted: bool = False  # a login was tried: a later bare "closed [preauth]" is a failure
    ended: bool = False  # an ending was reported: later endings of the same connection are echoes
    last_kind: str | None = None  # the kind last reported (su/sudo repeat a fact through PAM)
    seen: float = 0.0


class ConnectionTracker:
    """Connections by key (a pid, or a (program, pid) pair), bounded and expiring."""

    def __init__(self, limit: int = MAX_CONNECTIONS, ttl: float = CONNECTION_TTL) -> None:
        self.limit = limit
        self.ttl = ttl
        self._entries: OrderedDict[Hashable, Connection] = OrderedDict()
        self._swept = float("-inf")  # when expired entries were last dropped

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: Hashable, now: float) -> Connection | None:
        """The live record for ``key``, if there is one; nothing is created or refreshed."""
        entry = self._entries.get(key)
        if entry is None or entry.seen < now - self.ttl:
            return None
        return entry

    def observe(self, key: Hashable, now: float) -> Connection:
        """The record for ``key``, created when new or expired, and marked seen at ``now``."""
        entries = self._entries
        if now - self._swept > self.ttl / SWEEPS_PER_TTL:
            self._expire(now)
        entry = entries.get(key)
        if entry is None or entry.seen < now - self.ttl:
            entries.pop(key, None)
            entry = entries[key] = Connection()
            if len(entries) > self.limit:
                entries.popitem(last=False)
        else:
            entries.move_to_end(key)
        entry.seen = max(entry.seen, now)  # log times can step back; never make an entry younger
        return entry

    def restart(self, key: Hashable, now: float) -> Connection:
        """A fresh record for ``key``: its pid now serves another connection."""
        self._entries.pop(key, None)
        return self.observe(key, now)

    def _expire(self, now: float) -> None:
        self._swept = now
        entries = self._entries
        deadline = now - self.ttl
        while entries:
            key, oldest = next(iter(entries.items()))
            if oldest.seen >= deadline:
                return
            del entries[key]
