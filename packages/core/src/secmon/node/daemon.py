"""`secmon node`: wire the collectors to the agent and run until signalled."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import anyio

from ..collectors.sources import follow_auth, poll_sessions, poll_wireguard
from ..config import NodeSettings, ignored_hub_variables, read_secret
from ..signals import cancel_on_signal
from ..tls import TlsFiles, node_context
from .agent import HubGone, NodeAgent
from .commands import AllowlistError, check_allowlist

log = logging.getLogger("secmon.node")

ALLOWLIST_INTERVAL = 5.0  # seconds between looks at the allowlist, to advertise its labels


async def run_node(settings: NodeSettings, agent: NodeAgent, reconnect: bool) -> None:
    """Run collectors and the hub link; returns on SIGTERM/SIGINT, raises HubGone without ``reconnect``.

    The sessions collector logs which source it reads ("reading sessions from logind (loginctl)")
    when it starts and when that changes.
    """
    error: HubGone | None = None
    async with anyio.create_task_group() as tg:
        if "who" in agent.monitors:
            tg.start_soon(poll_sessions, agent.set_attribute, settings.sessions_interval, settings.sessions_source)
        if "wg" in agent.monitors:
            tg.start_soon(poll_wireguard, agent.set_attribute, settings.wg_interval)
        if "auth" in agent.monitors:
            resume = agent.journal.position  # kept only with SECMON_STATE_DIR; else from the end, as a monitor
            poll = settings.follow_interval
            tg.start_soon(follow_auth, settings.auth_log, agent.add_events, agent.set_attribute, poll, resume)
        tg.start_soon(agent.watch_allowlist, ALLOWLIST_INTERVAL)
        tg.start_soon(cancel_on_signal, tg.cancel_scope, log)
        try:
            await agent.run(reconnect)
        except HubGone as exc:
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error


def warn_about_allowlist(path: Path | None) -> None:
    """Log, once at start, why the allowlist allows nothing or which of its lines it ignores."""
    try:
        allowlist = check_allowlist(path)
    except AllowlistError as exc:
        log.warning("%s; no command will run until that is fixed", exc)
        return
    for line in allowlist.ignored:
        log.warning("allowlist %s line %d ignored: %s", path, line.number, line.reason)


def main(monitors: list[str], reconnect: bool) -> None:
    """Entry point of ``secmon node``; raises SecmonError with one line for the user."""
    settings = NodeSettings.from_env()
    if ignored := ignored_hub_variables(os.environ):
        log.warning("%s ignored: HUB_ADDRS is set and lists the hubs to use", " and ".join(ignored))
    token = read_secret(os.environ, "SECMON_TOKEN_FILE")
    tls = node_context(TlsFiles.from_env(os.environ))
    warn_about_allowlist(settings.allowlist)
    agent = NodeAgent(settings, monitors, hostname=settings.hostname, token=token, tls=tls)
    anyio.run(run_node, settings, agent, reconnect)
