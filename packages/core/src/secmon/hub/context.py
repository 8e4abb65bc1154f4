"""Event context, decided once on the hub: what a node's read of auth events means, event by event.

``EventJudge`` holds the parts (GeoIP, first seen, the fleet watch, the mute
rules) and turns one read of a node's events into their contexts: the GeoIP of
each source, what an accepted login was the first of for its user, how many
failures a success came after, which rules mute it, and which source_failing
notice summarizes a failure. A source that crosses the fleet threshold is
announced through the ``announce`` callback before the read's events are
numbered, so its notice comes first and the failures can carry its seq.

Nothing here does I/O beyond the parts' own files; the clock is passed in.
When nothing can be set (no GeoIP, no rules, no failing source and no success
with a source in the read) the contexts are None and the hub's fast path is
the one it always had; the failures are still counted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import ContextSettings
from ..protocol import messages as m
from ..protocol.batches import EventOrigin
from ..protocol.kinds import FAILURE_KINDS, SUCCESS_KINDS
from ..protocol.notices import NEW_ASN, NEW_COUNTRY, NEW_HOST
from .fleet import Crossing, FleetWatch
from .geoip import GeoIP
from .mutes import MuteBook
from .seen import FirstSeen

SHARED_CONTEXTS = 1_024  # contexts of GeoIP and a summary alone kept for reuse; the map starts over when full
Announce = Callable[[m.SourceFailures], int]  # publishes a source_failing notice; its seq
Clock = Callable[[], float]
NodeNames = tuple[str, str, str]  # the event's node: serial as text, hostname, address


class EventJudge:
    """The hub's event context: GeoIP (optional), first seen, the fleet watch and the mute rules."""

    def __init__(self, geoip: GeoIP | None, seen: FirstSeen, fleet: FleetWatch, mutes: MuteBook) -> None:
        self.geoip = geoip
        self.seen = seen
        self.fleet = fleet
        self.mutes = mutes
        self._shared: dict[tuple[int, int], m.EventContext] = {}

    def judge(
        self, events: list[dict[str, Any]], origin: EventOrigin, now: float, clock: Clock, announce: Announce
    ) -> list[m.EventContext | None] | None:
        """The contexts of one read's events (AuthEvent maps, in order) from the node ``origin``, or None
        when none has any. ``now``: the arrival time (Unix); ``clock``: a monotonic clock, read only
        when the GeoIP files may need a look."""
        fleet = self.fleet
        if self.geoip is not None or self.mutes.by_id:
            return self._judge_all(events, origin, now, clock, announce, 0, None, None)
        # The usual case, and an attack's: count the failures; a failure a failing source's notice
        # summarizes gets that notice's shared context here. Only a success with a source, or a
        # source that crosses the threshold, needs the general path from there on.
        failing, succeeding = FAILURE_KINDS, SUCCESS_KINDS
        contexts: list[m.EventContext | None] | None = None
        for index, event in enumerate(events):
            host = event.get("host")
            if host is None:
                continue
            kind = event["kind"]
            if kind in failing:
                outcome = fleet.failure(host, origin.hostname, event.get("user"), now)
                if outcome is None:
                    continue
                if type(outcome) is int:
                    if contexts is None:
                        contexts = [None] * len(events)
                    contexts[index] = self._shared_context(None, outcome)
                    continue
                return self._judge_all(events, origin, now, clock, announce, index, outcome, contexts)
            elif kind in succeeding:
                return self._judge_all(events, origin, now, clock, announce, index, None, contexts)
        return contexts

    def _judge_all(
        self, events: list[dict[str, Any]], origin: EventOrigin, now: float, clock: Clock, announce: Announce,
        start: int, counted: int | Crossing | None, before: list[m.EventContext | None] | None,
    ) -> list[m.EventContext | None] | None:  # fmt: skip
        """The contexts of the events from ``start`` on; ``before``: those of the events before it
        (None: they have none); ``counted``: the fleet watch's word on the event at ``start`` when
        it was counted already."""
        contexts: list[m.EventContext | None] = [None] * start if before is None else before[:start]
        geoip, fleet, mutes = self.geoip, self.fleet, self.mutes
        node: NodeNames = (str(origin.serial), origin.hostname, origin.address)
        tick = clock() if geoip is not None else 0.0
        any_set = before is not None
        for index in range(start, len(events)):
            event = events[index]
            kind = event["kind"]
            host = event.get("host")
            user = event.get("user")
            source = geoip.lookup(host, tick) if geoip is not None and host is not None else None
            new: list[str] = []
            after = summarized = 0
            if host is not None and kind in FAILURE_KINDS:
                if index == start and counted is not None:
                    outcome: int | Crossing | None = counted
                else:
                    outcome = fleet.failure(host, node[1], user, now)
                if isinstance(outcome, Crossing):
                    failures = outcome.failures
                    if source is not None:
                        failures = m.SourceFailures(**{**_fields(failures), "context": source})
                    summarized = announce(failures)
                    fleet.summarize(host, summarized)
                elif outcome:
                    summarized = outcome
            elif host is not None and kind in SUCCESS_KINDS:
                after = fleet.failures_before(host, now)
                if user is not None:
                    pairs = [(user, NEW_HOST, host)]
                    if source is not None and source.asn is not None:
                        pairs.append((user, NEW_ASN, str(source.asn)))
                    if source is not None and source.country is not None:
                        pairs.append((user, NEW_COUNTRY, source.country))
                    new = self.seen.mark(pairs, now)
            muted = mutes.matching(event, node, bool(new), now) if mutes.by_id else []
            if new or after or muted:
                contexts.append(m.EventContext(source, new, after, muted, summarized))
            elif source is None and not summarized:
                contexts.append(None)
                continue
            else:  # GeoIP and a summary alone: shared by every event of that source (packed once)
                contexts.append(self._shared_context(source, summarized))
            any_set = True
        return contexts if any_set else None

    def _shared_context(self, source: m.SourceContext | None, summarized: int) -> m.EventContext:
        """One context object per GeoIP answer and summary: equal ones are the same object."""
        key = (id(source), summarized)
        known = self._shared.get(key)
        if known is not None and known.source is source:
            return known
        if len(self._shared) >= SHARED_CONTEXTS:
            self._shared.clear()
        context = self._shared[key] = m.EventContext(source, summarized=summarized)
        return context

    def housekeeping(self, now: float, clock: float) -> tuple[list[m.SourceFailures], list[m.MuteRule]]:
        """Once a sweep: the failing sources that ended (totals), and the mute rules that expired.
        ``now``: Unix time; ``clock``: the monotonic time ``judge`` is given."""
        ended = self.fleet.ended(now)
        if self.geoip is not None:
            geoip = self.geoip
            ended = [m.SourceFailures(**{**_fields(e), "context": geoip.lookup(e.source, clock)}) for e in ended]
        return ended, self.mutes.expire(now) if self.mutes else []

    def close(self) -> None:
        """Close the files."""
        if self.geoip is not None:
            self.geoip.close()
        self.seen.close()


def _fields(record: m.SourceFailures) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__slots__}


def build_judge(settings: ContextSettings, state_dir: Path | None, clock: float) -> EventJudge:
    """The hub's judge from its settings: files opened (ConfigError, one line, when one cannot be)."""
    geoip = None
    if settings.geoip_city_db is not None or settings.geoip_asn_db is not None:
        geoip = GeoIP(settings.geoip_city_db, settings.geoip_asn_db, clock)
    fleet = FleetWatch(settings.fleet_failures, settings.fleet_nodes, settings.fleet_window)
    return EventJudge(geoip, FirstSeen(state_dir, settings.seen_max), fleet, MuteBook(state_dir))
