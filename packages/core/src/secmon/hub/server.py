"""The hub daemon: shared state, broadcast, command relay, and start-up.

One event loop, one root task group. Every connection is a HubLink
(wire.py) driven by the loop's callbacks, plus one lifecycle coroutine: the
TCP side (nodes.py) and the Unix side (clients.py, with a task group per
client for its commands) meet here: a node's update is encoded once and the
same frame is queued to every subscriber; a client's command is relayed to
nodes under hub-chosen request ids.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import grp
import ipaddress
import logging
import os
import signal
import socket
import ssl
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..config import HubSettings, env_bool, read_secret, runtime_dir_problem
from ..errors import ConfigError, SecmonError
from ..protocol import FrameDecoder
from ..protocol import messages as m
from ..protocol.batches import (
    MAX_BATCH,
    EventOrigin,
    EventRun,
    EventRunDecoder,
    UpdateFrame,
    auth_update_frames,
    node_update_frame,
)
from ..tls import TlsFiles, hub_context
from .registry import NodeEntry, NodeRegistry, UpdateRing
from .store import HubStore
from .wire import HubLink

if TYPE_CHECKING:
    from .clients import ClientConnection
    from .nodes import NodeConnection

log = logging.getLogger("secmon.hub")

LISTEN_BACKLOG = 4096  # a storm of reconnecting nodes must not overflow the accept queue


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
    # Updates per frame at most: half a subscriber's queue, so a frame always fits one that keeps up.
    batch_limit: int = field(init=False)
    nodes: dict[int, NodeConnection] = field(default_factory=dict)
    links: set[HubLink] = field(default_factory=set)  # every open connection, for the keepalive sweep
    subscribers: set[ClientConnection] = field(default_factory=set)
    relays: dict[int, Relay] = field(default_factory=dict)
    node_arrived: anyio.Event = field(default_factory=anyio.Event)
    _next_hub_id: int = 1

    socket_gid: int | None = None

    store: HubStore | None = None

    def __post_init__(self) -> None:
        self.registry = NodeRegistry(self.settings.hostname_unique, self.settings.disconnect_grace)
        self.batch_limit = max(1, min(MAX_BATCH, self.settings.subscriber_queue // 2))
        fresh = int(time.time() * 1_000_000)
        if self.store is None:
            self.ring = UpdateRing(self.settings.ring_size, start=fresh)
            return
        first, frames = self.store.load_ring()
        start = frames[-1].last + 1 if frames else fresh  # a stored lineage goes on without a gap
        self.ring = UpdateRing(self.settings.ring_size, start=start, first=first or start)
        self.ring.load(frames)
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
        for subscriber in list(self.subscribers):
            subscriber.deliver(frames)

    def publish_node(self, entry: NodeEntry, changed: list[str]) -> None:
        """Broadcast a node's state after a change; ``changed`` names what changed."""
        self.publish([node_update_frame(self.ring.next_seq(), entry.info(), changed)])

    def publish_events(self, entry: NodeEntry, run: EventRun) -> None:
        """Broadcast a node's new auth events, numbered on from the ring's sequence.

        The node's dedup mark is stored with them.
        """
        first = self.ring.reserve(len(run.events)).start
        origin = EventOrigin(entry.serial, entry.hostname, entry.address)
        self.publish(auth_update_frames(origin, first, run, self.batch_limit), entry)

    # --- node lifecycle ----------------------------------------------------

    def node_connected(self, conn: NodeConnection) -> None:
        old = self.nodes.get(conn.entry.serial)
        if old is not None and old is not conn:
            takeover = conn.entry.takeover
            why = takeover.told_to_replaced() if takeover else "a newer connection from this same node took its place"
            by = f"another node with its hostname, from {conn.link.peer}" if takeover else "its own newer connection"
            old.link.close(f"replaced by {by}", m.Error(m.REPLACED, why))
            old.fail_relays("node reconnected")
        self.nodes[conn.entry.serial] = conn
        self.publish_node(conn.entry, ["connected"])
        self.node_arrived.set()
        self.node_arrived = anyio.Event()

    def node_disconnected(self, conn: NodeConnection) -> None:
        conn.fail_relays("node disconnected")
        if self.nodes.get(conn.entry.serial) is conn:
            del self.nodes[conn.entry.serial]
            entry = self.registry.disconnect(conn.entry.serial, anyio.current_time(), time.time())
            if entry is not None:
                self.publish_node(entry, ["connected"])

    async def housekeeping(self) -> None:
        """Once a period: keepalives for every link, acks for events taken since the last one,
        and nodes past their grace forgotten. One sweep instead of a timer per connection."""
        settings = self.settings
        period = max(0.01, min(1.0, settings.disconnect_grace / 4, settings.link.keepalive / 4))
        while True:
            await anyio.sleep(period)
            now = time.monotonic()
            for link in list(self.links):
                link.tick(now)
            for conn in list(self.nodes.values()):
                conn.acknowledge()
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


@dataclass(frozen=True, slots=True)
class HubSecurity:
    """What protects the node port: a TLS context and/or a shared token."""

    tls: ssl.SSLContext | None = None
    token: str | None = None


def _group_id(group: str | None) -> int | None:
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"SECMON_SOCKET_GROUP: no group named {group!r}") from None


def check_exposure(settings: HubSettings, tls: bool, token: bool, allow_insecure: bool) -> None:
    """Refuse a hub that anyone on the network could join, unless the operator insists."""
    if ipaddress.ip_address(settings.bind_ip).is_loopback or tls or token:
        return
    danger = (
        f"BIND_IP={settings.bind_ip} is reachable from the network, and without TLS "
        "(SECMON_TLS_CERT/KEY) or a token (SECMON_TOKEN_FILE) anyone who can reach the port can join "
        "as a node, feed false events, and read the commands you run"
    )
    if not allow_insecure:
        raise ConfigError(danger + "; configure TLS or a token, or start with --allow-insecure")
    log.warning("DANGER: %s. Running anyway because of --allow-insecure.", danger)


def _check_socket_directory(path: Path) -> None:
    """The socket's directory must not let others replace the socket."""
    info = path.parent.stat()
    if info.st_mode & 0o022 and info.st_uid != 0 and not info.st_mode & 0o1000:
        raise SecmonError(f"{path.parent} is writable by others; put SECMON_SOCKET in a private directory")
    if info.st_mode & 0o002 and not info.st_mode & 0o1000:
        raise SecmonError(f"{path.parent} is writable by everyone; put SECMON_SOCKET in a private directory")


def _make_socket_directory(directory: Path, gid: int | None) -> None:
    """Create the socket's directory if it is missing: 0700, or 0750 owned by SECMON_SOCKET_GROUP.

    An existing directory is left as it is (systemd's RuntimeDirectory= makes its own), but
    a group that could not pass through it is told about at start-up.
    """
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        info = directory.stat()
        if gid is not None and not _group_may_enter(info, gid):
            log.warning(
                "members of SECMON_SOCKET_GROUP cannot reach the socket: %s is mode %04o, group %d; "
                "make it 0750 with that group (RuntimeDirectoryMode=0750 and Group= in a systemd unit)",
                directory,
                stat.S_IMODE(info.st_mode),
                info.st_gid,
            )
        return
    if gid is not None:
        try:
            os.chown(directory, -1, gid)
        except OSError as exc:
            raise SecmonError(f"cannot give {directory} to SECMON_SOCKET_GROUP: {_reason(exc)}") from None
        directory.chmod(0o750)


def _group_may_enter(info: os.stat_result, gid: int) -> bool:
    """Whether members of ``gid`` may pass through a directory with this stat."""
    return bool(info.st_mode & 0o001 or (info.st_gid == gid and info.st_mode & 0o010))


def _share_with_group(path: Path, gid: int | None) -> None:
    """With SECMON_SOCKET_GROUP, the group may connect too (0660); its members pass the uid check."""
    if gid is not None:
        os.chown(path, -1, gid)
        path.chmod(0o660)


def _reason(exc: OSError) -> str:
    """The system's short text for an error (loops wrap bind errors in longer sentences)."""
    return os.strerror(exc.errno) if exc.errno else str(exc)


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


async def serve(
    settings: HubSettings,
    security: HubSecurity | None = None,
    *,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the hub until cancelled. ``task_status`` gets the bound TCP address."""
    from .clients import serve_client
    from .nodes import NODE_QUEUE, serve_node

    security = security or HubSecurity()
    store = HubStore(settings.state_dir, settings.ring_size) if settings.state_dir else None
    hub = Hub(settings, token=security.token, socket_gid=_group_id(settings.socket_group), store=store)
    path = settings.socket
    _make_socket_directory(path.parent, hub.socket_gid)
    _check_socket_directory(path)
    _check_existing_socket(path)
    loop = asyncio.get_running_loop()
    link_settings = settings.link

    def accept(tg: TaskGroup, lifecycle, max_queue: int, tls: ssl.SSLContext | None = None, decoder=FrameDecoder):
        """A protocol factory whose connections each get their lifecycle coroutine in ``tg``."""

        def opened(link: HubLink) -> None:
            tg.start_soon(lifecycle, hub, link)

        options = dict(keepalive=link_settings.keepalive, max_queue=max_queue, tls=tls, decoder=decoder)
        return lambda: HubLink(opened, hub.links, **options)

    async with anyio.create_task_group() as tg:
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
        try:
            unix_server = await loop.create_unix_server(accept(tg, serve_client, settings.subscriber_queue), str(path))
        except OSError as exc:
            raise SecmonError(f"cannot listen on {path}: {_reason(exc)}") from None
        finally:
            os.umask(old_umask)
        try:
            _share_with_group(path, hub.socket_gid)
            try:
                tcp_server = await loop.create_server(
                    accept(tg, serve_node, NODE_QUEUE, security.tls, EventRunDecoder),
                    settings.bind_ip,
                    settings.bind_port,
                    backlog=LISTEN_BACKLOG,
                )
            except OSError as exc:
                raise SecmonError(f"cannot listen on {settings.bind_ip}:{settings.bind_port}: {_reason(exc)}") from None
            host, port = tcp_server.sockets[0].getsockname()[:2]
            protection = ", ".join(
                p for p, on in (("TLS", security.tls is not None), ("token", security.token is not None)) if on
            )
            log.info(
                "listening for nodes on %s:%d (%s) and for clients on %s", host, port, protection or "plain TCP", path
            )
            log.info("event loop: %s", "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio")
            tg.start_soon(hub.housekeeping)
            # What start-up made (modules, settings, the stored ring) lives as long as the hub:
            # the cyclic collector need not walk it again on every full pass during a flood.
            gc.freeze()
            task_status.started((host, port))
            try:
                await anyio.sleep_forever()
            finally:
                tcp_server.close()
        finally:
            unix_server.close()
            for link in list(hub.links):
                link.abort("hub shutting down")
            path.unlink(missing_ok=True)


async def run_until_signalled(settings: HubSettings, security: HubSecurity) -> None:
    """Serve until SIGTERM or SIGINT, then close everything and remove the socket."""
    async with anyio.create_task_group() as tg:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            await tg.start(serve, settings, security)
            async for signum in signals:
                log.info("received %s, shutting down", signal.Signals(signum).name)
                tg.cancel_scope.cancel()
                break


def loop_options(wanted: bool | None = None) -> dict[str, bool]:
    """uvloop when it is installed (the ``fast`` extra) and wanted (by default: SECMON_UVLOOP is not false)."""
    if not (env_bool(os.environ, "SECMON_UVLOOP", True) if wanted is None else wanted):
        return {}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}


def main(allow_insecure: bool = False) -> None:
    """Entry point of ``secmon hub``; raises SecmonError with one line for the user."""
    env = os.environ
    settings = HubSettings.from_env(env)
    if problem := runtime_dir_problem(env):
        raise ConfigError(problem)
    security = HubSecurity(tls=hub_context(TlsFiles.from_env(env)), token=read_secret(env, "SECMON_TOKEN_FILE"))
    check_exposure(settings, security.tls is not None, security.token is not None, allow_insecure)
    options = loop_options(settings.uvloop)
    started = time.monotonic()
    anyio.run(run_until_signalled, settings, security, backend_options=options)
    log.info("stopped after %.0f s", time.monotonic() - started)
