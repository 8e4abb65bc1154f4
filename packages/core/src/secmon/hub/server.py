"""The hub daemon's start-up: sockets, permissions, the event loop, signals.

Everything here happens once, around the hub's life: settings and security
are read, the Unix socket is made safe (sockets.py) and bound with no window
where others could connect, the TCP port is bound, and each accepted
connection gets a HubLink (wire.py) and its lifecycle coroutine: nodes.py for
the TCP side, clients.py for the Unix side. What the connections share, and
the rules for it, are the Hub's (hub.py). One event loop, one root task group.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import signal
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..config import HubSettings, env_bool, read_secret, runtime_dir_problem
from ..errors import ConfigError, SecmonError
from ..protocol import Connection, Role
from ..protocol.batches import EventRunDecoder
from ..tls import TlsFiles, hub_context
from .audit import CommandAudit
from .clients import serve_client
from .context import build_judge
from .history import EventHistory, Retention
from .hub import Hub
from .nodes import NODE_QUEUE, serve_node
from .noticelog import NoticeLog
from .sockets import (
    check_existing_socket,
    check_socket_directory,
    make_socket_directory,
    os_reason,
    share_with_group,
    socket_group_id,
)
from .store import HubStore
from .wire import HubLink

if TYPE_CHECKING:
    from .cluster import ClusterHub  # imported at run time only in a cluster: it imports nats

log = logging.getLogger("secmon.hub")

LISTEN_BACKLOG = 4096  # a storm of reconnecting nodes must not overflow the accept queue


@dataclass(frozen=True, slots=True)
class HubSecurity:
    """What protects the node port: a TLS context and/or a shared token."""

    tls: ssl.SSLContext | None = None
    token: str | None = None


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


async def serve(
    settings: HubSettings,
    security: HubSecurity | None = None,
    *,
    task_status: TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run the hub until cancelled. ``task_status`` gets the bound TCP address."""
    security = security or HubSecurity()
    links: set[HubLink] = set()  # every open connection: the hub's sweep ticks them, shutdown aborts them
    gid = socket_group_id(settings.socket_group)
    cluster: ClusterHub | None = None
    hub: Hub
    if settings.nats is not None:  # one of a cluster: chosen here, once (docs/cluster.md)
        from .cluster import ClusterHub
        from .outbox import Outbox

        # In memory: like the view, the history is rebuilt from the stream at every start (docs/cluster.md).
        history = EventHistory(None, Retention(settings.history_days, settings.history_max_events))
        outbox = Outbox(settings.nats.outbox, settings.state_dir)
        cluster = ClusterHub(settings, outbox, token=security.token, links=links, socket_gid=gid, history=history)
        hub = cluster
    else:
        store = HubStore(settings.state_dir, settings.ring_size) if settings.state_dir else None
        history = EventHistory(settings.state_dir, Retention(settings.history_days, settings.history_max_events))
        judge = build_judge(settings.context, settings.state_dir, time.monotonic())
        audit = CommandAudit(settings.audit_max, settings.state_dir)  # kept with the hub's state, like the ring
        notice_log = NoticeLog(settings.notices_max, settings.state_dir)
        hub = Hub(
            settings, token=security.token, links=links, socket_gid=gid, store=store, history=history, audit=audit,
            notice_log=notice_log, judge=judge,
        )  # fmt: skip
        recovered = history.recover(hub.ring.after(history.last_seq, settings.ring_size)) if store else 0
        if recovered:
            text = "history: %d events the last run broadcast but had not written were added from the ring"
            log.info(text, recovered)
    path = settings.socket
    make_socket_directory(path.parent, hub.socket_gid)
    check_socket_directory(path)
    check_existing_socket(path)
    loop = asyncio.get_running_loop()
    link_settings = settings.link

    def accept(
        tg: TaskGroup,
        lifecycle: Callable[[Hub, HubLink], Coroutine[Any, Any, None]],
        peer: Role,
        max_queue: int,
        tls: ssl.SSLContext | None = None,
    ) -> Callable[[], HubLink]:
        """A protocol factory whose connections each get their lifecycle coroutine in ``tg``."""

        def opened(link: HubLink) -> None:
            tg.start_soon(lifecycle, hub, link)

        def connection() -> Connection:
            decoder = EventRunDecoder() if peer is Role.NODE else None
            timeouts = dict(keepalive=link_settings.keepalive, handshake_timeout=link_settings.handshake_timeout)
            return Connection(Role.HUB, peer, **timeouts, now=time.monotonic(), decoder=decoder)

        return lambda: HubLink(opened, links, connection(), max_queue=max_queue, tls=tls)

    try:
        async with anyio.create_task_group() as tg:
            if cluster is not None:
                await cluster.start(tg)  # caught up with the stream before anyone is served
            old_umask = os.umask(0o177)  # the socket is born 0600: no window where others can connect
            try:
                clients = accept(tg, serve_client, Role.CLIENT, settings.subscriber_queue)
                unix_server = await loop.create_unix_server(clients, str(path))
            except OSError as exc:
                raise SecmonError(f"cannot listen on {path}: {os_reason(exc)}") from None
            finally:
                os.umask(old_umask)
            try:
                share_with_group(path, hub.socket_gid)
                try:
                    tcp_server = await loop.create_server(
                        accept(tg, serve_node, Role.NODE, NODE_QUEUE, security.tls),
                        settings.bind_ip,
                        settings.bind_port,
                        backlog=LISTEN_BACKLOG,
                    )
                except OSError as exc:
                    where = f"{settings.bind_ip}:{settings.bind_port}"
                    raise SecmonError(f"cannot listen on {where}: {os_reason(exc)}") from None
                host, port = tcp_server.sockets[0].getsockname()[:2]
                protection = ", ".join(
                    p for p, on in (("TLS", security.tls is not None), ("token", security.token is not None)) if on
                )
                log.info(
                    "listening for nodes on %s:%d (%s) and for clients on %s",
                    host,
                    port,
                    protection or "plain TCP",
                    path,
                )
                log.info("event loop: %s", "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio")
                tg.start_soon(hub.housekeeping)
                tg.start_soon(history.run_flusher)
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
                for link in list(links):
                    link.abort("hub shutting down")
                path.unlink(missing_ok=True)
    finally:
        history.close()
        if hub.audit is not None:
            hub.audit.close()
        if hub.notice_log is not None:
            hub.notice_log.close()
        if hub.judge is not None:
            hub.judge.close()


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


def check_cluster_client() -> None:
    """With SECMON_NATS_URL, the NATS client must be installed: a ConfigError says how, in one line."""
    import importlib.util

    if importlib.util.find_spec("nats") is None:
        raise ConfigError(
            "SECMON_NATS_URL is set but the NATS client is not installed: pip install 'secmon-core[cluster]'",
            "SECMON_NATS_URL",
        )


def main(allow_insecure: bool = False) -> None:
    """Entry point of ``secmon hub``; raises SecmonError with one line for the user."""
    env = os.environ
    settings = HubSettings.from_env(env)
    if problem := runtime_dir_problem(env):
        raise ConfigError(problem)
    if settings.nats is not None:
        check_cluster_client()
    security = HubSecurity(tls=hub_context(TlsFiles.from_env(env)), token=read_secret(env, "SECMON_TOKEN_FILE"))
    check_exposure(settings, security.tls is not None, security.token is not None, allow_insecure)
    options = loop_options(settings.uvloop)
    started = time.monotonic()
    anyio.run(run_until_signalled, settings, security, backend_options=options)
    log.info("stopped after %.0f s", time.monotonic() - started)
