"""The hub daemon: shared state, broadcast, command relay, and start-up.

One event loop, one root task group. The TCP side (nodes.py) and the Unix
side (clients.py) run one task group per connection and meet here: a node's
update is encoded once and the same frame is queued to every subscriber; a
client's command is relayed to nodes under hub-chosen request ids.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskStatus

from ..config import HubSettings
from ..errors import SecmonError
from ..protocol import encode
from ..protocol import messages as m
from .registry import NodeEntry, NodeRegistry, UpdateRing

if TYPE_CHECKING:
    from .clients import ClientConnection
    from .nodes import NodeConnection

log = logging.getLogger("secmon.hub")


@dataclass(slots=True, eq=False)
class Relay:
    """One command on one node, on behalf of one client request."""

    hub_id: int
    client: ClientConnection
    request_id: int
    node: NodeConnection
    answered: bool = False

    @property
    def serial(self) -> int:
        return self.node.entry.serial


@dataclass(eq=False)
class Hub:
    settings: HubSettings
    token: str | None = None
    registry: NodeRegistry = field(init=False)
    ring: UpdateRing = field(init=False)
    nodes: dict[int, NodeConnection] = field(default_factory=dict)
    subscribers: set[ClientConnection] = field(default_factory=set)
    relays: dict[int, Relay] = field(default_factory=dict)
    node_arrived: anyio.Event = field(default_factory=anyio.Event)
    _next_hub_id: int = 1

    def __post_init__(self) -> None:
        self.registry = NodeRegistry(self.settings.hostname_unique, self.settings.disconnect_grace)
        self.ring = UpdateRing(self.settings.ring_size, start=int(time.time() * 1_000_000))

    # --- broadcast ---------------------------------------------------------

    def _publish(self, seq: int, update: m.Message) -> None:
        frame = encode(update)
        self.ring.append(seq, frame)
        for subscriber in list(self.subscribers):
            subscriber.deliver(seq, frame)

    def publish_node(self, entry: NodeEntry, changed: list[str]) -> None:
        seq = self.ring.next_seq()
        self._publish(seq, m.NodeUpdate(seq=seq, node=entry.info(), changed=changed))

    def publish_auth(self, entry: NodeEntry, event: m.AuthEvent) -> None:
        seq = self.ring.next_seq()
        update = m.AuthUpdate(seq=seq, serial=entry.serial, hostname=entry.hostname, address=entry.address, event=event)
        self._publish(seq, update)

    # --- node lifecycle ----------------------------------------------------

    def node_connected(self, conn: NodeConnection) -> None:
        old = self.nodes.get(conn.entry.serial)
        if old is not None and old is not conn:
            old.link.close("replaced by a new connection from the same node")
            old.fail_relays("node reconnected")
        self.nodes[conn.entry.serial] = conn
        self.publish_node(conn.entry, ["connected"])
        self.node_arrived.set()
        self.node_arrived = anyio.Event()

    def node_disconnected(self, conn: NodeConnection) -> None:
        conn.fail_relays("node disconnected")
        if self.nodes.get(conn.entry.serial) is conn:
            del self.nodes[conn.entry.serial]
            entry = self.registry.disconnect(conn.entry.serial, anyio.current_time())
            if entry is not None:
                self.publish_node(entry, ["connected"])

    async def forget_expired(self) -> None:
        """Forget nodes past their grace period, checking often enough to be on time."""
        period = min(1.0, max(self.settings.disconnect_grace / 4, 0.05))
        while True:
            await anyio.sleep(period)
            for entry in self.registry.expire(anyio.current_time()):
                log.info("forgot node %d (%s) after the grace period", entry.serial, entry.hostname)
                self.publish_node(entry, ["forgotten"])

    # --- command relay -----------------------------------------------------

    def start_relay(self, client: ClientConnection, request: m.Execute, node: NodeConnection) -> Relay:
        relay = Relay(self._next_hub_id, client, request.request_id, node)
        self._next_hub_id += 1
        self.relays[relay.hub_id] = relay
        node.relays.add(relay)
        client.relays.add(relay)
        node.link.send(m.RunCommand(request_id=relay.hub_id, label=request.label, stream=request.stream))
        return relay

    def finish_relay(self, relay: Relay, result: m.CommandResult) -> None:
        if self.relays.pop(relay.hub_id, None) is None:
            return
        relay.node.relays.discard(relay)
        relay.client.relays.discard(relay)
        relay.client.link.send(result)

    def cancel_relay(self, relay: Relay, status: str, message: str) -> None:
        """Give up on a relay: the node kills the command, the client gets the result now."""
        relay.node.link.send(m.CancelCommand(relay.hub_id))
        result = m.CommandResult(relay.request_id, status, message=message, serial=relay.serial)
        self.finish_relay(relay, result)


def _check_existing_socket(path: Path) -> None:
    """Refuse to start over a live hub; remove a stale socket."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT, errno.ENOTSOCK):
            path.unlink(missing_ok=True)
            log.info("removed stale socket %s", path)
            return
        raise SecmonError(f"cannot use socket {path}: {exc.strerror}") from None
    finally:
        probe.close()
    raise SecmonError(f"a hub is already running on {path}")


async def serve(settings: HubSettings, *, task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED) -> None:
    """Run the hub until cancelled. ``task_status`` gets the bound TCP address."""
    from .clients import serve_client
    from .nodes import serve_node

    hub = Hub(settings)
    path = settings.socket
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    _check_existing_socket(path)
    old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
    try:
        unix_listener = await anyio.create_unix_listener(path)
    except OSError as exc:
        raise SecmonError(f"cannot listen on {path}: {exc.strerror}") from None
    finally:
        os.umask(old_umask)
    try:
        try:
            tcp_listener = await anyio.create_tcp_listener(
                local_host=settings.bind_ip, local_port=settings.bind_port, reuse_port=False
            )
        except OSError as exc:
            raise SecmonError(f"cannot listen on {settings.bind_ip}:{settings.bind_port}: {exc.strerror}") from None
        host, port = tcp_listener.extra(anyio.abc.SocketAttribute.local_address)[:2]
        log.info("listening for nodes on %s:%d and for clients on %s", host, port, path)
        async with anyio.create_task_group() as tg:
            tg.start_soon(tcp_listener.serve, lambda stream: serve_node(hub, stream))
            tg.start_soon(unix_listener.serve, lambda stream: serve_client(hub, stream))
            tg.start_soon(hub.forget_expired)
            task_status.started((host, port))
    finally:
        path.unlink(missing_ok=True)


async def run_until_signalled(settings: HubSettings) -> None:
    """Serve until SIGTERM or SIGINT, then close everything and remove the socket."""
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            await tg.start(serve, settings)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                tg.cancel_scope.cancel()
                break


def main(env: dict[str, str] | None = None) -> None:
    """Entry point of ``secmon hub``; raises SecmonError with one line for the user."""
    settings = HubSettings.from_env(env)
    started = time.monotonic()
    anyio.run(run_until_signalled, settings)
    log.info("stopped after %.0f s", time.monotonic() - started)
