"""The node daemon: connect to the hub, report changes, run allowed commands.

Collectors run for the life of the process and write into the agent; the
link to the hub comes and goes. On every (re)connect the agent sends its
whole stored state once and the auth events the hub has not acknowledged,
then only changes. Events wait in a bounded buffer until acknowledged.
"""

from __future__ import annotations

import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ByteStream, TaskGroup

from ..collectors.positions import Position
from ..config import HubAddress, NodeSettings
from ..errors import SecmonError
from ..link import HandshakeFailed, Link
from ..protocol import Connection, Role
from ..protocol import messages as m
from ..protocol.codec import Decoded
from .commands import AllowlistError, Outcome, label_problem, load_allowlist, run_allowed_command
from .journal import open_journal
from .reconnect import Backoff, HubRotation, NextAttempt, ReportLimit, describe_failure, held_back_note

log = logging.getLogger("secmon.node")

# Unacknowledged auth events kept for resending; a link down for longer than this
# many events loses the oldest, and says so in the auth attribute.
MAX_UNACKED = 10_000
MONITORS = {"who": "sessions", "wg": "wg_peers", "auth": "auth"}


class HubGone(SecmonError):
    """Raised when the hub link ends or cannot be made, and the node was not asked to reconnect."""


class HubRefused(SecmonError):
    """Raised when the hub answers our hello with an error instead of a welcome."""


def _gave_up(step: NextAttempt, several: bool) -> str:
    """The line of a node without --reconnect that found no hub in a round."""
    if not several:
        return step.reasons[-1]
    return f"no hub kept us, each tried once: {'; '.join(step.reasons)}"


@dataclass(frozen=True, slots=True)
class LinkEnded:
    """How a link the hub had welcomed came to an end."""

    reason: str  # as the link saw it ("connection closed by peer", ...)
    lasted: float  # seconds it was up
    hub_error: m.Error | None  # what the hub said before it closed, if it did
    heard: bool  # the hub sent something after its welcome (an ack, a command; keepalives stay in the link)
    keepalive: float  # the hub's keepalive interval on this link

    @property
    def healthy(self) -> bool:
        """The hub served the link, then went away (or the network did) without an error.

        Served means it spoke after its welcome or the link outlived a keepalive interval:
        a hub that welcomes and dies at once, over and over, keeps its nodes backing off.
        """
        return self.hub_error is None and (self.heard or self.lasted >= self.keepalive)

    def describe(self, where: str) -> str:
        error = self.hub_error
        if error is None:
            return f"lost the hub at {where} after {self.lasted:.1f} s: {self.reason}"
        did = "replaced this node" if error.code == m.REPLACED else "closed our link"
        return f"the hub at {where} {did} after {self.lasted:.1f} s: {error.message}"


class NodeAgent:
    def __init__(
        self,
        settings: NodeSettings,
        monitors: list[str],
        hostname: str | None = None,
        token: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.tls = tls
        self.monitors = monitors
        self.hostname = hostname or socket.gethostname()
        self.token = token or ""
        self.journal = open_journal(settings.state_dir, MAX_UNACKED)
        self.node_id = self.journal.node_id
        watched = {MONITORS[name] for name in monitors}
        self.state: dict[str, Any] = {
            attr: (m.INITIALIZING if attr in watched else m.NOT_MONITORED) for attr in MONITORS.values()
        }
        self.state["labels"] = self.allowed_labels()
        self.dropped = 0
        self.link: Link | None = None
        self.hub: HubAddress | None = None  # the hub that welcomed us last
        self._heard = False  # whether the hub spoke on the current link after its welcome
        self._running: dict[int, anyio.CancelScope] = {}
        self._slots = anyio.Semaphore(settings.max_commands)

    # --- what collectors call ---------------------------------------------

    def set_attribute(self, name: str, value: Any) -> None:
        """Record a stored attribute; the hub hears of it only if it changed."""
        if self.state.get(name) == value:
            return
        self.state[name] = value
        if self.link is not None:
            self.link.send(m.StateUpdate(**{name: value}))

    def add_events(self, batch: list[dict[str, Any]], position: Position | None = None) -> list[m.AuthEvent]:
        """Number the auth events one read brought, keep them (with the source's position after
        that read) until acknowledged, and send them in one frame."""
        first = self.journal.next_seq
        events = [m.AuthEvent(seq=first + i, **fields) for i, fields in enumerate(batch)]
        dropped = self.journal.add_batch(events, position)
        if dropped:
            self.dropped += dropped
            self.set_attribute("auth", f"{self.dropped} events dropped: the hub was unreachable for too long")
        if self.link is not None and events:
            self.link.send(m.AuthEvents(events))
        return events

    def allowed_labels(self) -> list[str]:
        """The labels the allowlist offers now (none when it cannot be trusted)."""
        try:
            return sorted(load_allowlist(self.settings.allowlist))
        except AllowlistError:
            return []

    async def watch_allowlist(self, interval: float) -> None:
        """Keep the advertised labels in step with the allowlist file."""
        while True:
            await anyio.sleep(interval)
            self.set_attribute("labels", self.allowed_labels())

    # --- the link -----------------------------------------------------------

    async def run(self, reconnect: bool) -> None:
        """Connect and serve, moving through the hubs as HubRotation says; without ``reconnect``,
        give up (HubGone) once every hub had its turn without a healthy link.

        Every loss of a link the hub welcomed is logged (within the report limit), with the hub
        tried next; failed attempts are logged when a hub's reason changes. After a healthy link
        (LinkEnded.healthy) the backoff starts again from its minimum.
        """
        s = self.settings
        several = len(s.hubs) > 1
        rotation = HubRotation(s.hubs, Backoff(s.reconnect_max))
        losses, failures = ReportLimit(), ReportLimit()
        told: dict[HubAddress, str] = {}  # the failure last logged for each hub, while the hubs stay away
        while True:
            hub = rotation.current
            where = str(hub)
            try:
                ended = await self._connect_once(hub)
            except (OSError, HandshakeFailed, TimeoutError, anyio.BrokenResourceError, anyio.EndOfStream) as exc:
                ended, failure = None, describe_failure(exc, where, tls=self.tls is not None, variable=s.hubs_variable)
            except HubRefused as exc:
                ended, failure = None, f"{exc} (the hub at {where})"
            if ended is not None:
                lost = ended.describe(where)
                step = rotation.lost(lost, ended.healthy)
                told.clear()
                if step.round_over and not reconnect:
                    raise HubGone(_gave_up(step, several))
                if step.round_over:
                    then = f"reconnecting in {step.wait:.1f} s" + (f" (to the hub at {step.hub})" if several else "")
                else:
                    then = f"trying the hub at {step.hub} now"
                if (held := losses.allow(anyio.current_time())) is not None:
                    log.warning("hub link down: %s; %s%s", lost, then, held_back_note(held))
            else:
                step = rotation.failed(failure)
                if step.round_over and not reconnect:
                    raise HubGone(_gave_up(step, several))
                if step.round_over:
                    then = f"retrying with backoff up to {s.reconnect_max:g} s"
                else:
                    then = f"trying the hub at {step.hub} now"
                if told.get(hub) != failure and (held := failures.allow(anyio.current_time())) is not None:
                    log.warning("%s; %s%s", failure, then, held_back_note(held))
                told[hub] = failure
            if step.wait:
                await anyio.sleep(step.wait)

    async def _open(self, hub: HubAddress) -> ByteStream:
        """A TCP stream to ``hub``, over TLS when configured (the server name checked is ``hub.host``)."""
        s = self.settings
        with anyio.fail_after(s.link.handshake_timeout):
            if self.tls is None:
                return await anyio.connect_tcp(hub.host, hub.port)
            return await anyio.connect_tcp(hub.host, hub.port, ssl_context=self.tls, tls_standard_compatible=False)

    async def _connect_once(self, hub: HubAddress) -> LinkEnded:
        """One link: connect, hello, serve until it ends. Raises if the hub never welcomed us."""
        s = self.settings
        stream = await self._open(hub)
        connection = Connection(
            Role.NODE,
            Role.HUB,
            keepalive=s.link.keepalive,
            handshake_timeout=s.link.handshake_timeout,
            now=anyio.current_time(),
        )
        link = Link(stream, connection, max_queue=MAX_UNACKED * 2)
        hello = m.Hello(m.PROTOCOL_VERSION, m.ROLE_NODE, self.hostname, self.node_id, self.monitors, self.token)
        try:
            welcome = await link.handshake(hello)
        except HandshakeFailed:
            await link.finish()
            raise
        except BaseException:
            await stream.aclose()
            raise
        if isinstance(welcome, m.Error):  # the connection allows only a welcome or a refusal here
            await link.finish()
            raise HubRefused(f"hub refused us: {welcome.message}")
        assert type(welcome) is m.Welcome  # as the connection's table allows nothing else
        moved = f" (moved from the hub at {self.hub})" if self.hub not in (None, hub) else ""
        log.info("connected to hub %s as node %d%s", hub, welcome.serial, moved)
        self.hub = hub
        since = anyio.current_time()
        self.journal.acknowledge(welcome.last_event_seq)
        link.send(m.StateUpdate(**self.state))
        if self.journal.events:
            link.send(m.AuthEvents(list(self.journal.events)))
        self.link = link
        self._heard = False
        try:
            async with anyio.create_task_group() as tg:
                reason = await link.run(lambda batch: self._on_messages(batch, tg))
                tg.cancel_scope.cancel()  # commands die with the link: their results have nowhere to go
        finally:
            self.link = None
        lasted = anyio.current_time() - since
        return LinkEnded(reason, lasted, connection.peer_error, self._heard, welcome.keepalive)

    def _on_messages(self, batch: list[Decoded], tg: TaskGroup) -> None:
        """Act on what the hub sends; the connection has let through only what a hub may send a node."""
        self._heard = True
        for message in batch:
            match message:
                case m.Ack():
                    self.journal.acknowledge(message.seq)
                case m.RunCommand():
                    scope = anyio.CancelScope()
                    self._running[message.request_id] = scope
                    tg.start_soon(self._run_command, message, scope)
                case m.CancelCommand():
                    running = self._running.get(message.request_id)
                    if running is not None:
                        running.cancel()

    # --- commands -----------------------------------------------------------

    async def _run_command(self, request: m.RunCommand, scope: anyio.CancelScope) -> None:
        link = self.link
        assert link is not None  # set for the session whose task group runs this command, and outlives it
        outcome = Outcome(m.CANCELLED, message="cancelled by the hub")
        try:
            with scope:
                async with self._slots:
                    outcome = await self._execute(request, link)
        finally:
            self._running.pop(request.request_id, None)
        exit_text = f" exit {outcome.exit_code}" if outcome.exit_code is not None else ""
        log.info("command %r (request %d): %s%s", request.label[:80], request.request_id, outcome.status, exit_text)
        link.send(
            m.CommandResult(request.request_id, outcome.status, outcome.exit_code, outcome.output, outcome.message)
        )

    async def _execute(self, request: m.RunCommand, link: Link) -> Outcome:
        problem = label_problem(request.label)
        if problem is not None:
            return Outcome(m.NOT_ALLOWED, message=problem)
        try:
            allowlist = load_allowlist(self.settings.allowlist)
        except AllowlistError as exc:
            log.warning("%s", exc)
            return Outcome(m.NOT_ALLOWED, message=str(exc))
        self.set_attribute("labels", sorted(allowlist))
        argv = allowlist.get(request.label)
        if argv is None:
            return Outcome(m.NOT_ALLOWED, message=f"label {request.label!r} is not in this node's allowlist")
        on_line = None
        if request.stream:

            def on_line(line: str) -> None:
                link.send(m.CommandOutput(request.request_id, line))

        return await run_allowed_command(argv, timeout=self.settings.execute_timeout, on_line=on_line)
