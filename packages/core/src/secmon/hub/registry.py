"""The hub's pure state: which nodes exist, what they last reported, recent updates.

No I/O and no clocks: callers pass the time in. ``now`` is monotonic seconds
(for grace periods), ``wall`` is Unix time (for what users see).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from dataclasses import dataclass, field
from itertools import islice
from operator import attrgetter

from ..protocol import messages as m
from ..protocol.batches import UpdateFrame

STORED_ATTRIBUTES = ("sessions", "wg_peers", "auth", "labels")
# Seconds within which a hostname going back to the node it was taken from is flapping (two nodes,
# one hostname, replacing each other), and within which the hub reports that once.
FLAP_WINDOW = 600.0


@dataclass(frozen=True, slots=True)
class Takeover:
    """A connecting node took the entry of a connected node with another node id: they share a hostname.

    Once, that is a node restarted without its state (a new id) before the hub noticed the old
    connection die. When the hostname goes back and forth, it is two machines with one name.
    """

    hostname: str
    old_address: str
    new_address: str
    old_node_id: str
    new_node_id: str
    flapping: bool  # the new node had itself been pushed out of this hostname within FLAP_WINDOW
    report: bool  # flapping, and not yet reported in this window

    def told_to_replaced(self) -> str:
        """What the node that loses its entry is told, with the remedy."""
        return (
            f"another node with hostname {self.hostname!r} connected from {self.new_address}; if they are "
            "different machines, give each its own SECMON_HOSTNAME, or set ASSUME_HOSTNAME_UNIQUE=false on the hub"
        )


@dataclass(slots=True)
class NodeEntry:
    """One node as the hub remembers it, connected or within its grace period."""

    serial: int
    hostname: str
    address: str
    node_id: str
    monitors: list[str]
    connected: bool = True
    last_state_update: float | None = None
    sessions: list[m.Session] | str = m.INITIALIZING
    wg_peers: list[m.WgPeer] | str = m.INITIALIZING
    auth: str = m.INITIALIZING
    labels: list[str] = field(default_factory=list)
    disconnected_at: float | None = None
    last_event_seq: int = 0  # highest auth event seq received from node_id; older ones are duplicates
    takeover: Takeover | None = None  # how this connection came to hold the entry, when it pushed another out
    hub: str = ""  # in a cluster: the name of the hub that holds the node

    def info(self) -> m.NodeInfo:
        return m.NodeInfo(
            serial=self.serial,
            hostname=self.hostname,
            address=self.address,
            connected=self.connected,
            last_state_update=self.last_state_update,
            sessions=self.sessions,
            wg_peers=self.wg_peers,
            auth=self.auth,
            monitors=list(self.monitors),
            labels=list(self.labels),
            hub=self.hub,
        )

    def matches(self, query: str) -> bool:
        return query in (str(self.serial), self.hostname, self.address)


@dataclass(slots=True)
class NodeRegistry:
    """Serials from 1; a node's entry outlives its connection by the grace period."""

    hostname_unique: bool = True
    grace: float = 300.0
    nodes: dict[int, NodeEntry] = field(default_factory=dict)
    _next_serial: int = 1
    # Serials by node id and by hostname, so a connect in a storm of thousands is not a scan of all.
    _by_id: dict[str, int] = field(default_factory=dict)
    _by_hostname: dict[str, int] = field(default_factory=dict)
    # Per hostname: the node id last pushed out of it and when; when its flapping was last reported.
    _pushed_out: dict[str, tuple[str, float]] = field(default_factory=dict)
    _flap_reported: dict[str, float] = field(default_factory=dict)

    def connect(
        self,
        hostname: str,
        address: str,
        node_id: str,
        monitors: list[str],
        now: float,
        wall: float | None = None,
        hub: str = "",
        serial_hint: int = 0,
        next_serial: int = 0,
    ) -> NodeEntry:
        """Register a node that completed its hello; a known one keeps its serial.

        ``wall`` is when it connected: the time its "connected" update carries. In a
        cluster, ``hub`` holds the node, and a node new to this registry takes
        ``serial_hint`` if it is free, else the larger of our next serial and
        ``next_serial`` (the hints of the hub that saw it connect).
        """
        previous = self._previous(hostname, node_id)
        takeover = None
        if previous is None:
            if 0 < serial_hint and serial_hint not in self.nodes:
                serial = serial_hint
            else:
                serial = max(self._next_serial, next_serial)
            self._next_serial = max(self._next_serial, serial + 1)
            last_seq = 0
        else:
            serial = previous.serial
            # A restarted node (new id) numbers its events from 1 again.
            last_seq = previous.last_event_seq if previous.node_id == node_id else 0
            if previous.connected and previous.node_id != node_id:
                takeover = self._take_over(previous, address, node_id, now)
            self._unindex(previous)
        entry = NodeEntry(
            serial,
            hostname,
            address,
            node_id,
            list(monitors),
            last_state_update=wall,
            last_event_seq=last_seq,
            takeover=takeover,
            hub=hub,
        )
        self.nodes[serial] = entry
        if node_id:
            self._by_id[node_id] = serial
        self._by_hostname[hostname] = serial
        return entry

    def known(self, hostname: str, node_id: str) -> NodeEntry | None:
        """The entry a node with this hostname and id would take over, if any."""
        return self._previous(hostname, node_id)

    def _previous(self, hostname: str, node_id: str) -> NodeEntry | None:
        """The entry a connecting node takes over: same node id, else (if unique) same hostname."""
        serial = self._by_id.get(node_id) if node_id else None
        if serial is None and self.hostname_unique:
            serial = self._by_hostname.get(hostname)
        return None if serial is None else self.nodes[serial]

    def _take_over(self, previous: NodeEntry, address: str, node_id: str, now: float) -> Takeover:
        hostname = previous.hostname
        pushed = self._pushed_out.get(hostname)
        flapping = pushed is not None and pushed[0] == node_id and now - pushed[1] < FLAP_WINDOW
        self._pushed_out[hostname] = (previous.node_id, now)
        reported = self._flap_reported.get(hostname)
        report = flapping and (reported is None or now - reported >= FLAP_WINDOW)
        if report:
            self._flap_reported[hostname] = now
        return Takeover(hostname, previous.address, address, previous.node_id, node_id, flapping, report)

    def _unindex(self, entry: NodeEntry) -> None:
        if self._by_id.get(entry.node_id) == entry.serial:
            del self._by_id[entry.node_id]
        if self._by_hostname.get(entry.hostname) == entry.serial:
            del self._by_hostname[entry.hostname]

    def disconnect(self, serial: int, now: float, wall: float | None = None) -> NodeEntry | None:
        """Mark a node disconnected at ``now``; ``wall``, if given, is the time its update carries."""
        entry = self.nodes.get(serial)
        if entry is not None:
            entry.connected = False
            entry.disconnected_at = now
            if wall is not None:
                entry.last_state_update = wall
        return entry

    def forget(self, serial: int) -> NodeEntry | None:
        """Forget one node at once (in a cluster, when its hub says its grace period passed)."""
        entry = self.nodes.pop(serial, None)
        if entry is not None:
            self._unindex(entry)
        return entry

    def by_node_id(self, node_id: str) -> NodeEntry | None:
        """The entry of this node id, if any."""
        serial = self._by_id.get(node_id) if node_id else None
        return None if serial is None else self.nodes.get(serial)

    @property
    def next_serial(self) -> int:
        """The serial the next new node gets (a cluster hub's hint to the others)."""
        return self._next_serial

    def expire(self, now: float) -> list[NodeEntry]:
        """Forget nodes disconnected for longer than the grace period; return them."""
        gone = [
            e
            for e in self.nodes.values()
            if not e.connected and e.disconnected_at is not None and now - e.disconnected_at >= self.grace
        ]
        for entry in gone:
            del self.nodes[entry.serial]
            self._unindex(entry)
        if self._pushed_out or self._flap_reported:
            recent = now - FLAP_WINDOW
            self._pushed_out = {h: pushed for h, pushed in self._pushed_out.items() if pushed[1] > recent}
            self._flap_reported = {h: when for h, when in self._flap_reported.items() if when > recent}
        return gone

    def apply(self, serial: int, update: m.StateUpdate, wall: float) -> list[str]:
        """Apply a node's changes at once; return the names that really changed."""
        entry = self.nodes[serial]
        changed = []
        for name in STORED_ATTRIBUTES:
            value = getattr(update, name)
            if value is not None and value != getattr(entry, name):
                setattr(entry, name, value)
                changed.append(name)
        if changed:
            entry.last_state_update = wall
        return changed

    def find(self, query: str) -> NodeEntry | None:
        """The node whose serial, hostname or address is ``query`` (serial first)."""
        if query.isdigit() and int(query) in self.nodes:
            return self.nodes[int(query)]
        for entry in self.nodes.values():
            if entry.matches(query):
                return entry
        return None

    def connected(self) -> list[NodeEntry]:
        return [e for e in self.nodes.values() if e.connected]

    def snapshot(self) -> list[m.NodeInfo]:
        return [self.nodes[s].info() for s in sorted(self.nodes)]


@dataclass(slots=True)
class UpdateRing:
    """The last ``size`` broadcast updates, as the frames they went out in, with their global sequences.

    A frame carries one update, or several with consecutive sequences (a node's
    batch of auth events). The ring holds at least the last ``size`` updates:
    frames go whole, so the oldest one held may reach further back.

    Sequences run on from ``start``. The hub starts from the wall clock in
    microseconds, so numbers keep rising across hub restarts and a subscriber's
    ``since`` from before a restart is recognised as such.
    """

    size: int
    start: int = 1
    first: int | None = None  # the first sequence of this hub's lineage (before restarts, with a store)
    seq: int = field(init=False)
    held: int = field(init=False)  # updates in the frames held
    _frames: deque[UpdateFrame] = field(init=False)

    def __post_init__(self) -> None:
        self._frames = deque()
        self.seq = self.start - 1
        self.held = 0
        if self.first is None:
            self.first = self.start

    def load(self, frames: list[UpdateFrame]) -> None:
        """Hold frames a previous run of the hub stored (in sequence order)."""
        self.extend(frames)
        if frames:
            self.seq = max(self.seq, frames[-1].last)

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def reserve(self, count: int) -> range:
        """The next ``count`` sequences, taken at once."""
        first = self.seq + 1
        self.seq += count
        return range(first, self.seq + 1)

    def extend(self, frames: list[UpdateFrame]) -> None:
        """Hold frames, in sequence order; the oldest fall out once ``size`` updates are newer."""
        held = self.held
        for frame in frames:
            held += frame.count
        held_frames = self._frames
        held_frames.extend(frames)
        while held > self.size and len(held_frames) > 1:  # drop the oldest frame while the rest still hold ``size``
            oldest = held_frames[0].count
            if held - oldest < self.size:
                break
            held_frames.popleft()
            held -= oldest
        self.held = held

    @property
    def oldest(self) -> int | None:
        """The sequence of the oldest update held, or None when none is."""
        return self._frames[0].first if self._frames else None

    def resume_point(self, seq: int) -> tuple[int, int]:
        """Where a subscriber that saw ``seq`` resumes, and how many updates after it are gone.

        A ``seq`` we never issued (0, or one from another hub run) resumes from the start of
        what we hold.
        """
        first = self.first
        assert first is not None  # __post_init__ set it
        if seq > self.seq or seq < first - 1:
            seq = first - 1
        oldest = self._frames[0].first if self._frames else self.seq + 1
        missed = max(0, oldest - seq - 1)
        return max(seq, oldest - 1), missed

    def after(self, seq: int, limit: int) -> list[UpdateFrame]:
        """Up to ``limit`` held frames with updates after ``seq``, in order.

        The first may also hold updates up to ``seq`` (a batch that ``seq`` falls in);
        the caller leaves those out.
        """
        start = bisect_right(self._frames, seq, key=_LAST_SEQ)
        return list(islice(self._frames, start, start + limit))


_LAST_SEQ = attrgetter("last")
