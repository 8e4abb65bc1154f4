"""Failures from one source across the fleet: the pattern no single server can see.

``FleetWatch`` counts, per source host, the failures within a sliding window
(SECMON_FLEET_WINDOW) and the nodes and users they came from. When a source
reaches SECMON_FLEET_FAILURES failures over at least SECMON_FLEET_NODES nodes,
it is *failing*: the caller announces it once (a source_failing notice) and
every failure from it is then summarized by that notice, until the source has
been quiet for a whole window; ``ended`` then gives its totals. A success from
a source asks ``failures_before`` how many failures preceded it in the window.

Pure: the clock is the caller's (the hub's arrival time of the events). Bounded:
MAX_SOURCES sources at most, and MAX_HELD entries in all (a failure held in a
source's window, or a user a failing source's totals count), the longest quiet
sources forgotten first when either is reached; one source holds the window's
latest MAX_FAILURES_HELD failures (or the threshold, when it is higher), so its
count, and a success's ``after_failures``, stop there. At the defaults that is
about 100 MB at most, whatever the failures' rate (measured: 50,000 sources of
one failure each take about 70 MB, the rest of the 200,000 entries about 22 MB).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from ..protocol import messages as m
from ..protocol.notices import MAX_LISTED

MAX_SOURCES = 50_000  # sources tracked at once: a botnet's spread for a window (about 1.4 KB each)
MAX_FAILURES_HELD = 1_000  # failures of one source held in its window: a count worth telling; more is "1000"
MAX_HELD = 200_000  # failures held and users counted, all sources together: about 150 bytes each, 30 MB
MAX_USERS_COUNTED = 10_000  # distinct users a failing source's totals count at most (a dictionary attack's)
DEFAULT_FAILURES = 20
DEFAULT_NODES = 3
DEFAULT_WINDOW = 600.0


@dataclass(slots=True)
class _Source:
    """One source's failures in the window, and its summary once it is failing."""

    held: deque[tuple[float, str, str]] = field(default_factory=deque)  # time, node, user
    nodes: dict[str, int] = field(default_factory=dict)  # of the failures held: how many from each node
    last: float = 0.0
    notice: int = 0  # the seq of its source_failing notice, while failing
    total: int = 0  # failures since it began failing (for the ended notice)
    first: float = 0.0
    all_nodes: dict[str, None] = field(default_factory=dict)  # since it began failing, in order
    all_users: dict[str, None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Crossing:
    """A source that became failing with this failure: the summary its notice carries."""

    source: str
    failures: m.SourceFailures


class FleetWatch:
    """Failures per source within the window; ``failures == 0`` turns the watch off."""

    def __init__(self, failures: int = DEFAULT_FAILURES, nodes: int = DEFAULT_NODES, window: float = DEFAULT_WINDOW,
                 max_sources: int = MAX_SOURCES, max_held: int = MAX_HELD) -> None:  # fmt: skip
        self.threshold = failures
        self.min_nodes = nodes
        self.window = window
        self.max_sources = max_sources
        self.max_held = max_held
        self.held_per_source = min(max(failures, MAX_FAILURES_HELD), max_held)
        self.held = 0  # failures held and users counted, all sources together
        self._sources: OrderedDict[str, _Source] = OrderedDict()  # least recently failing first
        self.failing = 0  # sources summarized now

    def __len__(self) -> int:
        return len(self._sources)

    def _prune(self, source: _Source, now: float) -> None:
        held = source.held
        start = now - self.window
        while held and held[0][0] < start:
            _when, node, _user = held.popleft()
            self.held -= 1
            count = source.nodes[node] - 1
            if count:
                source.nodes[node] = count
            else:
                del source.nodes[node]

    def failure(self, host: str, node: str, user: str | None, now: float) -> int | Crossing | None:
        """Count a failure from ``host`` on ``node``: the seq of the notice that summarizes it, a
        Crossing when this one makes the source failing (the caller announces it, then ``summarize``),
        or None."""
        if not self.threshold:
            return None
        sources = self._sources
        source = sources.get(host)
        if source is None:
            source = sources[host] = _Source()
            if len(sources) > self.max_sources:
                self._evict()
        else:
            sources.move_to_end(host)
        source.last = now
        self._hold(source, now, node, user)  # the window's failures, failing or not (for after_failures)
        if source.notice:
            source.total += 1
            source.all_nodes[node] = None  # every node, for the count (a fleet's worth at most)
            if user is not None and len(source.all_users) < MAX_USERS_COUNTED and user not in source.all_users:
                source.all_users[user] = None
                self._grew(1)
            return source.notice
        if len(source.held) >= self.threshold and len(source.nodes) >= self.min_nodes:
            return Crossing(host, self._summary(host, source, ended=False))
        return None

    def _hold(self, source: _Source, now: float, node: str, user: str | None) -> None:
        """Hold a failure in its source's window (the oldest go past the source's bound)."""
        held, nodes = source.held, source.nodes
        if held and held[0][0] < now - self.window:
            self._prune(source, now)
        held.append((now, node, user or ""))
        nodes[node] = nodes.get(node, 0) + 1
        if len(held) > self.held_per_source:
            _when, old, _user = held.popleft()
            nodes[old] -= 1
            if not nodes[old]:
                del nodes[old]
        else:
            self._grew(1)

    def _grew(self, entries: int) -> None:
        """Count entries just held; past the bound, the sources quiet the longest are forgotten."""
        self.held += entries
        while self.held > self.max_held and len(self._sources) > 1:
            self._evict()

    def _summary(self, host: str, source: _Source, ended: bool) -> m.SourceFailures:
        if ended:
            nodes, users = list(source.all_nodes), list(source.all_users)
            return m.SourceFailures(host, source.total, len(nodes), len(users), source.first, source.last,
                                    nodes[:MAX_LISTED], users[:MAX_LISTED], ended=True)  # fmt: skip
        held = source.held
        nodes = list(dict.fromkeys(node for _when, node, _user in held))
        users = list(dict.fromkeys(user for _when, _node, user in held if user))
        return m.SourceFailures(host, len(held), len(nodes), len(users), held[0][0], held[-1][0],
                                nodes[:MAX_LISTED], users[:MAX_LISTED])  # fmt: skip

    def summarize(self, host: str, notice: int) -> None:
        """``host`` became failing; its failures from now on are summarized by notice ``notice``."""
        source = self._sources.get(host)
        if source is None:
            return
        held = source.held
        source.notice = notice
        source.total = len(held)
        source.first = held[0][0] if held else source.last
        source.all_nodes = dict.fromkeys(node for _when, node, _user in held)
        source.all_users = dict.fromkeys(user for _when, _node, user in held if user)
        self._grew(len(source.all_users))
        self.failing += 1

    def failures_before(self, host: str, now: float) -> int:
        """The failures from ``host`` within the window before ``now`` (for a success from it)."""
        source = self._sources.get(host)
        if source is None:
            return 0
        self._prune(source, now)
        return len(source.held)

    def ended(self, now: float) -> list[m.SourceFailures]:
        """The failing sources quiet for a whole window, with their totals (they are forgotten);
        sources with no failure left in the window are forgotten too."""
        done: list[m.SourceFailures] = []
        cutoff = now - self.window
        sources = self._sources
        for host in list(sources):
            source = sources[host]
            if source.last >= cutoff:
                break  # in order of their last failure: the rest are more recent
            del sources[host]
            self.held -= len(source.held) + len(source.all_users)
            if source.notice:
                self.failing -= 1
                done.append(self._summary(host, source, ended=True))
        return done

    def _evict(self) -> None:
        """Forget the source quiet the longest (a failing one says nothing more: it is long quiet)."""
        _host, source = self._sources.popitem(last=False)
        self.held -= len(source.held) + len(source.all_users)
        if source.notice:
            self.failing -= 1
