"""`secmon node`: wire the collectors to the agent and run until signalled."""

from __future__ import annotations

import logging
import os
import signal

import anyio

from ..collectors.sources import follow_auth, poll_sessions, poll_wireguard
from ..config import NodeSettings, read_secret
from ..tls import TlsFiles, node_context
from .agent import HubGone, NodeAgent

log = logging.getLogger("secmon.node")

ALLOWLIST_INTERVAL = 5.0  # seconds between looks at the allowlist, to advertise its labels
FOLLOW_POLL = 0.1  # seconds between looks at the auth log where inotify is unavailable


async def run_node(settings: NodeSettings, agent: NodeAgent, reconnect: bool) -> None:
    """Run collectors and the hub link; returns on SIGTERM/SIGINT, raises HubGone without ``reconnect``."""
    error: HubGone | None = None
    async with anyio.create_task_group() as tg:
        if "who" in agent.monitors:
            tg.start_soon(poll_sessions, agent.set_attribute, settings.sessions_interval)
        if "wg" in agent.monitors:
            tg.start_soon(poll_wireguard, agent.set_attribute, settings.wg_interval)
        if "auth" in agent.monitors:
            poll = float(os.environ.get("SECMON_FOLLOW_INTERVAL") or FOLLOW_POLL)
            tg.start_soon(follow_auth, settings.auth_log, agent.add_events, agent.set_attribute, poll)
        tg.start_soon(agent.watch_allowlist, ALLOWLIST_INTERVAL)
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        try:
            await agent.run(reconnect)
        except HubGone as exc:
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, stopping", signal.Signals(signum).name)
            scope.cancel()
            return


def main(monitors: list[str], reconnect: bool) -> None:
    settings = NodeSettings.from_env()
    token = read_secret(os.environ, "SECMON_TOKEN_FILE")
    tls = node_context(TlsFiles.from_env(os.environ))
    hostname = os.environ.get("SECMON_HOSTNAME") or None
    agent = NodeAgent(settings, monitors, hostname=hostname, token=token, tls=tls)
    anyio.run(run_node, settings, agent, reconnect)
