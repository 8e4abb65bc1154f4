"""Human output of the CLI: the node table, node details, the hub's status and update lines.

Every string that came from a monitored server passes through ``clean``
(terminal.py); notices, event context, mute rules and the audit are alerts.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..protocol import messages as m
from ..protocol.kinds import FAILURE_KINDS
from . import alerts
from .terminal import BOLD, GREEN, RED, YELLOW, Painter, clean, local_time

Item = TypeVar("Item")


def _count(value: list[Any] | str, noun: str) -> str:
    if isinstance(value, str):
        return value if value in (m.INITIALIZING, m.NOT_MONITORED) else "error"
    return f"{len(value)} {noun}{'' if len(value) == 1 else 's'}"


# Each failing collector's reason in the table is cut here, so a node stays one line;
# `secmon NODE` shows the whole text.
MAX_REASON = 60
_COLLECTORS = (("sessions", "sessions"), ("wg peers", "wg_peers"), ("auth", "auth"))
_HEALTHY = (m.INITIALIZING, m.NOT_MONITORED, m.AUTH_OK)


def collector_failures(node: m.NodeInfo) -> list[str]:
    """``"name: reason"`` for each collector of the node that reports an error, reasons cut short."""
    failing = []
    for name, attribute in _COLLECTORS:
        value = getattr(node, attribute)
        if isinstance(value, str) and value not in _HEALTHY:
            reason = value if len(value) <= MAX_REASON else value[: MAX_REASON - 1] + "…"
            failing.append(f"{name}: {clean(reason)}")
    return failing


def node_table(nodes: list[m.NodeInfo], paint: Painter) -> str:
    """One line per node, sorted by hostname; a FAILING column when any collector reports an error."""
    if not nodes:
        return "no nodes"
    ordered = sorted(nodes, key=lambda n: (n.hostname, n.serial))
    failing = ["; ".join(collector_failures(node)) for node in ordered]
    header = ["SERIAL", "HOSTNAME", "ADDRESS", "STATE", "SESSIONS", "WG PEERS", "LAST UPDATE"]
    clustered = any(node.hub for node in ordered)  # a cluster of hubs: say which one holds each node
    if clustered:
        header.append("HUB")
    if any(failing):
        header.append("FAILING")
    rows = [header]
    for node, problems in zip(ordered, failing, strict=True):
        row = [
            str(node.serial),
            clean(node.hostname),
            clean(node.address),
            "connected" if node.connected else "disconnected",
            _count(node.sessions, "session"),
            _count(node.wg_peers, "peer"),
            local_time(node.last_state_update),
        ]
        if clustered:
            row.append(clean(node.hub))
        if len(header) > len(row):
            row.append(problems)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        if index == 0:
            cells = [paint(BOLD, c) for c in cells]
        else:
            cells[3] = paint(GREEN if row[3] == "connected" else RED, cells[3])
            if header[-1] == "FAILING" and row[-1]:
                cells[-1] = paint(YELLOW, cells[-1])
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _session(s: m.Session) -> str:
    origin = f"from {clean(s.host)}" if s.host else "local"
    return f"{clean(s.user)} on {clean(s.tty)} {origin} since {local_time(s.login_time)}"


def _peer(p: m.WgPeer) -> str:
    endpoint = clean(p.endpoint) if p.endpoint else "no endpoint"
    handshake = local_time(p.latest_handshake) if p.latest_handshake else "never"
    return f"{clean(p.interface)} {clean(p.public_key)} {endpoint}, handshake {handshake}"


def _attribute_lines(value: list[Item] | str, describe: Callable[[Item], str], paint: Painter) -> list[str]:
    """An attribute's items, one a line, or its error (initializing, not_monitored, why it failed)."""
    if isinstance(value, str):
        return [f"  {paint(YELLOW, clean(value))}"]
    return [f"  {describe(item)}" for item in value] or ["  none"]


def node_details(node: m.NodeInfo, paint: Painter) -> str:
    state = paint(GREEN, "connected") if node.connected else paint(RED, "disconnected")
    lines = [
        f"{paint(BOLD, clean(node.hostname))} (node {node.serial}, {clean(node.address)}) {state}",
        f"last update: {local_time(node.last_state_update)}",
    ]
    if node.hub:
        lines.append(f"hub: {clean(node.hub)}")
    lines.append("sessions:")
    lines += _attribute_lines(node.sessions, _session, paint)
    lines.append("wireguard peers:")
    lines += _attribute_lines(node.wg_peers, _peer, paint)
    if node.labels:
        lines.append(f"commands: {', '.join(clean(label) for label in node.labels)}")
    if node.auth != m.AUTH_OK:
        lines.append(f"auth events: {paint(YELLOW, clean(node.auth))}")
    return "\n".join(lines)


def hub_status(status: m.HubStatus, paint: Painter) -> str:
    """The hub's nodes and, in a cluster, its link: one line each."""
    lines = [f"nodes connected to this hub: {status.nodes}"]
    if not status.hub:
        lines.append("cluster: none (a hub alone; SECMON_NATS_URL joins a cluster)")
        return "\n".join(lines)
    state = paint(GREEN, "connected") if status.connected else paint(RED, "disconnected")
    lines += [
        f"hub: {clean(status.hub)} in cluster {clean(status.cluster)}",
        f"cluster link: {state} since {local_time(status.since)}",
        f"outbox: {status.outbox} messages waiting to be published",
        f"last applied sequence: {status.applied}",
    ]
    return "\n".join(lines)


def describe_event(event: m.AuthEvent) -> str:
    """The event in a few words: kind, who, from where."""
    parts = [event.kind]
    if event.user is not None:
        parts.append(clean(event.user) or '""')
    if event.target_user:
        parts.append(f"→ {clean(event.target_user)}")
    if event.host:
        origin = f"{clean(event.host)}:{event.port}" if event.port else clean(event.host)
        parts.append(f"from {origin}")
    if event.method:
        parts.append(f"({clean(event.method)})")
    if event.command:
        parts.append(f"running {clean(event.command)}")
    return " ".join(parts)


def update_line(update: m.NodeUpdate | m.AuthUpdate | m.NoticeUpdate, paint: Painter) -> str:
    """One update as one line: ``[SEQ] TIME`` then a notice, an auth event with its context, or a node's change."""
    if isinstance(update, m.NoticeUpdate):
        return alerts.notice_line(update, paint)
    if isinstance(update, m.AuthUpdate):
        event = update.event
        text = describe_event(event)
        text = paint(RED, text) if event.kind in FAILURE_KINDS else text
        where = f"{clean(update.hostname)} ({clean(update.address)})"
        context = alerts.context_text(update.context, paint)
        return f"[{update.seq}] {local_time(event.time)} {where}: {text}{f' {context}' if context else ''}"
    node = update.node
    where = f"{clean(node.hostname)} ({clean(node.address)})"
    if "forgotten" in update.changed:
        what = "forgotten"
    elif update.changed == ["connected"]:
        what = paint(GREEN, "connected") if node.connected else paint(RED, "disconnected")
    else:
        what = ", ".join(f"{name} {_summary(getattr(node, name))}" for name in update.changed if name != "connected")
    return f"[{update.seq}] {local_time(node.last_state_update or time.time())} {where}: {what}"


def _summary(value: object) -> str:
    if isinstance(value, list):
        return f"now {len(value)}"
    return clean(value)
