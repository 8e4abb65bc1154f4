"""Quiet hours for chat notifiers: hold back what can wait, then tell it in one digest.

Pure logic, no clock of its own: callers pass ``now`` (Unix time, since the
window is a wall-clock range in a time zone). ``QuietHours`` is the window
(``22:00-07:00``; it may span midnight). ``QuietGate`` lets through at once
what ``notices.is_critical`` says must never wait (a node down, a login from
somewhere new, a success after failures) and holds the rest in a ``Digest``;
when the window that held something ends, the digest comes out, once.

A digest is bounded however long the night: counts per kind are exact, the
sources and nodes it counts are capped (the rest are summed under "others"),
and it keeps the details of only the first few items, notable ones (notices,
successes) before failures.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from datetime import time as clock_time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ConfigError
from .folding import Notice
from .protocol import messages as m
from .protocol import notices
from .protocol.kinds import FAILURE_KINDS

MAX_DETAILS = 12  # items a digest describes one by one: a chat message stays readable and within limits
MAX_COUNTED = 1_000  # distinct sources (and nodes) a digest counts; a botnet's thousands are summed as others
TOP = 5  # sources and nodes a digest names

Held = Notice | m.NoticeUpdate  # what the relay may hold back: an auth event (or folded burst), or a notice

_RANGE = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?-(\d{1,2}):(\d{2})(?::(\d{2}))?$")
DAY = 86_400


def parse_timezone(text: str, variable: str = "TIMEZONE") -> tzinfo | None:
    """An IANA zone, or None for ``local`` (the machine's local time); ConfigError otherwise."""
    if text == "local":
        return None
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{variable} must be an IANA zone such as Europe/Berlin, or local; got {text!r}") from None


def _seconds(hours: str, minutes: str, seconds: str | None) -> int | None:
    h, mi, s = int(hours), int(minutes), int(seconds or 0)
    if h > 23 or mi > 59 or s > 59:
        return None
    return h * 3600 + mi * 60 + s


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window ``start``–``end`` (seconds after local midnight) in ``tz`` (None: local time).

    ``start`` > ``end`` spans midnight; the end is not part of the window.
    """

    start: int
    end: int
    tz: tzinfo | None = None
    text: str = ""

    @classmethod
    def parse(cls, text: str, tz: tzinfo | None = None, variable: str = "QUIET_HOURS") -> QuietHours:
        """``HH:MM-HH:MM`` (seconds allowed: ``HH:MM:SS``); a ConfigError that names ``variable`` otherwise."""
        match = _RANGE.match(text.strip())
        start = end = None
        if match:
            start = _seconds(match[1], match[2], match[3])
            end = _seconds(match[4], match[5], match[6])
        if start is None or end is None:
            raise ConfigError(f"{variable} must be a time range like 22:00-07:00 (24-hour clock), got {text!r}")
        if start == end:
            raise ConfigError(f"{variable} must start and end at different times, got {text!r}")
        return cls(start, end, tz, text.strip())

    def _local(self, now: float) -> datetime:
        return datetime.fromtimestamp(now, self.tz) if self.tz is not None else datetime.fromtimestamp(now)

    def _of_day(self, now: float) -> int:
        local = self._local(now)
        return local.hour * 3600 + local.minute * 60 + local.second

    def inside(self, now: float) -> bool:
        """Whether ``now`` falls in the window."""
        second = self._of_day(now)
        if self.start < self.end:
            return self.start <= second < self.end
        return second >= self.start or second < self.end

    def window_end(self, now: float) -> float:
        """When the window that ``now`` is in (or the next one) ends, as Unix time after ``now``."""
        local = self._local(now)
        day = local.date()
        for offset in range(3):
            moment = datetime.combine(day + timedelta(days=offset), clock_time(0), tzinfo=self.tz)
            end = (moment + timedelta(seconds=self.end)).timestamp()
            if end > now:
                return end
        return now + DAY  # unreachable: one of three days' ends lies ahead


@dataclass(slots=True)
class Digest:
    """What quiet hours held back: counts, the busiest sources and nodes, the first few details."""

    window: str  # the window as configured ("22:00-07:00")
    first: float  # when the first item was held (Unix time)
    until: float  # when the window ends, and the digest is due
    held: int = 0  # items held (a folded burst is one item)
    events: Counter[str] = field(default_factory=Counter)  # auth event kind -> events held
    notices: Counter[str] = field(default_factory=Counter)  # notice kind -> notices held
    sources: Counter[str] = field(default_factory=Counter)  # remote host -> events
    nodes: Counter[str] = field(default_factory=Counter)  # node hostname -> items
    other_sources: int = 0  # events from sources past MAX_COUNTED
    other_nodes: int = 0
    details: list[Held] = field(default_factory=list)  # at most MAX_DETAILS, in the order held

    def add(self, item: Held) -> None:
        """Count ``item`` and keep it in the details if there is room (notable items take a failure's)."""
        self.held += 1
        if type(item) is Notice:
            event = item.update.event
            self.events[event.kind] += item.count
            if event.host:
                self.other_sources += _count(self.sources, event.host, item.count)
            self.other_nodes += _count(self.nodes, item.update.hostname, 1)
        else:
            assert type(item) is m.NoticeUpdate
            self.notices[item.kind] += 1
            if item.node is not None:
                self.other_nodes += _count(self.nodes, item.node.hostname, 1)
            if item.source is not None and not item.source.ended:
                self.other_sources += _count(self.sources, item.source.source, item.source.failures)
        self._keep(item)

    def _keep(self, item: Held) -> None:
        if len(self.details) < MAX_DETAILS:
            self.details.append(item)
            return
        if _is_failure(item):
            return
        for index, kept in enumerate(self.details):
            if _is_failure(kept):
                del self.details[index]
                self.details.append(item)
                return

    @property
    def event_count(self) -> int:
        return sum(self.events.values())

    @property
    def left_out(self) -> int:
        """Items held that the details do not describe."""
        return self.held - len(self.details)

    def top_sources(self, n: int = TOP) -> list[tuple[str, int]]:
        return self.sources.most_common(n)

    def top_nodes(self, n: int = TOP) -> list[tuple[str, int]]:
        return self.nodes.most_common(n)


def _count(counter: Counter[str], key: str, n: int) -> int:
    """Add ``n`` to ``key`` within MAX_COUNTED keys; what did not fit, for the caller's "others"."""
    if key in counter or len(counter) < MAX_COUNTED:
        counter[key] += n
        return 0
    return n


def _is_failure(item: Held) -> bool:
    return type(item) is Notice and item.update.event.kind in FAILURE_KINDS


class QuietGate:
    """Decides, item by item, whether to tell now or hold for the digest; ``hours`` None lets all pass."""

    def __init__(self, hours: QuietHours | None) -> None:
        self.hours = hours
        self._digest: Digest | None = None

    def offer(self, item: Held, now: float) -> list[Held | Digest]:
        """What to send now: a digest that has come due, then ``item`` unless it is held."""
        out: list[Held | Digest] = list(self.due(now))
        hours = self.hours
        if hours is None or not hours.inside(now) or _critical(item):
            out.append(item)
            return out
        if self._digest is None:
            self._digest = Digest(hours.text, now, hours.window_end(now))
        self._digest.add(item)
        return out

    def due(self, now: float) -> list[Digest]:
        """The digest, once the window that held its items has ended by ``now``."""
        digest = self._digest
        if digest is None or now < digest.until:
            return []
        self._digest = None
        return [digest]

    def next_due(self) -> float | None:
        """When the held digest is due (Unix time), for a timer to wait on."""
        return None if self._digest is None else self._digest.until

    def flush(self) -> list[Digest]:
        """What is held, now, whatever the time (on shutdown)."""
        digest, self._digest = self._digest, None
        return [] if digest is None else [digest]

    @property
    def holding(self) -> int:
        return 0 if self._digest is None else self._digest.held


def _critical(item: Held) -> bool:
    if isinstance(item, Notice):
        return notices.is_critical(item.update)
    return notices.is_critical(item)
