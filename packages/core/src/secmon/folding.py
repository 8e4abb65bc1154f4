"""Burst folding for chat notifiers: readable under a password-guessing attack.

Pure logic, no clock of its own: callers pass ``now``. The first failure from
a source (node and remote host, or node and user for local events) is told at
once; further failures from that source within the window are counted, and
when the window closes they come out as one folded notice with the count.
Successes (accepted logins, su opened, sudo commands) always pass at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import messages as m
from .protocol.kinds import FAILURE_KINDS

MAX_NAMES = 5  # user names listed in a folded notice; the count says the rest


@dataclass(slots=True)
class Notice:
    """What a notifier sends: one event, or ``count`` failures folded together."""

    update: m.AuthUpdate  # the latest event of the burst (the only one when count == 1)
    count: int = 1
    first_time: float | None = None
    users: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    @property
    def folded(self) -> bool:
        return self.count > 1


@dataclass(slots=True)
class _Burst:
    opened: float
    first_time: float
    latest: m.AuthUpdate
    count: int = 0
    users: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


def source_key(update: m.AuthUpdate) -> tuple[int, str]:
    event = update.event
    return update.serial, event.host or f"user:{event.user}"


class BurstFolder:
    """Fold failures per source and window; ``window`` in seconds."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._bursts: dict[tuple[int, str], _Burst] = {}

    def add(self, update: m.AuthUpdate, now: float) -> list[Notice]:
        """Notices to send now for this event (possibly none: it was folded)."""
        if update.event.kind not in FAILURE_KINDS or self.window <= 0:
            return [Notice(update)]
        key = source_key(update)
        burst = self._bursts.get(key)
        if burst is None:
            self._bursts[key] = _Burst(opened=now, first_time=update.event.time, latest=update)
            return [Notice(update)]
        burst.count += 1
        burst.latest = update
        user = update.event.user
        if user is not None and user not in burst.users and len(burst.users) < MAX_NAMES:
            burst.users.append(user)
        if update.event.kind not in burst.kinds:
            burst.kinds.append(update.event.kind)
        return []

    def due(self, now: float) -> list[Notice]:
        """Folded notices for every window that has closed by ``now``."""
        notices = []
        for key, burst in list(self._bursts.items()):
            if now - burst.opened < self.window:
                continue
            del self._bursts[key]
            if burst.count:
                notices.append(Notice(burst.latest, burst.count, burst.first_time, burst.users, burst.kinds))
        return notices

    def next_due(self) -> float | None:
        """When the earliest open window closes, for a timer to wait on."""
        return min((b.opened + self.window for b in self._bursts.values()), default=None)

    def flush(self) -> list[Notice]:
        """Every pending folded notice, now (on shutdown)."""
        return self.due(float("inf"))
