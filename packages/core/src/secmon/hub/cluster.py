"""A hub as one of a cluster: its nodes' changes go through NATS JetStream, the stream's order is the view's.

Chosen once, at start-up, when SECMON_NATS_URL is set (docs/cluster.md); a hub
alone never imports this module, nor nats. ``ClusterHub`` is the Hub with the
cluster's behaviour: a node's hello, state, events and departure become stream
messages (through the outbox), and the hub's registry, ring and subscribers
change only when the stream's messages are applied (``ClusterView``). The NATS
side, connect, stream, publisher and ordered consumer, is ``ClusterLink``.

Exceptions of nats-py are mapped here, at the edge, to one line each.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections import deque
from typing import Any

import anyio
import nats
import nats.errors
import nats.js.errors
from anyio.abc import TaskGroup
from nats.js import api

from ..config import HubSettings, NatsSettings
from ..errors import ConfigError
from ..protocol import messages as m
from ..protocol import notices
from ..protocol.batches import EventOrigin, EventRun
from ..protocol.cluster import (
    ClusterMessage,
    HubLost,
    HubStarted,
    NodeAuthEvent,
    NodeChanged,
    NodeForgotten,
    NodeJoined,
    NodeLeft,
    RemoteProtocolError,
    decode_cluster,
    encode_cluster,
)
from .health import COLLECTORS
from .hub import ConnectedNode, Hub, node_ref
from .nodes import NodeConnection
from .outbox import Outbox, Pending
from .registry import NodeEntry
from .remote import RemoteCommands
from .view import Applied, ClusterRing, ClusterView

log = logging.getLogger("secmon.hub")

MSG_ID = "Nats-Msg-Id"
DUPLICATE_WINDOW = 120.0  # seconds JetStream remembers a message id (its default)
RECONNECT_WAIT = 1.0  # seconds between attempts to reach NATS once it is gone
# Messages published and not yet acknowledged: enough to keep JetStream busy across a network
# round trip, few enough that what a failure sends again is small (and far below nats-py's 4,000).
PUBLISH_WINDOW = 256
# Heartbeats a hub may miss before another hub tells the cluster it is lost (its nodes disconnected).
MISSED_HEARTBEATS = 3
NO_LIMIT = 2**63  # above every event seq
# Heartbeats heard are kept per hub name: names longer than this, or more hubs than this, are ignored.
MAX_HUB_NAME = 255  # bytes
MAX_HUBS = 10_000


def subject_token(name: str) -> str:
    """A hub name as one subject token: ``.``, ``*``, ``>`` and white space become ``_``."""
    return "".join("_" if c in ".*>" or c.isspace() else c for c in name)


def stream_name(cluster: str) -> str:
    return f"{cluster.replace('-', '_')}_UPDATES"


def _tls_context(settings: NatsSettings) -> ssl.SSLContext | None:
    wanted = settings.tls_ca or settings.tls_cert or any(url.startswith("tls:") for url in settings.servers)
    if not wanted:
        return None
    context = ssl.create_default_context(cafile=str(settings.tls_ca) if settings.tls_ca else None)
    if settings.tls_cert is not None and settings.tls_key is not None:
        context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    return context


def refused(exc: BaseException) -> bool:
    """NATS answered and said no (credentials, no JetStream, a JetStream error): waiting will not help."""
    if isinstance(exc, nats.errors.AuthorizationError) or "authorization violation" in str(exc).lower():
        return True
    no_jetstream = (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError)
    return isinstance(exc, no_jetstream) or (
        isinstance(exc, nats.js.errors.APIError) and not isinstance(exc, nats.js.errors.NotFoundError)
    )


def nats_reason(exc: BaseException) -> str:
    """One line for what went wrong with NATS."""
    if isinstance(exc, nats.errors.AuthorizationError) or "authorization violation" in str(exc).lower():
        return "NATS refused our credentials (authorization violation)"
    if isinstance(exc, nats.js.errors.NoStreamResponseError | nats.errors.NoRespondersError):
        return "NATS answered, but without JetStream: start nats-server with -js (JetStream enabled)"
    if isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return "JetStream is not available on this NATS server (enable it, or check the account's limits)"
    if isinstance(exc, nats.js.errors.APIError):
        return f"JetStream refused: {exc.description or exc}"
    if isinstance(exc, nats.errors.NoServersError):
        return "no NATS server could be reached"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def denied(exc: BaseException | None) -> bool:
    """NATS refused one of our operations by the account's permissions (a publish, a subscribe)."""
    return exc is not None and "permissions violation" in str(exc).lower()


def publish_failure(exc: BaseException, last_error: BaseException | None, timeout: float) -> str:
    """One line for a failed publish: NATS's own word when it denied us (the publish only sees a timeout)."""
    if denied(last_error):
        assert last_error is not None
        return f"NATS denied the publish: {nats_reason(last_error)}"
    if isinstance(exc, TimeoutError):
        return f"no publish acknowledgement within {timeout:g} s"
    return nats_reason(exc)


async def ensure_stream(js: Any, config: api.StreamConfig) -> bool:
    """Make sure the stream exists: True when we created it.

    Hubs starting together may all find it missing; those that lose the race to
    create it are refused, and find it there when they look again.
    """
    try:
        await js.stream_info(config.name)
        return False
    except nats.js.errors.NotFoundError:
        pass
    try:
        await js.add_stream(config)
        return True
    except nats.js.errors.APIError as exc:
        try:
            await js.stream_info(config.name)  # another hub made it meanwhile
        except nats.js.errors.NotFoundError:
            raise exc from None
        return False


class ClusterNodeConnection(NodeConnection):
    """A node's connection on a cluster hub: acknowledged only what is durable (docs/cluster.md).

    Its ``entry`` is the hub's own record of this link (what it received); the
    cluster view's entry for the node changes only with the stream.
    """

    durable_seq: int = 0  # the node's last event that JetStream or the outbox on disk holds
    acked_seq: int = 0

    def acknowledge(self) -> None:
        if self.durable_seq > self.acked_seq:
            self.acked_seq = self.durable_seq
            self.unacknowledged = 0
            self.link.send(m.Ack(self.durable_seq))


class ClusterHub(Hub):
    """The Hub of a cluster: changes go out as stream messages and come back, applied, from the stream."""

    def __init__(self, settings: HubSettings, outbox: Outbox, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        assert settings.nats is not None  # a cluster hub is made only with SECMON_NATS_URL
        self.nats_settings = settings.nats
        self.name = settings.nats.hub_name
        self.run = uuid.uuid4().hex[:12]  # this run of the hub, in its message ids and joins
        self._sent = 0
        self.ring = ClusterRing(settings.ring_size, start=1, first=1)
        self.view = ClusterView(self.registry, self.ring, self.name)
        self.outbox = outbox
        self.node_connection_type = ClusterNodeConnection
        self.unapplied: deque[tuple[int, Pending]] = deque()  # published, not yet back from the stream
        self.waiters: dict[str, anyio.Event] = {}  # message id → set once it is applied
        self.link_up: bool | None = None  # None until the first connect (or the first failure to)
        self.link_since = time.time()
        self.by_node_id: dict[str, ClusterNodeConnection] = {}
        self._forgetting: set[str] = set()
        self._outbox_full_said = False
        self.heartbeat = max(0.5, min(5.0, settings.nats.timeout))  # seconds between "alive" messages
        self.heard: dict[str, float] = {}  # hub name → when (monotonic) its last heartbeat came
        self.lost: set[str] = set()  # hubs this hub said were lost, until heard again
        self.up_at = 0.0  # when (monotonic) the link last came up
        self.clash = anyio.Event()  # set when another running hub has this hub's name
        self._started = False  # this run's HubStarted came back from the stream
        self.caught_up = False  # the stream as it stood at start is applied: notices are told from now on
        self.link = ClusterLink(self)
        self.commands = RemoteCommands(self, subject_token, nats_reason)  # commands across hubs (hub/remote.py)

    # --- out: what this hub tells the cluster -----------------------------

    def _message_id(self) -> str:
        self._sent += 1
        return f"{self.name}:{self.run}:{self._sent}"

    def send(self, message: ClusterMessage, msg_id: str | None = None, node_id: str = "", seq: int = 0) -> bool:
        """Put a message in the outbox (applied at once, provisionally, while NATS is away); False when full."""
        item = Pending(msg_id or self._message_id(), encode_cluster(message), node_id, seq)
        control = not isinstance(message, NodeAuthEvent | NodeJoined)  # may use the outbox's reserve
        if not self.outbox.put(item, control):
            if control:  # rare, and the cluster will not know: said each time
                log.error(
                    "cluster outbox full (%d messages, SECMON_NATS_OUTBOX): %s of node %r from hub %s dropped",
                    self.outbox.limit, type(message).__name__, getattr(message, "node_id", ""), message.hub,
                )  # fmt: skip
            elif not self._outbox_full_said:
                self._outbox_full_said = True
                log.warning(
                    "cluster outbox full (%d messages, SECMON_NATS_OUTBOX): nodes keep their new events until it "
                    "drains",
                    self.outbox.limit,
                )
            return False
        self._outbox_full_said = False
        if not self.link_up:
            self._apply_local(message, item.msg_id)
        if seq and self.outbox.durable:
            self._durable(node_id, seq)
        self.link.wake()
        return True

    def publish_events(self, entry: NodeEntry, run: EventRun, origin: EventOrigin) -> None:
        """A node's new events, each its own stream message, de-duplicated by node id and seq."""
        node_id = entry.node_id
        with self.outbox.batch():  # one commit for the read, before the node can be acknowledged
            for event in run.events:
                seq = event["seq"]
                message = NodeAuthEvent(self.name, node_id, entry.hostname, entry.address, event, entry.serial)
                if not self.send(message, f"{node_id}:{seq}", node_id, seq):
                    conn = self.nodes.get(entry.serial)
                    if conn is not None:  # it resends what we did not take once it reconnects
                        entry.last_event_seq = seq - 1
                        conn.link.close("cluster outbox full", m.Error("busy", "the hub cannot take events now"))
                    return

    def node_state(self, entry: NodeEntry, update: m.StateUpdate) -> None:
        message = NodeChanged(
            self.name, entry.node_id, time.time(), entry.serial, update.sessions, update.wg_peers, update.auth,
            update.labels,
        )  # fmt: skip
        self.send(message)

    async def join_node(self, hello: m.Hello, address: str) -> NodeEntry:
        """Tell the cluster, wait until the view has it, and answer from the view: serial and last event seq."""
        serial, next_serial = self.view.hints(hello.hostname, hello.node_id)
        message = NodeJoined(
            self.name, self.run, hello.node_id, hello.hostname, address, time.time(), list(hello.monitors), serial,
            next_serial, self.settings.hostname_unique,
        )  # fmt: skip
        msg_id = self._message_id()
        applied = self.waiters[msg_id] = anyio.Event()
        try:
            self.send(message, msg_id)  # check_node_hello made sure there is room (join_refusal)
            with anyio.move_on_after(min(self.nats_settings.timeout, self.settings.link.handshake_timeout / 2)):
                await applied.wait()
            if not applied.is_set():  # the stream is slow: show the node here at once, the stream agrees later
                self._apply_local(message, msg_id)
        finally:
            self.waiters.pop(msg_id, None)
        view = self.registry.known(hello.hostname, hello.node_id)
        assert view is not None  # the join was applied, from the stream or here
        return NodeEntry(
            view.serial, hello.hostname, address, hello.node_id, list(hello.monitors),
            last_event_seq=min(self.view.resend_after(view), self._held_after(hello.node_id)), hub=self.name,
        )  # fmt: skip

    def _held_after(self, node_id: str) -> int:
        """The node's seq before its first event only the outbox in memory holds: a crash would lose the rest.

        Provisional applies raise the view's last seq during an outage; a node
        welcomed with it would drop events that are not durable yet.
        """
        if self.outbox.durable:
            return NO_LIMIT
        return min((item.event_seq - 1 for item in self.outbox.items() if item.event_seq and item.node_id == node_id),
                   default=NO_LIMIT)  # fmt: skip

    def join_refusal(self, hello: m.Hello) -> str | None:
        if not hello.node_id:  # the cluster knows a node by its id: without one, its departure could not be told
            return "a node in a cluster needs a node id (its hello has none)"
        if not self.outbox.room():
            return f"the hub's cluster outbox is full ({len(self.outbox)} messages wait for NATS)"
        return None

    def node_connected(self, conn: ConnectedNode) -> None:
        """The join is in the view already; this hub now holds the node's link (and drops an older one)."""
        old = self.nodes.get(conn.entry.serial)
        if old is not None and old is not conn:
            old.link.close("replaced by its own newer connection", m.Error(m.REPLACED, "a newer connection took over"))
            old.fail_relays("node reconnected")
        self.nodes[conn.entry.serial] = conn
        if isinstance(conn, ClusterNodeConnection):
            conn.durable_seq = conn.acked_seq = conn.entry.last_event_seq
            self.by_node_id[conn.entry.node_id] = conn
        self.node_arrived.set()
        self.node_arrived = anyio.Event()

    def node_disconnected(self, conn: ConnectedNode) -> None:
        conn.fail_relays("node disconnected")
        entry = conn.entry
        if self.nodes.get(entry.serial) is conn:
            del self.nodes[entry.serial]
            if self.by_node_id.get(entry.node_id) is conn:
                del self.by_node_id[entry.node_id]
            self.send(NodeLeft(self.name, entry.node_id, time.time(), entry.serial))

    def forget_expired(self, now: float) -> None:
        """Nodes this hub held, gone for the grace period: the hub tells the cluster to forget them."""
        self._judge_hubs(time.monotonic())
        grace = self.settings.disconnect_grace
        for entry in list(self.registry.nodes.values()):
            if (
                (entry.hub == self.name or entry.hub in self.lost)
                and not entry.connected
                and entry.disconnected_at is not None
                and now - entry.disconnected_at >= grace
                and entry.node_id not in self._forgetting
                # named by its holder, as the rule reads (a lost hub cannot say it itself); not taken: tried again
                and self.send(NodeForgotten(entry.hub, entry.node_id, entry.serial))
            ):
                self._forgetting.add(entry.node_id)
                log.info("forgetting node %d (%s) after the grace period", entry.serial, entry.hostname)

    def alive(self, hub: str, run: str = "") -> None:
        """A heartbeat of ``hub``'s ``run`` came (core NATS, not the stream)."""
        if hub == self.name and run and run != self.run:
            self.name_clash("heard its heartbeat")
            return
        if len(hub.encode()) > MAX_HUB_NAME or (hub not in self.heard and len(self.heard) >= MAX_HUBS):
            return  # not a hub name, or more hubs than a cluster has: whatever sent it is not one of us
        self.heard[hub] = time.monotonic()
        self.lost.discard(hub)

    def name_clash(self, how: str) -> None:
        """Another running hub has this hub's name: each would disconnect the other's nodes. This hub stops."""
        if not self.clash.is_set():
            log.error(
                "another hub runs with this hub's name %r (SECMON_HUB_NAME; %s): stopping; give each hub its own name",
                self.name, how,
            )  # fmt: skip
            self.clash.set()

    async def _stop_on_clash(self) -> None:
        await self.clash.wait()
        raise ConfigError(f"another hub of the cluster runs with this hub's name {self.name!r} (SECMON_HUB_NAME)")

    def _judge_hubs(self, now: float) -> None:
        """Tell the cluster about a hub that holds connected nodes but has gone silent.

        Only while our own link has been up long enough to have heard it; every hub
        may say so, and the second saying changes nothing.
        """
        if not self.link_up or now - self.up_at < MISSED_HEARTBEATS * self.heartbeat:
            return
        holders = {entry.hub for entry in self.registry.nodes.values() if entry.connected}
        for hub in holders - {self.name} - self.lost:
            silent = now - self.heard.get(hub, self.up_at) > MISSED_HEARTBEATS * self.heartbeat
            if silent and self.send(HubLost(hub, self.name, time.time())):  # not taken: tried again next time
                self.lost.add(hub)
                log.warning("hub %s is silent: its nodes are shown disconnected until they connect again", hub)

    def _announce_again(self) -> None:
        """Another hub took us for lost: tell the cluster again about every node we hold."""
        for conn in list(self.nodes.values()):
            entry = conn.entry
            serial, next_serial = self.view.hints(entry.hostname, entry.node_id)
            monitors = list(entry.monitors)
            message = NodeJoined(
                self.name, self.run, entry.node_id, entry.hostname, entry.address, time.time(), monitors, serial,
                next_serial, self.settings.hostname_unique,
            )  # fmt: skip
            self.send(message)

    def _durable(self, node_id: str, seq: int) -> None:
        conn = self.by_node_id.get(node_id)
        if conn is not None and seq > conn.durable_seq:
            conn.durable_seq = seq

    # --- in: applying what the cluster says -------------------------------

    def _apply_local(self, message: ClusterMessage, msg_id: str) -> None:
        applied = self.view.apply_local(message, anyio.current_time())
        if applied is not None:
            self._take(applied)
        self._applied(msg_id)

    def apply_stream(self, stream_seq: int, data: bytes, msg_id: str) -> None:
        """Apply the stream's message at ``stream_seq`` (the consumer calls this in stream order)."""
        if 0 < self.view.applied < stream_seq - 1:  # the stream's limits dropped them before we read them
            log.warning(
                "cluster stream messages %d to %d are gone (SECMON_NATS_MAX_AGE / MAX_BYTES) before this hub applied "
                "them: its view may miss their changes",
                self.view.applied + 1, stream_seq - 1,
            )  # fmt: skip
        try:
            message = decode_cluster(data)
        except RemoteProtocolError as exc:
            log.warning("cluster stream message %d skipped: %s", stream_seq, exc)
            self.view.applied = max(self.view.applied, stream_seq)
            return
        try:
            applied = self.view.apply(stream_seq, message, anyio.current_time())
        except Exception as exc:  # a message the checks let through but the view cannot take: every hub skips it
            log.error("cluster stream message %d skipped: cannot apply it: %s", stream_seq, exc)
            self.view.applied = max(self.view.applied, stream_seq)
            applied = Applied()
        self._take(applied)
        while self.unapplied and self.unapplied[0][0] <= stream_seq:
            self.unapplied.popleft()
        if isinstance(message, NodeForgotten):
            self._forgetting.discard(message.node_id)
        elif isinstance(message, HubStarted) and message.hub == self.name:
            if message.run == self.run:
                self._started = True
            elif self._started:  # a start after ours, of another run: not our own past
                self.name_clash(f"it started, stream message {stream_seq}")
        elif isinstance(message, HubLost) and message.hub == self.name:
            log.warning("hub %s took this hub for lost; telling the cluster about our nodes again", message.by)
            self._announce_again()
        self._applied(msg_id)

    def _applied(self, msg_id: str) -> None:
        waiter = self.waiters.get(msg_id)
        if waiter is not None:
            waiter.set()

    def _take(self, applied: Applied) -> None:
        """Broadcast what a message gave, and close the links of nodes another connection took over."""
        for displaced in applied.displaced:
            if displaced.serial not in self.nodes:
                continue  # not held here
            held = self.nodes[displaced.serial]
            if displaced.hub == self.name and held.entry.node_id == displaced.node_id:
                continue  # our own newer connection of the node: node_connected replaces the old one
            del self.nodes[displaced.serial]
            if self.by_node_id.get(held.entry.node_id) is held:
                del self.by_node_id[held.entry.node_id]
            where = f"hub {displaced.hub}"
            why = (
                f"another node with its hostname connected to {where}"
                if displaced.takeover
                else f"the node connected to {where}"
            )
            held.link.close(f"replaced: {why}", m.Error(m.REPLACED, why))
            held.fail_relays("node moved to another connection")
        if applied.frames:
            self.publish(applied.frames)
            if self.history is not None:
                for run in applied.events:
                    self.history.add(*run)
            self._notice_nodes(applied)
            if self.node_waiters:  # a command waits for its node: perhaps it connected to another hub
                self.node_arrived.set()
                self.node_arrived = anyio.Event()

    def _notice_nodes(self, applied: Applied) -> None:
        """node_down, node_back and collector notices from what the view applied: every hub of the
        cluster tells its subscribers about every node, from the same stream.

        While catching up at start, a node whose link ended NODE_DOWN_AFTER ago or more is taken as
        said down (the hubs running then said it), one that came back is no news, and collectors'
        states are learned, not told.
        """
        now, wall = anyio.current_time(), time.time()
        telling = self.caught_up
        outages = self.outages
        for entry, changed in applied.nodes:
            serial = entry.serial
            if "forgotten" in changed:
                outages.forgotten(serial)
                self.collectors.forgotten(serial)
                continue
            if "connected" in changed:
                when = entry.last_state_update or wall  # the time in the message: when it joined or left
                if not telling and entry.connected:
                    outages.forgotten(serial)  # back before this hub started: the running hubs told it
                elif entry.connected:
                    outages.joined(serial, node_ref(entry), now, when)
                else:
                    said = not telling and wall - when >= outages.down_after
                    owed = outages.left(serial, node_ref(entry), now, when, said)
                    if owed is not None:
                        self.outage_notice(owed)
            collectors = [name for name in changed if name in COLLECTORS]
            if collectors:
                update = m.StateUpdate(**{name: getattr(entry, name) for name in collectors})
                for state in self.collectors.changes(serial, update):
                    if telling:
                        kind = notices.COLLECTOR_FAILED if state.message else notices.COLLECTOR_OK
                        self.notice(kind, node=node_ref(entry), collector=state)
        if outages.returning:
            for _first, origin, _node_id, events in applied.events:
                if origin.serial in outages.returning:
                    outages.delivered(origin.serial, events)

    def returning_events(self, serial: int, events: list[dict[str, Any]]) -> None:
        """Counted from the view instead (``_notice_nodes``), for every hub's nodes alike."""

    # --- the link's state -------------------------------------------------

    def link_lost(self, reason: str) -> None:
        """NATS is gone: what is on its way is applied here now, and so is what comes until it is back."""
        if self.link_up is False:
            return
        self.link_up = False
        self.link_since = time.time()
        log.warning("cluster link down: %s; serving this hub's nodes alone until NATS is back", reason)
        pending = [item for _, item in self.unapplied] + self.outbox.items()
        self.unapplied.clear()
        for item in pending:
            try:
                message = decode_cluster(item.payload)
            except RemoteProtocolError:
                continue
            self._apply_local(message, item.msg_id)

    def link_restored(self) -> None:
        if self.link_up:
            return
        self.link_up = True
        self.link_since = time.time()
        self.up_at = time.monotonic()
        log.info("cluster link up: publishing %d held messages and catching up", len(self.outbox))

    def published(self, stream_seqs: list[int]) -> None:
        """JetStream acknowledged the outbox's oldest ``len(stream_seqs)`` messages, at these stream sequences."""
        items = self.outbox.pop(len(stream_seqs))
        durable = self.outbox.durable
        for stream_seq, item in zip(stream_seqs, items, strict=True):
            if self.link_up:
                self.unapplied.append((stream_seq, item))
            if item.event_seq and not durable:
                self._durable(item.node_id, item.event_seq)

    def status(self, request_id: int) -> m.HubStatus:
        """The hub and its cluster link: up or down since when, the outbox, the last applied sequence."""
        cluster = self.nats_settings.cluster
        return m.HubStatus(
            request_id, len(self.nodes), self.name, cluster, bool(self.link_up), self.link_since, len(self.outbox),
            self.view.position,
        )  # fmt: skip

    async def start(self, tg: TaskGroup) -> None:
        """Join the cluster: connect, catch up with the stream, say this hub (re)started; then run the link."""
        tg.start_soon(self._stop_on_clash)
        await self.link.start(tg)
        self.caught_up = True
        self.send(HubStarted(self.name, self.run, time.time()))
        tg.start_soon(self.commands.run)

    def command_node(self, entry: NodeEntry) -> ConnectedNode | None:
        return self.commands.node(entry)

    def command_nodes(self) -> list[ConnectedNode]:
        return self.commands.nodes()


class ClusterLink:
    """The NATS side of a cluster hub: one connection, the stream, one publisher, one ordered consumer.

    ``nc`` is the connected NATS client (None until the first connect), for whoever
    needs core NATS requests too (commands across hubs).
    """

    def __init__(self, hub: ClusterHub) -> None:
        self.hub = hub
        self.settings = hub.nats_settings
        self.stream = stream_name(self.settings.cluster)
        self.prefix = f"{self.settings.cluster}.up"
        self.subject = f"{self.prefix}.{subject_token(hub.name)}"
        self.alive_prefix = f"{self.settings.cluster}.alive"  # core NATS: heartbeats, not kept
        self.nc: Any = None
        self.js: Any = None
        self._wake = anyio.Event()
        self._connected = anyio.Event()
        self.last_error: BaseException | None = None  # what NATS last said went wrong
        self._denied_said = ""  # the last permissions violation logged

    def wake(self) -> None:
        self._wake.set()

    async def connected(self) -> Any:
        """The NATS client, once connected (at once if it is)."""
        await self._connected.wait()
        return self.nc

    async def start(self, tg: TaskGroup) -> None:
        """Connect and catch up; if NATS cannot be reached, serve alone and keep trying in the background.

        NATS that answers but refuses us (credentials, no JetStream) is a ConfigError.
        """
        try:
            await self._connect()
            await self._catch_up()
        except ConfigError:
            raise
        except Exception as exc:
            self.hub.link_lost(nats_reason(exc))
            tg.start_soon(self._keep_connecting, tg)
            return
        self.hub.link_restored()
        await self._run(tg)

    async def _run(self, tg: TaskGroup) -> None:
        """The link's tasks, once NATS is reached."""
        tg.start_soon(self._consume)
        tg.start_soon(self._publish)
        tg.start_soon(self._heartbeats)

    async def _keep_connecting(self, tg: TaskGroup) -> None:
        while True:
            await anyio.sleep(RECONNECT_WAIT)
            try:
                await self._connect()
            except ConfigError as exc:
                log.error("cluster link: %s", exc)
                continue
            except Exception as exc:
                log.debug("cluster link: still no NATS: %s", nats_reason(exc))
                continue
            log.info("cluster link: NATS reached")
            await self._run(tg)
            return

    async def _connect(self) -> None:
        settings = self.settings
        hub = self.hub

        async def disconnected() -> None:
            if self.nc is None:
                return  # not accepted yet: _connect says what went wrong
            self._connected = anyio.Event()
            hub.link_lost("connection to NATS lost")

        async def reconnected() -> None:
            self._connected.set()
            self.wake()
            if not len(hub.outbox):
                hub.link_restored()

        async def error(exc: Exception) -> None:
            # a refusal is kept over what follows it: the server closes at once after saying no,
            # and under load the next attempt may see only "connection reset"
            if self.last_error is None or not refused(self.last_error):
                self.last_error = exc
            if denied(exc) and str(exc) != self._denied_said:  # the account's permissions: said once per change
                self._denied_said = str(exc)
                log.warning("NATS: %s", nats_reason(exc))
            else:
                log.debug("NATS: %s", nats_reason(exc))

        options: dict[str, Any] = dict(
            servers=list(settings.servers),
            name=f"secmon hub {hub.name}",
            connect_timeout=settings.timeout,
            allow_reconnect=True,
            max_reconnect_attempts=1,  # the first connect gives up after trying each server twice
            reconnect_time_wait=RECONNECT_WAIT,
            disconnected_cb=disconnected,
            reconnected_cb=reconnected,
            error_cb=error,
        )
        if settings.creds is not None:
            options["user_credentials"] = str(settings.creds)
        try:
            tls = _tls_context(settings)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"SECMON_NATS_TLS_*: cannot use the TLS files: {exc}") from None
        if tls is not None:
            options["tls"] = tls
        self.last_error = None
        try:
            nc = await nats.connect(**options)
        except Exception as exc:
            cause = self._cause(exc)
            if refused(cause):
                raise ConfigError(nats_reason(cause)) from None
            raise ConnectionError(nats_reason(cause)) from None
        nc.options["max_reconnect_attempts"] = -1  # once connected, a lost NATS is waited for as long as it takes
        js = nc.jetstream(timeout=settings.timeout)
        config = api.StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            discard=api.DiscardPolicy.OLD,
            max_age=settings.max_age,
            max_bytes=settings.max_bytes,
            num_replicas=settings.replicas,
            duplicate_window=DUPLICATE_WINDOW,
        )
        try:
            if await ensure_stream(js, config):
                log.info("cluster: created stream %s (subjects %s.>)", self.stream, self.prefix)
        except Exception as exc:
            await nc.close()
            if refused(exc):
                raise ConfigError(nats_reason(exc)) from None
            raise
        self.nc, self.js = nc, js
        self._connected.set()

    def _cause(self, exc: BaseException) -> BaseException:
        """What NATS said while connecting (it says more than "no servers"), else ``exc``."""
        return exc if self.last_error is None else self.last_error

    async def _catch_up(self) -> None:
        """Apply the stream up to where it stood when we looked, before the hub serves anyone."""
        info = await self.js.stream_info(self.stream)
        last = info.state.last_seq
        if last <= self.hub.view.applied:
            return
        log.info("cluster: catching up with %d stream messages", last - self.hub.view.applied)
        self._sub = await self._subscribe()
        async for msg in self._sub.messages:
            self._apply(msg)
            if self.hub.view.applied >= last:
                break
        log.info("cluster: caught up at stream sequence %d", self.hub.view.applied)

    async def _subscribe(self) -> Any:
        start = self.hub.view.applied + 1
        config = api.ConsumerConfig(opt_start_seq=start) if start > 1 else None
        policy = api.DeliverPolicy.BY_START_SEQUENCE if start > 1 else api.DeliverPolicy.ALL
        return await self.js.subscribe(
            f"{self.prefix}.>",
            stream=self.stream,
            ordered_consumer=True,
            deliver_policy=policy,
            config=config,
            # two missed heartbeats and the consumer is made again from where it stopped (a NATS restart)
            idle_heartbeat=max(0.5, min(5.0, self.settings.timeout)),
        )

    def _apply(self, msg: Any) -> None:
        seq = msg.metadata.sequence.stream
        headers = msg.headers or {}
        self.hub.apply_stream(seq, msg.data, headers.get(MSG_ID, ""))

    async def _consume(self) -> None:
        """Apply the stream as it grows, in order, for the hub's whole life."""
        sub = getattr(self, "_sub", None) or await self._subscribe()
        async for msg in sub.messages:
            self._apply(msg)

    async def _heartbeats(self) -> None:
        """Say this hub is alive, and hear the others, every heartbeat interval."""
        hub = self.hub

        async def heard(msg: Any) -> None:
            name, _, run = msg.data.decode(errors="replace").rpartition("\n")
            if name:
                hub.alive(name, run)
            else:  # a hub that sends no run: its name alone
                hub.alive(run)

        await self.nc.subscribe(f"{self.alive_prefix}.>", cb=heard)
        me = f"{hub.name}\n{hub.run}".encode()  # the run tells two hubs of one name apart
        subject = f"{self.alive_prefix}.{subject_token(hub.name)}"
        while True:
            if self.nc.is_connected:
                try:
                    await self.nc.publish(subject, me)
                except Exception as exc:  # the link's state is the publisher's to judge
                    log.debug("cluster heartbeat not sent: %s", nats_reason(exc))
            await anyio.sleep(hub.heartbeat)

    async def _publish(self) -> None:
        """Send the outbox, oldest first, up to PUBLISH_WINDOW messages awaiting their acknowledgements.

        NATS keeps the order of one connection's publishes, so the acknowledgements
        are taken strictly in order, and the outbox drops its oldest messages as
        they come. Any failure (an error, no acknowledgement in time) loses the
        link and forgets what was in flight: it is all still in the outbox, and
        is sent again from the oldest (its Nats-Msg-Id makes the stream keep one
        copy of what had arrived).
        """
        hub = self.hub
        outbox = hub.outbox
        timeout = self.settings.timeout
        in_flight: deque[asyncio.Future[Any]] = deque()  # the acks of the outbox's oldest messages, in order
        while True:
            try:
                if not in_flight:
                    if len(outbox) == 0:
                        self._wake = anyio.Event()
                        if len(outbox) == 0:
                            await self._wake.wait()
                        continue
                    await self._connected.wait()
                if len(in_flight) < PUBLISH_WINDOW and self._connected.is_set():
                    for item in outbox.peek(PUBLISH_WINDOW - len(in_flight), skip=len(in_flight)):
                        headers = {MSG_ID: item.msg_id}
                        future = await self.js.publish_async(
                            self.subject, item.payload, wait_stall=timeout, headers=headers
                        )
                        in_flight.append(future)
                if not in_flight:
                    continue
                with anyio.fail_after(timeout):
                    ack = await in_flight[0]
                acked = [ack.seq]
                in_flight.popleft()
                while in_flight and in_flight[0].done():  # the run of acks that came meanwhile, in order
                    if in_flight[0].cancelled() or in_flight[0].exception() is not None:
                        break  # awaited next time round: a failure, after what came before it is taken
                    acked.append(in_flight.popleft().result().seq)
            except Exception as exc:
                for future in in_flight:
                    future.cancel()  # a late ack finds no one waiting; the message is sent again
                in_flight.clear()
                hub.link_lost(publish_failure(exc, self.last_error, timeout))
                self.last_error = None  # said: a later failure is judged by what comes after it
                await anyio.sleep(RECONNECT_WAIT / 4)
                continue
            hub.link_restored()
            hub.published(acked)
