"""The one JSON form of nodes, updates, events and command results.

The CLI's ``--json``, the HTTP bridge and its WebSocket all print these
shapes, so a script written against one works against the others. Times are
ISO 8601 in UTC; an attribute is a list, or ``{"error": text}``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from .protocol import messages as m
from .protocol import notices
from .protocol.kinds import FAILURE_KINDS, label

Item = TypeVar("Item")


def iso(stamp: float | None) -> str | None:
    if stamp is None:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _attribute(
    value: list[Item] | str, item: Callable[[Item], dict[str, Any]]
) -> list[dict[str, Any]] | dict[str, str]:
    if isinstance(value, str):
        return {"error": value}
    return [item(v) for v in value]


def session_json(s: m.Session) -> dict[str, Any]:
    return {"user": s.user, "tty": s.tty, "host": s.host, "login_time": iso(s.login_time)}


def peer_json(p: m.WgPeer) -> dict[str, Any]:
    return {
        "interface": p.interface,
        "public_key": p.public_key,
        "endpoint": p.endpoint,
        "latest_handshake": iso(p.latest_handshake),
    }


def node_json(node: m.NodeInfo) -> dict[str, Any]:
    return {
        "serial": node.serial,
        "hostname": node.hostname,
        "address": node.address,
        "connected": node.connected,
        "last_state_update": iso(node.last_state_update),
        "sessions": _attribute(node.sessions, session_json),
        "wg_peers": _attribute(node.wg_peers, peer_json),
        "auth": node.auth if node.auth == m.AUTH_OK else {"error": node.auth},
        "monitors": list(node.monitors),
        "labels": list(node.labels),
        "hub": node.hub,
    }


def status_json(status: m.HubStatus) -> dict[str, Any]:
    """A hub's status; ``cluster`` is null for a hub alone."""
    cluster = None
    if status.hub:
        cluster = {
            "hub": status.hub,
            "name": status.cluster,
            "connected": status.connected,
            "since": iso(status.since),
            "outbox": status.outbox,
            "applied": status.applied,
        }
    return {"nodes": status.nodes, "cluster": cluster}


def event_json(event: m.AuthEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "time": iso(event.time),
        "kind": event.kind,
        "label": label(event.kind),
        "failure": event.kind in FAILURE_KINDS,
        "process": event.process,
        "pid": event.pid,
        "user": event.user,
        "host": event.host,
        "port": event.port,
        "method": event.method,
        "target_user": event.target_user,
        "command": event.command,
        "tty": event.tty,
    }


def source_json(source: m.SourceContext | None) -> dict[str, Any] | None:
    """GeoIP context of a source address: country (ISO code and name), city, ASN and organisation."""
    if source is None:
        return None
    return {
        "country": source.country,
        "country_name": source.country_name,
        "city": source.city,
        "asn": source.asn,
        "org": source.org,
    }


def context_json(context: m.EventContext | None) -> dict[str, Any]:
    """What the hub adds to an auth event; every field present, empty when the hub added nothing."""
    if context is None:
        return {"source": None, "new": [], "after_failures": 0, "muted": [], "summarized": None}
    return {
        "source": source_json(context.source),
        "new": list(context.new),
        "after_failures": context.after_failures,
        "muted": list(context.muted),
        "summarized": context.summarized or None,
    }


def mute_json(rule: m.MuteRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "source": rule.source,
        "user": rule.user,
        "node": rule.node,
        "kind": rule.kind,
        "created": iso(rule.created),
        "expires": iso(rule.expires),
        "reason": rule.reason,
        "by": rule.by,
    }


def requester_json(requester: m.Requester) -> dict[str, Any]:
    return {"uid": requester.uid, "user": requester.user, "on_behalf": requester.on_behalf or None}


def command_record_json(record: m.CommandRecord) -> dict[str, Any]:
    """One audited command request: who asked, what, where, and each node's outcome."""
    return {
        "id": record.id,
        "time": iso(record.time),
        "requester": requester_json(record.requester),
        "label": record.label,
        "target": record.target,
        "outcomes": [
            {"serial": o.serial, "hostname": o.hostname, "status": o.status, "exit_code": o.exit_code,
             "finished": iso(o.finished)}
            for o in record.outcomes
        ],
        "finished": iso(record.finished),
    }  # fmt: skip


def _outage_json(outage: m.Outage) -> dict[str, Any]:
    return {"since": iso(outage.since), "down_after": outage.down_after, "away": outage.away, "events": outage.events}


def notice_json(notice: m.NoticeUpdate) -> dict[str, Any]:
    """A notice as an update: its kind, label and severity, and the fields of its kind (others null)."""
    node = notice.node
    outage = notice.outage
    collector = notice.collector
    mute = notice.mute
    source = notice.source
    return {
        "seq": notice.seq,
        "type": "notice",
        "time": iso(notice.time),
        "kind": notice.kind,
        "label": notices.label(notice.kind),
        "severity": notices.severity(notice.kind),
        "node": None if node is None else {"serial": node.serial, "hostname": node.hostname, "address": node.address},
        "outage": None if outage is None else _outage_json(outage),
        "collector": None if collector is None else {"collector": collector.collector, "message": collector.message},
        "mute": None if mute is None else {"rule": mute_json(mute.rule), "by": mute.by},
        "source": None
        if source is None
        else {
            "source": source.source,
            "failures": source.failures,
            "node_count": source.node_count,
            "user_count": source.user_count,
            "first": iso(source.first),
            "last": iso(source.last),
            "nodes": list(source.nodes),
            "users": list(source.users),
            "context": source_json(source.context),
            "ended": source.ended,
        },
        "command": None if notice.command is None else command_record_json(notice.command),
    }


def update_json(update: m.NodeUpdate | m.AuthUpdate | m.NoticeUpdate) -> dict[str, Any]:
    if isinstance(update, m.NodeUpdate):
        return {"seq": update.seq, "type": "node", "changed": list(update.changed), "node": node_json(update.node)}
    if isinstance(update, m.NoticeUpdate):
        return notice_json(update)
    return {
        "seq": update.seq,
        "type": "auth",
        "serial": update.serial,
        "hostname": update.hostname,
        "address": update.address,
        "event": event_json(update.event),
        "context": context_json(update.context),
    }


def event_list_json(answer: m.EventList) -> dict[str, Any]:
    """A history query's answer: the events in the form of their updates, ``last_seq`` and ``more``."""
    return {
        "events": [update_json(update) for update in answer.updates()],
        "last_seq": answer.last_seq,
        "more": answer.more,
    }


def stats_json(stats: m.EventStats) -> dict[str, Any]:
    """Counts per time bucket (``series``, each bucket's start in ISO 8601) or a ranking (``rows``)."""
    if stats.by == m.BY_TIME:
        bucket = stats.bucket
        series = []
        for line in stats.series:
            points = [
                {"t": iso(line.start + index * bucket), "failures": failed, "successes": succeeded, "other": other}
                for index, (failed, succeeded, other) in enumerate(
                    zip(line.failures, line.successes, line.other, strict=True)
                )
            ]
            series.append({"key": line.key, "points": points})
        return {"by": stats.by, "bucket": int(bucket) if bucket == int(bucket) else bucket, "series": series}
    rows = [
        {"key": row.key, "count": row.count, "failures": row.failures, "nodes": row.nodes, "users": row.users,
         "first": iso(row.first), "last": iso(row.last)}
        for row in stats.rows
    ]  # fmt: skip
    return {"by": stats.by, "rows": rows}


def output_json(output: m.CommandOutput) -> dict[str, Any]:
    return {"serial": output.serial, "line": output.data}


def result_json(result: m.CommandResult) -> dict[str, Any]:
    return {
        "serial": result.serial,
        "status": result.status,
        "exit_code": result.exit_code,
        "output": result.output,
        "message": result.message,
    }
