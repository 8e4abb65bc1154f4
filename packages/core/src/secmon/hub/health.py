"""A node's health as notices: gone long enough to be said down, back after that, collectors failing.

Pure, like the registry: the hub tells ``OutageTracker`` when a node's link
ends, when the node joins again and which events it then delivers, and passes
the clock to ``sweep``; it answers with the node_down and node_back notices due.
``CollectorWatch`` compares what a node reports of each collector with what it
reported last, across reconnects, and names the changes between working and
failing: one notice per change, never one per retry.

``now`` is monotonic seconds (when things are due), ``wall`` Unix time (what
notices say).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..protocol import messages as m
from ..protocol import notices

# Seconds after a node that was said down joins again before its node_back: the events it kept
# while away come in its first reads, and node_back counts them.
BACK_SETTLE = 1.0

COLLECTORS = ("sessions", "wg_peers", "auth")  # the stored attributes a collector fills
NOT_FAILING = frozenset({m.AUTH_OK, m.INITIALIZING, m.NOT_MONITORED})


@dataclass(frozen=True, slots=True)
class OutageNotice:
    """A node_down or node_back notice that is due: its kind and fields."""

    kind: str
    node: m.NodeRef
    outage: m.Outage


@dataclass(slots=True)
class _Absence:
    node: m.NodeRef
    since: float  # wall: when its link ended
    gone_at: float  # monotonic: the same moment
    said: bool = False  # node_down was given
    back_at: float | None = None  # monotonic: when it joined again, after node_down
    back_wall: float = 0.0
    events: int = 0  # events delivered since it came back, written before back_wall


@dataclass(slots=True)
class OutageTracker:
    """Nodes whose link ended, by serial, until they are back (or forgotten)."""

    down_after: float
    settle: float = BACK_SETTLE
    _absent: dict[int, _Absence] = field(default_factory=dict)
    returning: set[int] = field(default_factory=set)  # serials back after node_down, node_back not given yet

    def left(self, serial: int, node: m.NodeRef, now: float, wall: float, said: bool = False) -> OutageNotice | None:
        """A node's link ended at ``wall``; a node_back still owed from its last return is due now.

        ``said``: take its node_down as given already (a cluster hub catching up with what
        the running hubs told while it was away).
        """
        owed = self._back(serial) if serial in self.returning else None
        self._absent[serial] = _Absence(node, wall, now, said)
        return owed

    def joined(self, serial: int, node: m.NodeRef, now: float, wall: float) -> None:
        """A node's link is up again: nothing if it was never said down, else its node_back is owed."""
        absence = self._absent.get(serial)
        if absence is None:
            return
        if not absence.said:
            del self._absent[serial]  # back within NODE_DOWN_AFTER: no notice
            return
        absence.node = node  # its address may have changed
        absence.back_at = now
        absence.back_wall = wall
        absence.events = 0
        self.returning.add(serial)

    def delivered(self, serial: int, events: Iterable[dict[str, Any]]) -> None:
        """Auth events a node delivered; those written while it was away count for its node_back."""
        absence = self._absent.get(serial)
        if absence is not None and absence.back_at is not None:
            back = absence.back_wall
            absence.events += sum(1 for event in events if event["time"] < back)

    def forgotten(self, serial: int) -> None:
        """The hub forgot the node (its grace period passed): no node_back ever."""
        self._absent.pop(serial, None)
        self.returning.discard(serial)

    def sweep(self, now: float) -> list[OutageNotice]:
        """The notices due at ``now``: node_down for nodes gone ``down_after``, node_back for nodes
        back ``settle`` seconds."""
        due: list[OutageNotice] = []
        for serial, absence in list(self._absent.items()):
            if absence.back_at is not None:
                if now - absence.back_at >= self.settle:
                    due.append(self._back(serial))
            elif not absence.said and now - absence.gone_at >= self.down_after:
                absence.said = True
                due.append(OutageNotice(notices.NODE_DOWN, absence.node, m.Outage(absence.since, self.down_after)))
        return due

    def _back(self, serial: int) -> OutageNotice:
        absence = self._absent.pop(serial)
        self.returning.discard(serial)
        away = max(0.0, absence.back_wall - absence.since)
        outage = m.Outage(absence.since, self.down_after, away, absence.events)
        return OutageNotice(notices.NODE_BACK, absence.node, outage)


def failing(value: object) -> str | None:
    """The error text of a stored attribute's value, or None when it is not failing."""
    if isinstance(value, str) and value not in NOT_FAILING:
        return value
    return None


@dataclass(slots=True)
class CollectorWatch:
    """Which collectors of each node are failing, as last reported; kept across a node's reconnects."""

    _failing: dict[int, dict[str, str]] = field(default_factory=dict)

    def changes(self, serial: int, update: m.StateUpdate) -> list[m.CollectorState]:
        """The collectors this update takes from working to failing (with why) or back (message "")."""
        known = self._failing.get(serial)
        changed: list[m.CollectorState] = []
        for name in COLLECTORS:
            value = getattr(update, name)
            if value is None or value == m.INITIALIZING:  # not tried yet: says nothing either way
                continue
            now = failing(value)
            was = known.get(name) if known is not None else None
            if now is not None and was is None:
                changed.append(m.CollectorState(name, now))
            elif now is None and was is not None:
                changed.append(m.CollectorState(name))
            if now is not None:
                known = self._failing.setdefault(serial, {}) if known is None else known
                known[name] = now
            elif known is not None:
                known.pop(name, None)
        if known is not None and not known:
            del self._failing[serial]
        return changed

    def forgotten(self, serial: int) -> None:
        """The hub forgot the node: what it said of its collectors goes too."""
        self._failing.pop(serial, None)
