"""The cluster view: every hub's state machine over the cluster's stream (docs/cluster.md).

A hub in a cluster changes its registry and its update ring only here, by
applying the stream's messages in stream order. The rules are the same on
every hub, so the same messages in the same order give every hub the same
nodes, serials and updates, numbered ``stream seq × SLOTS`` (then + 1, + 2 for
a message that gives several updates).

During a NATS outage a hub applies its own messages provisionally, numbered
in the spare range after its last applied stream position; when the stream
gives them back, the same rules make them no-ops.

Pure: no NATS, no I/O; the monotonic time is passed in.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..protocol import messages as m
from ..protocol.batches import EventOrigin, EventRun, UpdateFrame, auth_update_frames, node_update_frame
from ..protocol.cluster import (
    ClusterMessage,
    HubLost,
    HubStarted,
    NodeAuthEvent,
    NodeChanged,
    NodeForgotten,
    NodeJoined,
    NodeLeft,
)
from .registry import NodeEntry, NodeRegistry, UpdateRing

# Update numbers per stream position: the first is the message's own; the rest are for
# messages a hub applies provisionally while it cannot reach NATS (its outbox is bounded below this).
SLOTS = 65_536
# Per node: event seqs a later event of the node went past, which may still come. A publish that
# failed mid-window is sent again after the messages behind it were stored, so the stream can hold
# a node's events out of order; each such hole is applied when it comes. Older holes are given up.
MAX_HOLES = 1_024


@dataclass(slots=True)
class ClusterRing(UpdateRing):
    """The ring of a cluster hub, whose update numbers have gaps (stream seq × SLOTS).

    The numbers between two held updates say nothing of how many updates there
    were, so a resuming subscriber's missed count is at most the updates this ring
    has dropped (the ring starts empty at every start).
    """

    gone: int = field(init=False, default=0)  # updates dropped from the ring since it was made

    def extend(self, frames: list[UpdateFrame]) -> None:
        held = self.held + sum(frame.count for frame in frames)
        super(ClusterRing, self).extend(frames)
        self.gone += held - self.held

    def resume_point(self, seq: int) -> tuple[int, int]:
        point, missed = super(ClusterRing, self).resume_point(seq)
        return point, min(missed, self.gone)


@dataclass(frozen=True, slots=True)
class Displaced:
    """A node whose entry another connection now holds: the hub holding the old link closes it."""

    serial: int
    node_id: str  # the node id of the connection that took the entry
    hub: str  # the hub it connected to
    takeover: bool  # another node id (a hostname shared), not the same node moving


@dataclass(slots=True)
class Applied:
    """What applying one message gave: update frames for the ring and subscribers, links to close."""

    frames: list[UpdateFrame] = field(default_factory=list)
    displaced: list[Displaced] = field(default_factory=list)
    # auth events shown, for the history: (first update number, origin, node id, event maps)
    events: list[tuple[int, EventOrigin, str, list[dict[str, Any]]]] = field(default_factory=list)
    # nodes whose update went out, and what changed ("connected", "forgotten", attributes), for notices
    nodes: list[tuple[NodeEntry, list[str]]] = field(default_factory=list)


@dataclass(eq=False)
class ClusterView:
    """The registry and ring of one hub of a cluster, changed only by stream messages."""

    registry: NodeRegistry
    ring: UpdateRing
    hub_name: str  # this hub
    applied: int = 0  # the last stream sequence applied
    _runs: dict[str, str] = field(default_factory=dict)  # node id → the run of the hub that joined it
    _holes: dict[str, set[int]] = field(default_factory=dict)  # node id → seqs skipped over (MAX_HOLES)

    def holder(self, entry: NodeEntry) -> str:
        """The name of the hub that holds a node (where its commands go)."""
        return entry.hub

    def resend_after(self, entry: NodeEntry) -> int:
        """The seq a node joining should resend after: every event up to it is applied (holes count)."""
        holes = self._holes.get(entry.node_id)
        return min(holes) - 1 if holes else entry.last_event_seq

    def hints(self, hostname: str, node_id: str) -> tuple[int, int]:
        """The serial this view gives a node connecting with this hostname and id (0: none yet), and its next serial."""
        known = self.registry.known(hostname, node_id)
        return (known.serial if known else 0), self.registry.next_serial

    @property
    def position(self) -> int:
        """The update number of the last applied stream position."""
        return self.applied * SLOTS

    def apply(self, stream_seq: int, message: ClusterMessage, now: float) -> Applied:
        """Apply the message at ``stream_seq``; one at or below the last applied is skipped."""
        if stream_seq <= self.applied:
            return Applied()
        self.applied = stream_seq
        return self._apply(message, now, iter(range(stream_seq * SLOTS, (stream_seq + 1) * SLOTS)))

    def apply_local(self, message: ClusterMessage, now: float) -> Applied | None:
        """Apply one of this hub's own messages before the stream has it; None when the spare numbers ran out."""
        first = max(self.ring.seq, self.position) + 1
        if first >= (self.applied + 1) * SLOTS:
            return None
        return self._apply(message, now, iter(range(first, (self.applied + 1) * SLOTS)))

    def _apply(self, message: ClusterMessage, now: float, numbers: Iterator[int]) -> Applied:
        applied = Applied()
        match message:
            case NodeAuthEvent():
                self._auth(message, now, numbers, applied)
            case NodeJoined():
                self._join(message, now, numbers, applied)
            case NodeChanged():
                entry = self.registry.by_node_id(message.node_id)
                if entry is not None and entry.hub == message.hub:
                    update = m.StateUpdate(message.sessions, message.wg_peers, message.auth, message.labels)
                    changed = self.registry.apply(entry.serial, update, message.time)
                    if changed:
                        self._node_update(entry, changed, numbers, applied)
            case NodeLeft():
                entry = self.registry.by_node_id(message.node_id)
                if entry is not None and entry.hub == message.hub and entry.connected:
                    self.registry.disconnect(entry.serial, now, message.time)
                    self._node_update(entry, ["connected"], numbers, applied)
            case NodeForgotten():
                entry = self.registry.by_node_id(message.node_id)
                if entry is not None and entry.hub == message.hub and not entry.connected:
                    self.registry.forget(entry.serial)
                    self._runs.pop(entry.node_id, None)
                    self._holes.pop(entry.node_id, None)
                    self._node_update(entry, ["forgotten"], numbers, applied)
            case HubStarted():
                for entry in list(self.registry.nodes.values()):
                    if entry.hub == message.hub and entry.connected and self._runs.get(entry.node_id) != message.run:
                        self.registry.disconnect(entry.serial, now, message.time)
                        self._node_update(entry, ["connected"], numbers, applied)
            case HubLost():
                for entry in list(self.registry.nodes.values()):
                    if entry.hub == message.hub and entry.connected:
                        self.registry.disconnect(entry.serial, now, message.time)
                        self._node_update(entry, ["connected"], numbers, applied)
        if applied.frames:
            self.ring.seq = max(self.ring.seq, applied.frames[-1].last)
        return applied

    def _join(self, message: NodeJoined, now: float, numbers: Iterator[int], applied: Applied) -> None:
        # the publishing hub's setting decides, not this hub's: every hub builds the same view
        registry, kept = self.registry, self.registry.hostname_unique
        registry.hostname_unique = message.hostname_unique
        try:
            self._join_as_told(message, now, numbers, applied)
        finally:
            registry.hostname_unique = kept

    def _join_as_told(self, message: NodeJoined, now: float, numbers: Iterator[int], applied: Applied) -> None:
        registry = self.registry
        previous = registry.known(message.hostname, message.node_id)
        if (
            previous is not None
            and previous.node_id == message.node_id
            and previous.hub == message.hub
            and previous.connected
            and self._runs.get(message.node_id) == message.run
            and previous.address == message.address
        ):
            return  # applied already (provisionally, before the stream had it)
        if (
            previous is not None
            and previous.node_id == message.node_id
            and previous.hub == message.hub
            and self._runs.get(message.node_id) == message.run
        ):  # the same link told again (its hub was taken as lost, and is back): it keeps its state
            previous.connected = True
            previous.disconnected_at = None
            previous.address = message.address
            self._node_update(previous, ["connected"], numbers, applied)
            return
        if previous is not None and previous.connected:
            takeover = previous.node_id != message.node_id
            applied.displaced.append(Displaced(previous.serial, message.node_id, message.hub, takeover))
        if previous is not None and previous.node_id != message.node_id:
            self._runs.pop(previous.node_id, None)
        entry = registry.connect(
            message.hostname,
            message.address,
            message.node_id,
            message.monitors,
            now,
            message.time,
            hub=message.hub,
            serial_hint=message.serial,
            next_serial=message.next_serial,
        )
        self._runs[message.node_id] = message.run
        self._node_update(entry, ["connected"], numbers, applied)

    def _auth(self, message: NodeAuthEvent, now: float, numbers: Iterator[int], applied: Applied) -> None:
        event = message.event
        entry = self.registry.by_node_id(message.node_id)
        if entry is None:  # its join left the stream before this hub read it: learn it from the event
            entry = self.registry.connect(
                message.hostname, message.address, message.node_id, [], now, hub=message.hub, serial_hint=message.serial
            )
        seq, last = event["seq"], entry.last_event_seq
        if seq <= last:
            holes = self._holes.get(message.node_id)
            if holes is None or seq not in holes:
                return  # a resend: the cluster has it already
            holes.discard(seq)  # late, after a publish that failed mid-window: its first coming
            if not holes:
                del self._holes[message.node_id]
        else:
            if last and last + 1 < seq <= last + MAX_HOLES:
                holes = self._holes.setdefault(message.node_id, set())
                holes.update(range(last + 1, seq))
                if len(holes) > MAX_HOLES:
                    holes.difference_update(sorted(holes)[: len(holes) - MAX_HOLES])
            entry.last_event_seq = seq
        origin = EventOrigin(entry.serial, entry.hostname, entry.address)
        first = next(numbers)
        applied.frames += auth_update_frames(origin, first, EventRun([event]))
        applied.events.append((first, origin, message.node_id, [event]))

    def _node_update(self, entry: NodeEntry, changed: list[str], numbers: Iterator[int], applied: Applied) -> None:
        applied.frames.append(node_update_frame(next(numbers), entry.info(), changed))
        applied.nodes.append((entry, changed))
