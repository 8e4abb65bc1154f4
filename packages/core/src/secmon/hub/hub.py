"""The hub's shared state and policy: nodes, subscribers, the update ring, broadcast, command relays.

What every connection shares lives here, and nothing about how connections
are made: a node's update is stored, held in the ring and queued, as the same
frame, to every subscriber; a client's command is relayed to nodes under
hub-chosen request ids; one housekeeping sweep does every link's keepalive
duty, acknowledges events and forgets nodes past their grace period.

The connections (nodes.py, clients.py) import this module, never the other
way round: the hub sees them only as the small protocols below.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from ..config import HubSettings
from ..protocol import messages as m
from ..protocol import notices
from ..protocol.batches import MAX_BATCH, EventOrigin, EventRun, UpdateFrame, auth_update_frames, node_update_frame
from ..protocol.codec import encode
from ..protocol.notices import MUTE_ADDED, MUTE_EXPIRED, MUTE_REMOVED, SOURCE_FAILING, requester_text
from .audit import CommandAudit
from .context import EventJudge
from .health import CollectorWatch, OutageNotice, OutageTracker
from .history import EventHistory
from .mutes import BadMute
from .noticelog import NoticeLog
from .registry import NodeEntry, NodeRegistry, UpdateRing
from .store import HubStore

log = logging.getLogger("secmon.hub")

NO_MUTES = "this hub keeps no mute rules (a hub of a cluster does not yet)"


class Link(Protocol):
    """What the hub asks of a connection's link (wire.HubLink is one)."""

    @property
    def peer(self) -> str:
        """The peer's address, for messages."""
        ...

    def send(self, message: m.Message) -> bool:
        """Queue a message; False when it cannot be (the link is full or closing)."""
        ...

    def close(self, reason: str, final: m.Message | None = None) -> None:
        """End the link after what is queued, plus ``final``."""
        ...

    def tick(self, now: float) -> None:
        """Keepalive duty, once a housekeeping period."""
        ...


class ConnectedNode(Protocol):
    """A node's connection as the hub sees it (nodes.NodeConnection is one)."""

    @property
    def entry(self) -> NodeEntry: ...

    @property
    def link(self) -> Link: ...

    @property
    def relays(self) -> set[Relay]:
        """The commands running on this node."""
        ...

    def acknowledge(self) -> None:
        """Tell the node which of its events the hub now holds."""
        ...

    def fail_relays(self, why: str) -> None:
        """End every command running on this node with an error."""
        ...


class ConnectedClient(Protocol):
    """A client's connection as the hub sees it (clients.ClientConnection is one)."""

    @property
    def link(self) -> Link: ...

    @property
    def relays(self) -> set[Relay]:
        """The commands this client is waiting for."""
        ...

    def deliver(self, frames: list[UpdateFrame]) -> None:
        """Queue broadcast frames to a subscriber."""
        ...


@dataclass(slots=True, eq=False)
class Relay:
    """One command on one node, on behalf of one client request."""

    hub_id: int
    client: ConnectedClient
    request_id: int
    node: ConnectedNode
    answered: bool = False
    audit_id: int = 0  # the command record its outcome goes to (0: none, a command another hub asked for)

    @property
    def serial(self) -> int:
        return self.node.entry.serial


@dataclass(eq=False)
class Hub:
    """Everything the hub's connections share, and the rules for changing it."""

    settings: HubSettings
    token: str | None = None
    registry: NodeRegistry = field(init=False)
    ring: UpdateRing = field(init=False)
    # Updates per frame at most: half a subscriber's queue, so a frame always fits one that keeps up.
    batch_limit: int = field(init=False)
    nodes: dict[int, ConnectedNode] = field(default_factory=dict)
    links: Collection[Link] = field(default_factory=set)  # every open connection, for the keepalive sweep
    subscribers: set[ConnectedClient] = field(default_factory=set)
    relays: dict[int, Relay] = field(default_factory=dict)
    node_arrived: anyio.Event = field(default_factory=anyio.Event)
    node_waiters: int = 0  # commands waiting for their node to connect (NODE_WAIT_TIMEOUT)
    _next_hub_id: int = 1
    _failing_steps: dict[str, str] = field(default_factory=dict)  # housekeeping step → its last error, once said

    socket_gid: int | None = None  # SECMON_SOCKET_GROUP: its members may connect as clients

    store: HubStore | None = None
    history: EventHistory | None = None  # every auth event broadcast, for queries
    judge: EventJudge | None = None  # event context (GeoIP, first seen, fleet failures, mute rules)
    # In a cluster, the class serve_node makes a node's connection of (cluster.ClusterNodeConnection);
    # None: nodes.NodeConnection. Typed loosely: this module imports no connection module.
    node_connection_type: Any = None
    # The command audit and the notices kept for queries (in memory unless given ones with a store).
    audit: CommandAudit | None = None
    notice_log: NoticeLog | None = None
    outages: OutageTracker = field(init=False)  # node_down / node_back
    collectors: CollectorWatch = field(default_factory=CollectorWatch)  # collector_failed / collector_ok

    def __post_init__(self) -> None:
        self.registry = NodeRegistry(self.settings.hostname_unique, self.settings.disconnect_grace)
        self.outages = OutageTracker(self.settings.node_down_after)
        if self.audit is None:
            self.audit = CommandAudit(self.settings.audit_max)
        if self.notice_log is None:
            self.notice_log = NoticeLog(self.settings.notices_max)
        self.batch_limit = max(1, min(MAX_BATCH, self.settings.subscriber_queue // 2))
        fresh = int(time.time() * 1_000_000)
        if self.store is None:
            self.ring = UpdateRing(self.settings.ring_size, start=fresh)
            return
        first, frames = self.store.load_ring()
        start = frames[-1].last + 1 if frames else fresh  # a stored lineage goes on without a gap
        self.ring = UpdateRing(self.settings.ring_size, start=start, first=first or start)
        self.ring.load(frames)
        assert self.ring.first is not None  # the ring set it
        self.store.remember_first(self.ring.first)

    # --- broadcast ---------------------------------------------------------

    def publish(self, frames: list[UpdateFrame], node: NodeEntry | None = None) -> None:
        """Store update frames (before anyone sees them), hold them in the ring, queue them to every subscriber.

        The same bytes go to every subscriber. With ``node``, the node's dedup mark is stored
        with the frames.
        """
        if self.store is not None:
            self.store.save(frames, node.node_id if node else None, node.last_event_seq if node else 0)
        self.ring.extend(frames)
        if self.subscribers:
            for subscriber in tuple(self.subscribers):  # one too slow leaves the set while we go
                subscriber.deliver(frames)

    def publish_node(self, entry: NodeEntry, changed: list[str]) -> None:
        """Broadcast a node's state after a change; ``changed`` names what changed."""
        self.publish([node_update_frame(self.ring.next_seq(), entry.info(), changed)])

    def publish_events(self, entry: NodeEntry, run: EventRun, origin: EventOrigin) -> None:
        """Broadcast a node's new auth events, numbered on from the ring's sequence.

        ``origin`` is the entry as subscribers see it (its connection packs it once). The
        node's dedup mark is stored with the events; the history keeps them (an append). The
        judge decides their contexts first (None when no event has one: the frames are then
        the plain splice), and a source it finds failing is announced before them.
        """
        contexts = None
        judge = self.judge
        if judge is not None:  # its notices (a source failing) are numbered before these events
            try:
                contexts = judge.judge(run.events, origin, time.time(), time.monotonic, self._announce_failing)
            except Exception as exc:  # a bug in judging must not cost the events their relay
                log.error("event context failed for %d events: %r", len(run.events), exc, exc_info=True)
        first = self.ring.reserve(len(run.events)).start
        self.publish(auth_update_frames(origin, first, run, self.batch_limit, contexts), entry)
        if self.history is not None:
            self.history.add(first, origin, entry.node_id, run.events, contexts)

    def notice(self, kind: str, **fields: Any) -> m.NoticeUpdate:
        """Broadcast a notice of ``kind`` (notices.NOTICE_KINDS) with the fields of its kind, numbered
        on from the ring like any update; subscribers get it, and the ring and store keep it."""
        notice = m.NoticeUpdate(self.ring.next_seq(), time.time(), kind, **fields)
        self.publish([UpdateFrame(notice.seq, notice.seq, encode(notice))])
        assert self.notice_log is not None  # __post_init__ made one
        self.notice_log.add(notice)
        return notice

    # --- event context and mute rules ----------------------------------------

    def _announce_failing(self, failures: m.SourceFailures) -> int:
        """A source became failing across the fleet: its notice, numbered before the events that made it."""
        return self.notice(SOURCE_FAILING, source=failures).seq

    def mute_rules(self) -> list[m.MuteRule]:
        """The mute rules in force; BadMute on a hub that keeps none (an empty list would read as
        "nothing muted")."""
        if self.judge is None:
            raise BadMute(NO_MUTES)
        return self.judge.mutes.rules()

    def add_mute(self, request: m.AddMute, requester: m.Requester) -> m.MuteRule:
        """Add a mute rule for ``requester`` (with the request's on_behalf, bounded) and say so (a
        mute_added notice); BadMute names what is wrong."""
        if self.judge is None:
            raise BadMute(NO_MUTES)
        by = requester_text(requester)
        rule = self.judge.mutes.add(request, by, time.time())
        log.info("mute rule %d added by %s", rule.id, by)
        self.notice(MUTE_ADDED, mute=m.MuteChange(rule, by))
        return rule

    def remove_mute(self, request: m.RemoveMute, requester: m.Requester) -> m.MuteRule | None:
        """Remove a mute rule for ``requester`` (with the request's on_behalf, bounded) and say so (a
        mute_removed notice); None when there is no such rule."""
        if self.judge is None:
            raise BadMute(NO_MUTES)
        rule = self.judge.mutes.remove(request.id)
        if rule is not None:
            by = requester_text(requester)
            log.info("mute rule %d removed by %s", rule.id, by)
            self.notice(MUTE_REMOVED, mute=m.MuteChange(rule, by))
        return rule

    def context_sweep(self, now: float) -> None:
        """Housekeeping for event context: failing sources that went quiet, mute rules that expired."""
        if self.judge is None:
            return
        ended, expired = self.judge.housekeeping(now, time.monotonic())
        for failures in ended:
            self.notice(SOURCE_FAILING, source=failures)
        for rule in expired:
            log.info("mute rule %d expired", rule.id)
            self.notice(MUTE_EXPIRED, mute=m.MuteChange(rule))

    def status(self, request_id: int) -> m.HubStatus:
        """The answer to a client's GetStatus."""
        return m.HubStatus(request_id, len(self.nodes))

    def node_state(self, entry: NodeEntry, update: m.StateUpdate) -> None:
        """A node's StateUpdate: the attributes that really changed are broadcast, then a
        collector_failed or collector_ok notice for each collector that went from working to
        failing or back."""
        collectors = self.collectors.changes(entry.serial, update)
        changed = self.registry.apply(entry.serial, update, time.time())
        if changed:
            self.publish_node(entry, changed)
        for state in collectors:
            kind = notices.COLLECTOR_FAILED if state.message else notices.COLLECTOR_OK
            self.notice(kind, node=node_ref(entry), collector=state)

    # --- node lifecycle ----------------------------------------------------

    def join_refusal(self, hello: m.Hello) -> str | None:
        """Why this hub cannot take a node now, beyond the hello's own checks (a cluster's full outbox)."""
        return None

    async def join_node(self, hello: m.Hello, address: str) -> NodeEntry:
        """The entry of a node whose hello was accepted: its serial and the last event seq held from it."""
        entry = self.registry.connect(
            hello.hostname, address, hello.node_id, hello.monitors, anyio.current_time(), time.time()
        )
        if self.store is not None and hello.node_id:
            entry.last_event_seq = max(entry.last_event_seq, self.store.last_event_seq(hello.node_id))
        return entry

    def node_connected(self, conn: ConnectedNode) -> None:
        """A node's connection is up: it replaces an older one of the same entry, and subscribers hear."""
        old = self.nodes.get(conn.entry.serial)
        if old is not None and old is not conn:
            takeover = conn.entry.takeover
            why = takeover.told_to_replaced() if takeover else "a newer connection from this same node took its place"
            by = f"another node with its hostname, from {conn.link.peer}" if takeover else "its own newer connection"
            old.link.close(f"replaced by {by}", m.Error(m.REPLACED, why))
            old.fail_relays("node reconnected")
        self.nodes[conn.entry.serial] = conn
        self.publish_node(conn.entry, ["connected"])
        self.outages.joined(conn.entry.serial, node_ref(conn.entry), anyio.current_time(), time.time())
        self.node_arrived.set()
        self.node_arrived = anyio.Event()

    def node_disconnected(self, conn: ConnectedNode) -> None:
        """A node's connection ended: its commands fail; the node stays known for its grace period."""
        conn.fail_relays("node disconnected")
        if self.nodes.get(conn.entry.serial) is conn:
            del self.nodes[conn.entry.serial]
            now, wall = anyio.current_time(), time.time()
            entry = self.registry.disconnect(conn.entry.serial, now, wall)
            if entry is not None:
                self.publish_node(entry, ["connected"])
                owed = self.outages.left(entry.serial, node_ref(entry), now, wall)  # a node_back not given yet
                if owed is not None:
                    self.outage_notice(owed)

    async def housekeeping(self) -> None:
        """Once a period: keepalives for every link, acks for events taken since the last one,
        nodes past their grace forgotten, node_down and node_back notices that are due. One sweep
        instead of a timer per connection; its period is a quarter of the shortest of these times,
        so each comes at most that late."""
        settings = self.settings
        shortest = min(settings.disconnect_grace, settings.link.keepalive, settings.node_down_after)
        period = max(0.01, min(1.0, shortest / 4))
        while True:
            await anyio.sleep(period)
            self._guarded("keepalives", self._tick_links, time.monotonic())
            self._guarded("forgetting nodes", self.forget_expired, anyio.current_time())
            self._guarded("node down/back notices", self._outage_sweep, anyio.current_time())
            self._guarded("event context sweep", self.context_sweep, time.time())

    def _guarded(self, step: str, run: Callable[[float], None], now: float) -> None:
        """Run one housekeeping step; an exception (a bug, a state file gone bad) is one log line,
        repeated only when it changes, and the sweep and the hub go on."""
        try:
            run(now)
        except Exception as exc:
            if self._failing_steps.get(step) != repr(exc):
                log.error("housekeeping: %s failed: %r", step, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._failing_steps[step] = repr(exc)
        else:
            self._failing_steps.pop(step, None)

    def _tick_links(self, now: float) -> None:
        for link in list(self.links):
            link.tick(now)
        for conn in list(self.nodes.values()):
            conn.acknowledge()

    def _outage_sweep(self, now: float) -> None:
        for due in self.outages.sweep(now):
            self.outage_notice(due)

    def forget_expired(self, now: float) -> None:
        """Forget the nodes past their grace period, and say so."""
        for entry in self.registry.expire(now):
            log.info("forgot node %d (%s) after the grace period", entry.serial, entry.hostname)
            self.publish_node(entry, ["forgotten"])
            self.outages.forgotten(entry.serial)
            self.collectors.forgotten(entry.serial)

    def returning_events(self, serial: int, events: list[dict[str, Any]]) -> None:
        """Events a node delivered while its node_back is owed (its connection calls this)."""
        self.outages.delivered(serial, events)

    def outage_notice(self, due: OutageNotice) -> None:
        """Give a node_down or node_back notice, and log it."""
        outage = due.outage
        if due.kind == notices.NODE_DOWN:
            log.warning("node %d (%s) is down: gone %g s", due.node.serial, due.node.hostname, outage.down_after)
        else:
            log.info(
                "node %d (%s) is back after %.0f s, with %d events from its absence",
                due.node.serial, due.node.hostname, outage.away or 0.0, outage.events,
            )  # fmt: skip
        self.notice(due.kind, node=due.node, outage=outage)

    # --- command relay -----------------------------------------------------

    def command_node(self, entry: NodeEntry) -> ConnectedNode | None:
        """What a command for this node goes through (its connection here); None when it is not connected."""
        return self.nodes.get(entry.serial)

    def command_nodes(self) -> list[ConnectedNode]:
        """What a command for every node goes through: each connected node's, by serial."""
        return sorted(self.nodes.values(), key=lambda c: c.entry.serial)

    async def node_change(self) -> None:
        """Until a node connects (a command waits for its node)."""
        self.node_waiters += 1
        try:
            await self.node_arrived.wait()
        finally:
            self.node_waiters -= 1

    def audit_command(
        self, requester: m.Requester, request: m.Execute, nodes: list[ConnectedNode], asked: float
    ) -> int:
        """Open the audit record of a client's command request that runs on ``nodes`` (none: it ran
        nowhere, and its command_run notice goes out now); its id, for the relays."""
        assert self.audit is not None  # __post_init__ made one
        where = [(node.entry.serial, node.entry.hostname) for node in nodes]
        record = self.audit.open(requester, request.label, request.target, where, asked)
        if record.finished is not None:
            self.notice(notices.COMMAND_RUN, command=record)
        return record.id

    def start_relay(self, client: ConnectedClient, request: m.Execute, node: ConnectedNode, audit_id: int = 0) -> Relay:
        """Run a client's command on one node, under a request id of the hub's own; its outcome goes
        to the audit record ``audit_id``."""
        relay = Relay(self._next_hub_id, client, request.request_id, node, audit_id=audit_id)
        self._next_hub_id += 1
        self.relays[relay.hub_id] = relay
        node.relays.add(relay)
        client.relays.add(relay)
        if not node.link.send(m.RunCommand(request_id=relay.hub_id, label=request.label, stream=request.stream)):
            text = "the node's link is closing or its queue is full"
            self.finish_relay(relay, m.CommandResult(request.request_id, m.ERROR, message=text, serial=relay.serial))
        return relay

    def finish_relay(self, relay: Relay, result: m.CommandResult) -> None:
        """Hand a command's result to the client that asked, once; the audit has the node's outcome,
        and the request's command_run notice goes out with the last one."""
        if self.relays.pop(relay.hub_id, None) is None:
            return
        relay.node.relays.discard(relay)
        relay.client.relays.discard(relay)
        relay.client.link.send(result)
        if relay.audit_id and self.audit is not None:
            record = self.audit.outcome(relay.audit_id, relay.serial, result.status, result.exit_code, time.time())
            if record is not None:
                self.notice(notices.COMMAND_RUN, command=record)

    def cancel_relay(self, relay: Relay, status: str, message: str) -> None:
        """Give up on a relay: the node kills the command, the client gets the result now."""
        relay.node.link.send(m.CancelCommand(relay.hub_id))
        result = m.CommandResult(relay.request_id, status, message=message, serial=relay.serial)
        self.finish_relay(relay, result)


def node_ref(entry: NodeEntry) -> m.NodeRef:
    """The node a notice is about."""
    return m.NodeRef(entry.serial, entry.hostname, entry.address)
