"""Commands across hubs: a cluster hub runs commands on nodes other hubs hold, and serves theirs.

Both ends plug into the single hub's relay unchanged (docs/cluster.md, "Commands
across hubs"):

- **Asking.** A node another hub holds is a ``RemoteNode``: a ConnectedNode whose
  link sends the hub's RunCommand and CancelCommand as a ``RemoteRun`` and a
  ``RemoteCancel`` to ``C.cmd.<holder>`` over core NATS. The holder's answers
  arrive on this hub's reply subject ``<inbox>.<relay id>`` and are handed to the
  relay's client as the node's own would be, with the serial of the cluster view.
- **Holding.** A ``RemoteRun`` on ``C.cmd.<this hub>`` becomes an ordinary relay
  to the node, on behalf of a ``RemoteClient``: a ConnectedClient whose link
  (``ReplyChannel``) sends what the relay gives back to the asker's reply subject.

Neither end trusts the other to stay: the asker sends ``RemoteAlive`` for its
running commands once an interval and the holder cancels a command after
``KEEPALIVE_MISSES`` intervals without one (a requesting hub that died leaves no
command running); the holder speaks at least once an interval (``RemoteBeat``
when the command is quiet) and the asker ends a command with an error after
``KEEPALIVE_MISSES`` intervals of silence (a holding hub that died leaves no
client waiting). One publisher task sends everything, in order, through a
bounded queue; every buffer on the way has a bound below.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio
from anyio.abc import TaskGroup

from ..config import HubSettings, NatsSettings
from ..protocol import messages as m
from ..protocol.batches import UpdateFrame
from ..protocol.remote import (
    RemoteAlive,
    RemoteBeat,
    RemoteCancel,
    RemoteOutput,
    RemoteProtocolError,
    RemoteReply,
    RemoteResult,
    RemoteResultPart,
    RemoteRun,
    RemoteStarted,
    decode_reply,
    decode_request,
    encode_remote,
    output_messages,
    result_messages,
)
from .hub import ConnectedClient, ConnectedNode, Relay
from .registry import NodeEntry, NodeRegistry

log = logging.getLogger("secmon.hub")

# A peer hub is given up after this many keepalive intervals without a word, as a silent link is.
KEEPALIVE_MISSES = 3
# Requests and reply channels waiting for the one NATS publisher: far more than the commands a hub
# runs at once; when it is full, NATS is not taking what we send and a new command fails at once.
SEND_QUEUE = 10_000
# Characters of output one command may have waiting to go out to the asking hub: a node that
# streams faster than NATS takes it for this long gets its command cancelled, not a hub's memory.
CHANNEL_LIMIT = 4 * 1024 * 1024
# Commands other hubs may run through this hub at once (a `secmon - LABEL` on a big fleet is
# thousands); more is a bug or an abuse, and is answered "busy".
MAX_SERVED = 20_000
# Replies the NATS client may hold for us before it drops them (and a gap then ends the command
# whose reply was lost): about a second of output from a thousand busy commands.
REPLY_PENDING_MSGS = 50_000
REPLY_PENDING_BYTES = 64 * 1024 * 1024
# Characters of a non-streamed result gathered from RemoteResultPart pieces: what a node sends at
# most (1 MiB of output, node/commands.py's MAX_OUTPUT), with room for the note on what was cut.
MAX_RESULT = 1024 * 1024 + 1024
# Command ids per RemoteAlive message, so one stays far below NATS's max_payload.
ALIVE_IDS = 10_000


def command_subject(cluster: str, hub_token: str) -> str:
    """Where command requests for a hub go: ``C.cmd.<hub>``."""
    return f"{cluster}.cmd.{hub_token}"


class Holders(Protocol):
    """Who holds which node: the cluster view."""

    def holder(self, entry: NodeEntry) -> str: ...


class NatsLink(Protocol):
    """The hub's NATS connection."""

    def connected(self) -> Awaitable[Any]:
        """The connected NATS client, once there is one."""
        ...


class HubInCluster(Protocol):
    """What commands across hubs need of a cluster hub (cluster.ClusterHub is one; this module does not import it)."""

    name: str
    run: str
    settings: HubSettings
    nats_settings: NatsSettings
    registry: NodeRegistry
    nodes: dict[int, ConnectedNode]
    relays: dict[int, Relay]

    @property
    def view(self) -> Holders: ...

    @property
    def link(self) -> NatsLink: ...

    @property
    def by_node_id(self) -> Mapping[str, ConnectedNode]:
        """This hub's node links by node id."""
        ...

    def start_relay(self, client: ConnectedClient, request: m.Execute, node: ConnectedNode) -> Relay: ...

    def finish_relay(self, relay: Relay, result: m.CommandResult) -> None: ...

    def cancel_relay(self, relay: Relay, status: str, message: str) -> None: ...

    async def node_change(self) -> None:
        """Until a node connects."""
        ...


# --- asking: nodes held by other hubs ---------------------------------------


@dataclass(eq=False)
class RemoteLink:
    """The link of a node another hub holds: the hub's commands to it become NATS requests."""

    commands: RemoteCommands
    node: RemoteNode

    @property
    def peer(self) -> str:
        return f"hub {self.node.entry.hub}"

    def send(self, message: m.Message) -> bool:
        match message:
            case m.RunCommand():
                self.commands.ask(self.node, message)
                return True
            case m.CancelCommand():
                self.commands.give_up(message.request_id)
                return True
        return False

    def close(self, reason: str, final: m.Message | None = None) -> None:
        """Nothing to close: the node's own link is the holding hub's."""

    def tick(self, now: float) -> None:
        """Keepalives are RemoteCommands' (one per holding hub, not one per node)."""


@dataclass(eq=False)
class RemoteNode:
    """A node another hub holds, as the hub's relay sees a node: commands go through its hub."""

    entry: NodeEntry
    commands: RemoteCommands
    relays: set[Relay] = field(default_factory=set)
    link: RemoteLink = field(init=False)

    def __post_init__(self) -> None:
        self.link = RemoteLink(self.commands, self)

    def acknowledge(self) -> None:
        """Its events are its own hub's to acknowledge."""

    def fail_relays(self, why: str) -> None:
        for relay in list(self.relays):
            self.commands.hub.cancel_relay(relay, m.ERROR, why)


@dataclass(eq=False)
class Asked:
    """A command this hub asked another hub to run: where it went and what came back so far."""

    relay: Relay
    holder: str
    subject: str  # the holder's C.cmd.<hub>
    heard: float  # monotonic time of the holder's last word (or of the request)
    seq: int = 0  # the last reply's seq: the next must be one more
    parts: list[str] = field(default_factory=list)  # pieces of a large result, before its RemoteResult
    parts_size: int = 0


# --- holding: commands other hubs asked for ---------------------------------


@dataclass(eq=False)
class ReplyChannel:
    """The link of a RemoteClient: what the relay sends it goes, in order, to the asker's reply subject.

    Output lines wait here (at most CHANNEL_LIMIT characters) until the publisher takes
    them, so the lines of one node read go out as one RemoteOutput.
    """

    commands: RemoteCommands
    asker: str
    key: tuple[str, str, int]  # (asking hub, its run, its relay id)
    subject: str  # the asker's reply subject
    keepalive: float
    heard: float  # monotonic time of the asker's last word
    sent: float  # monotonic time something was last queued to the asker
    serial: int = 0  # the node's, as the asker named it
    relay: Relay | None = None  # None while the command waits for its node's link to this hub
    pending: list[str | RemoteStarted | m.CommandResult | RemoteBeat] = field(default_factory=list)
    waiting: int = 0  # characters of output in ``pending``
    seq: int = 0  # the last reply's seq
    scheduled: bool = False  # in the publisher's queue
    done: bool = False  # the result is queued; nothing more goes out

    @property
    def peer(self) -> str:
        return f"hub {self.asker}"

    def send(self, message: m.Message) -> bool:
        if self.done:
            return False
        match message:
            case m.CommandOutput():
                if self.waiting + len(message.data) > CHANNEL_LIMIT:
                    self._overflow()
                    return False
                self.pending.append(message.data)
                self.waiting += len(message.data)
            case m.CommandResult():
                self.pending.append(message)
                self.done = True
                self.commands.served.pop(self.key, None)
            case _:
                return False
        self.commands.schedule(self)
        return True

    def queue(self, reply: RemoteStarted | RemoteBeat) -> None:
        self.pending.append(reply)
        self.commands.schedule(self)

    def _overflow(self) -> None:
        self.pending = [item for item in self.pending if not isinstance(item, str)]
        self.waiting = 0
        text = (
            f"output outran the cluster link: more than {CHANNEL_LIMIT} characters waited for NATS; "
            "the command was cancelled"
        )
        log.warning("command for hub %s: %s", self.asker, text)
        relay = self.relay
        if relay is not None and relay.hub_id in self.commands.hub.relays:
            self.commands.hub.cancel_relay(relay, m.ERROR, text)

    def take(self) -> list[RemoteReply]:
        """What waits, as numbered replies; the channel is empty afterwards."""
        replies: list[RemoteReply] = []
        lines: list[str] = []

        def flush_lines() -> None:
            if lines:
                replies.extend(output_messages(self.seq + len(replies) + 1, lines))
                lines.clear()

        for item in self.pending:
            if isinstance(item, str):
                lines.append(item)
                continue
            flush_lines()
            seq = self.seq + len(replies) + 1
            match item:
                case RemoteStarted():
                    replies.append(RemoteStarted(seq, item.serial))
                case RemoteBeat():
                    replies.append(RemoteBeat(seq))
                case m.CommandResult():
                    replies.extend(result_messages(seq, item.status, item.exit_code, item.output, item.message))
        flush_lines()
        self.pending = []
        self.waiting = 0
        self.seq += len(replies)
        return replies

    def close(self, reason: str, final: m.Message | None = None) -> None:
        """Nothing to close: the asking hub's client link is its own."""

    def tick(self, now: float) -> None:
        """Beats are RemoteCommands' sweep's."""


@dataclass(eq=False)
class RemoteClient:
    """The hub that asked for a command, as the hub's relay sees a client."""

    link: ReplyChannel
    relays: set[Relay] = field(default_factory=set)

    def deliver(self, frames: list[UpdateFrame]) -> None:
        """Never a subscriber."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One request for the publisher; ``asked`` is the relay id whose command fails if it cannot go."""

    subject: str
    payload: bytes
    reply: str = ""
    asked: int = 0


# --- both ---------------------------------------------------------------------


class RemoteCommands:
    """A cluster hub's side of commands across hubs: asking other hubs, and serving them."""

    def __init__(self, hub: HubInCluster, token: Callable[[str], str], reason: Callable[[BaseException], str]) -> None:
        """``token`` makes a hub name one subject token; ``reason`` says in one line what NATS raised."""
        self.hub = hub
        self.token = token
        self.reason = reason
        self.keepalive = hub.settings.link.keepalive
        self.asked: dict[int, Asked] = {}  # by relay id
        self.served: dict[tuple[str, str, int], ReplyChannel] = {}
        self.queue: deque[Envelope | ReplyChannel] = deque()
        self._ready = anyio.Event()
        self.nc: Any = None
        self.inbox = ""  # this hub's reply subjects are <inbox>.<relay id>
        self.prefix = hub.nats_settings.cluster
        self._alive_at = 0.0  # when RemoteAlive last went to the holding hubs
        self._tg: TaskGroup | None = None  # where commands wait for their node's link

    # --- the hub's seam -----------------------------------------------------

    def node(self, entry: NodeEntry) -> ConnectedNode | None:
        """What a command for this node goes through: its link here, or its hub; None when not connected."""
        hub = self.hub
        holder = hub.view.holder(entry)
        if holder == hub.name or not holder:
            return hub.nodes.get(entry.serial)
        return RemoteNode(entry, self) if entry.connected else None

    def nodes(self) -> list[ConnectedNode]:
        """Every connected node of the cluster, by serial: this hub's own links and other hubs' nodes."""
        hub = self.hub
        targets: list[ConnectedNode] = list(hub.nodes.values())
        targets += [
            RemoteNode(entry, self)
            for entry in hub.registry.nodes.values()
            if entry.connected and hub.view.holder(entry) not in ("", hub.name)
        ]
        return sorted(targets, key=lambda c: c.entry.serial)

    # --- asking -----------------------------------------------------------------

    def ask(self, node: RemoteNode, run: m.RunCommand) -> None:
        """Send a relay's command to the node's hub; a command that cannot go fails at once."""
        hub = self.hub
        relay = hub.relays.get(run.request_id)
        if relay is None:
            return
        holder = hub.view.holder(node.entry)
        if self.nc is None or not self.nc.is_connected or not self.inbox:
            why = f"the cluster link is down: hub {holder}, which holds node {node.entry.serial}, cannot be reached"
            hub.finish_relay(relay, m.CommandResult(relay.request_id, m.ERROR, message=why, serial=relay.serial))
            return
        subject = command_subject(self.prefix, self.token(holder))
        request = RemoteRun(
            hub.name, hub.run, relay.hub_id, node.entry.node_id, run.label, run.stream, node.entry.serial,
            self.keepalive,
        )  # fmt: skip
        self.asked[relay.hub_id] = Asked(relay, holder, subject, anyio.current_time())
        if not self._put(Envelope(subject, encode_remote(request), f"{self.inbox}.{relay.hub_id}", relay.hub_id)):
            self._fail(relay.hub_id, f"too many requests wait for NATS ({SEND_QUEUE}); try again")

    def give_up(self, relay_id: int) -> None:
        """The relay ended here (cancelled, timed out, failed): the holding hub cancels it on the node."""
        asked = self.asked.pop(relay_id, None)
        if asked is not None:
            hub = self.hub
            self._put(Envelope(asked.subject, encode_remote(RemoteCancel(hub.name, hub.run, relay_id))))

    def _fail(self, relay_id: int, why: str) -> None:
        asked = self.asked.get(relay_id)
        if asked is not None and relay_id in self.hub.relays:
            self.hub.cancel_relay(asked.relay, m.ERROR, why)  # through give_up: the holder cancels too
        else:
            self.asked.pop(relay_id, None)

    def on_reply(self, subject: str, data: bytes, headers: dict[str, str] | None, now: float) -> None:
        """An answer of a holding hub, on this hub's reply subject ``<inbox>.<relay id>``."""
        try:
            relay_id = int(subject.rsplit(".", 1)[-1])
        except ValueError:
            return
        asked = self.asked.get(relay_id)
        if asked is None:
            return  # ended here already
        relay = asked.relay
        if relay_id not in self.hub.relays:
            self.asked.pop(relay_id, None)
            return
        if headers and headers.get("Status") == "503":  # NATS: no one subscribes to C.cmd.<holder>
            self._fail(relay_id, f"hub {asked.holder}, which holds node {relay.serial}, is not connected to NATS")
            return
        try:
            reply = decode_reply(data)
        except RemoteProtocolError as exc:
            self._fail(relay_id, f"hub {asked.holder} sent a reply that does not decode: {exc}")
            return
        if reply.seq != asked.seq + 1:
            self._fail(relay_id, f"replies from hub {asked.holder} were lost on the way: the output is incomplete")
            return
        asked.seq = reply.seq
        asked.heard = now
        client = relay.client
        match reply:
            case RemoteOutput():
                relay.answered = True
                for line in reply.lines:
                    client.link.send(m.CommandOutput(relay.request_id, line, relay.serial))
            case RemoteResultPart():
                relay.answered = True
                room = MAX_RESULT - asked.parts_size
                if room > 0:
                    asked.parts.append(reply.output[:room])
                    asked.parts_size += min(room, len(reply.output))
            case RemoteResult():
                del self.asked[relay_id]
                output = "".join(asked.parts) + reply.output if asked.parts else reply.output
                result = m.CommandResult(
                    relay.request_id, reply.status, reply.exit_code, output[:MAX_RESULT], reply.message, relay.serial
                )
                self.hub.finish_relay(relay, result)
            case RemoteStarted() | RemoteBeat():
                pass

    # --- holding ------------------------------------------------------------------

    def on_request(self, data: bytes, reply_to: str, now: float) -> None:
        """A request of an asking hub, on ``C.cmd.<this hub>``."""
        try:
            request = decode_request(data)
        except RemoteProtocolError as exc:
            log.warning("command request skipped: %s", exc)
            return
        match request:
            case RemoteRun():
                self._serve(request, reply_to, now)
            case RemoteCancel():
                channel = self.served.get((request.hub, request.run, request.id))
                if channel is not None:
                    self._end(channel, m.CANCELLED, f"cancelled on hub {request.hub}")
            case RemoteAlive():
                for relay_id in request.ids:
                    channel = self.served.get((request.hub, request.run, relay_id))
                    if channel is not None:
                        channel.heard = now

    def _serve(self, request: RemoteRun, reply_to: str, now: float) -> None:
        hub = self.hub
        key = (request.hub, request.run, request.id)
        if not reply_to or key in self.served:
            return  # nowhere to answer, or a repeat
        keepalive = request.keepalive if math.isfinite(request.keepalive) else self.keepalive
        keepalive = min(3600.0, max(0.05, keepalive))
        channel = ReplyChannel(self, request.hub, key, reply_to, keepalive, now, now, request.serial)
        conn = hub.by_node_id.get(request.node_id)
        if len(self.served) >= MAX_SERVED:
            why = f"hub {hub.name} runs {MAX_SERVED} commands for other hubs already; try again"
            channel.send(m.CommandResult(request.id, m.ERROR, message=why, serial=request.serial))
        elif conn is not None:
            self.served[key] = channel
            self._start(request, channel, conn)
        elif self._tg is not None:  # the asker's view has the node here: our stream or our welcome may lag
            self.served[key] = channel
            self._tg.start_soon(self._start_when_connected, request, channel)
        else:
            why = f"node {request.serial} is not connected to hub {hub.name}"
            channel.send(m.CommandResult(request.id, m.ERROR, message=why, serial=request.serial))

    async def _start_when_connected(self, request: RemoteRun, channel: ReplyChannel) -> None:
        """Wait (a handshake's time at most) for the link of a node the asker's view has here: the asker can
        apply the node's join before this hub has applied it, or before this hub has welcomed the node."""
        hub = self.hub
        with anyio.move_on_after(hub.settings.link.handshake_timeout):
            while (conn := hub.by_node_id.get(request.node_id)) is None:
                await hub.node_change()
        if channel.done:
            return  # cancelled meanwhile
        if conn is None:
            why = f"node {request.serial} is not connected to hub {hub.name}"
            channel.send(m.CommandResult(request.id, m.ERROR, message=why, serial=request.serial))
        else:
            self._start(request, channel, conn)

    def _start(self, request: RemoteRun, channel: ReplyChannel, conn: ConnectedNode) -> None:
        hub = self.hub
        channel.queue(RemoteStarted(0, conn.entry.serial))
        log.info(
            "command %r on node %d (%s) for hub %s", request.label[:80], conn.entry.serial, conn.entry.hostname,
            request.hub,
        )  # fmt: skip
        execute = m.Execute(request.id, request.node_id, request.label, request.stream)
        channel.relay = hub.start_relay(RemoteClient(channel), execute, conn)

    # --- the publisher and the sweep -------------------------------------------------

    def schedule(self, channel: ReplyChannel) -> None:
        channel.sent = anyio.current_time()
        if not channel.scheduled:
            channel.scheduled = True
            self._put(channel, force=True)

    def _put(self, item: Envelope | ReplyChannel, force: bool = False) -> bool:
        """Queue for the publisher; False when the queue is full (a reply channel always goes: it is bounded)."""
        if len(self.queue) >= SEND_QUEUE and not force:
            return False
        self.queue.append(item)
        self._ready.set()
        return True

    async def _publish(self) -> None:
        """Send what is queued, in order: one task, so one asker sees one holder's replies in order."""
        while True:
            if not self.queue:
                self._ready = anyio.Event()
                await self._ready.wait()
                continue
            item = self.queue.popleft()
            if isinstance(item, ReplyChannel):
                item.scheduled = False
                sends = [(item.subject, encode_remote(reply), "") for reply in item.take()]
            else:
                sends = [(item.subject, item.payload, item.reply)]
            for subject, payload, reply in sends:
                try:
                    await self.nc.publish(subject, payload, reply=reply)
                except Exception as exc:
                    self._unsent(item, self.reason(exc))
                    break

    def _unsent(self, item: Envelope | ReplyChannel, why: str) -> None:
        hub = self.hub
        if isinstance(item, Envelope):
            if item.asked:
                self._fail(item.asked, f"cannot send the command to its hub: {why}")
            return
        log.warning("cannot answer hub %s: %s", item.asker, why)
        relay = item.relay
        if relay is not None and relay.hub_id in hub.relays:
            hub.cancel_relay(relay, m.ERROR, f"cannot answer hub {item.asker}: {why}")

    async def _sweep(self) -> None:
        """Once a period: give up on silent peers, tell holders we still wait, beat for quiet commands."""
        while True:
            shortest = min((c.keepalive for c in self.served.values()), default=self.keepalive)
            await anyio.sleep(max(0.02, min(1.0, self.keepalive, shortest) / 4))
            self.sweep(anyio.current_time())

    def sweep(self, now: float) -> None:
        hub = self.hub
        silent_after = KEEPALIVE_MISSES * self.keepalive
        waiting: dict[str, list[int]] = {}
        for relay_id, asked in list(self.asked.items()):
            if relay_id not in hub.relays:
                self.asked.pop(relay_id, None)
            elif now - asked.heard > silent_after:
                log.warning("hub %s went silent during a command on node %d", asked.holder, asked.relay.serial)
                self._fail(
                    relay_id,
                    f"hub {asked.holder}, which holds node {asked.relay.serial}, went silent for {silent_after:g} s; "
                    "the command's fate there is unknown",
                )
            else:
                waiting.setdefault(asked.subject, []).append(relay_id)
        if now - self._alive_at < self.keepalive:
            waiting.clear()  # once an interval is enough
        elif waiting:
            self._alive_at = now
        for subject, ids in waiting.items():
            for start in range(0, len(ids), ALIVE_IDS):
                alive = RemoteAlive(hub.name, hub.run, ids[start : start + ALIVE_IDS])
                self._put(Envelope(subject, encode_remote(alive)))
        for channel in list(self.served.values()):
            relay = channel.relay
            if relay is not None and relay.hub_id not in hub.relays:
                self.served.pop(channel.key, None)
            elif now - channel.heard > KEEPALIVE_MISSES * channel.keepalive:
                log.warning("hub %s went silent: its command on node %d is cancelled", channel.asker, channel.serial)
                self._end(channel, m.CANCELLED, f"hub {channel.asker}, which asked, went silent")
            elif now - channel.sent >= channel.keepalive and not channel.scheduled:
                channel.queue(RemoteBeat(0))

    def _end(self, channel: ReplyChannel, status: str, why: str) -> None:
        """End a command served for another hub: on the node if it runs there, and with a result to the asker."""
        relay = channel.relay
        if relay is not None and relay.hub_id in self.hub.relays:
            self.hub.cancel_relay(relay, status, why)
        elif not channel.done:
            channel.send(m.CommandResult(channel.key[2], status, message=why, serial=channel.serial))

    # --- start ------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve for the hub's life: once NATS is reached, subscribe (nats-py renews it after a reconnect)."""
        nc = await self.hub.link.connected()
        self.nc = nc
        inbox = nc.new_inbox()
        requests = await nc.subscribe(
            command_subject(self.prefix, self.token(self.hub.name)),
            pending_msgs_limit=REPLY_PENDING_MSGS,
            pending_bytes_limit=REPLY_PENDING_BYTES,
        )
        replies = await nc.subscribe(
            f"{inbox}.*", pending_msgs_limit=REPLY_PENDING_MSGS, pending_bytes_limit=REPLY_PENDING_BYTES
        )
        self.inbox = inbox
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._publish)
            tg.start_soon(self._sweep)
            tg.start_soon(self._receive, requests, lambda msg: self.on_request(msg.data, msg.reply, _now()))
            await self._receive(replies, lambda msg: self.on_reply(msg.subject, msg.data, msg.headers, _now()))

    async def _receive(self, sub: Any, handle: Callable[[Any], None]) -> None:
        async for msg in sub.messages:
            try:
                handle(msg)
            except Exception as exc:  # a bug in one command must not end them all
                log.error("command across hubs: internal error: %r", exc, exc_info=log.isEnabledFor(logging.DEBUG))


def _now() -> float:
    return anyio.current_time()
