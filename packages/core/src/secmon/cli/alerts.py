"""Human output for what the hub decides beyond raw events: notices, event context, mute rules, the audit.

One notice is one line: its label, then the fields of its kind. An auth event's
context follows its description: where the source is (``DE Berlin · AS64496
Example Org``), then the flags (``[NEW host, asn]``, ``after 12 failures``,
``[muted #3]``, ``[summarized]``). Every text that came from a server, the hub
or an operator (names, reasons, who) goes through ``clean``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..mutewords import rule_text
from ..protocol import messages as m
from ..protocol import notices
from .terminal import DIM, GREEN, RED, YELLOW, Painter, clean, local_time, table

_SEVERITY_COLOUR = {notices.CRITICAL: RED, notices.WARNING: YELLOW}
_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def duration_text(seconds: float) -> str:
    """A span in its largest unit and the next: ``45s``, ``2m 5s``, ``3h 10m``, ``2d``."""
    left = max(0, round(seconds))
    for index, (unit, size) in enumerate(_UNITS):
        if left >= size or unit == "s":
            text = f"{left // size}{unit}"
            if index + 1 < len(_UNITS):
                next_unit, next_size = _UNITS[index + 1]
                if rest := left % size // next_size:
                    text += f" {rest}{next_unit}"
            return text
    raise AssertionError("the last unit always matches")


def source_text(source: m.SourceContext | None) -> str:
    """Where a source address is: ``DE Berlin · AS64496 Example Org``; "" when nothing is known."""
    if source is None:
        return ""
    place = " ".join(clean(part) for part in (source.country, source.city) if part)
    network = " ".join(part for part in (f"AS{source.asn}" if source.asn else "", clean(source.org or "")) if part)
    return " · ".join(part for part in (place, network) if part)


def context_text(context: m.EventContext | None, paint: Painter) -> str:
    """What the hub added to an auth event, as words after it; "" for none."""
    if context is None:
        return ""
    parts = []
    if where := source_text(context.source):
        parts.append(where)
    if context.new:
        parts.append(paint(YELLOW, f"[NEW {', '.join(clean(n) for n in context.new)}]"))
    if context.after_failures:
        parts.append(paint(YELLOW, f"after {plural(context.after_failures, 'failure')}"))
    if context.muted:
        parts.append(paint(DIM, f"[muted {', '.join(f'#{rule}' for rule in context.muted)}]"))
    if context.summarized:
        parts.append(paint(DIM, "[summarized]"))
    return " ".join(parts)


def node_text(node: m.NodeRef | None) -> str:
    """``web-1 (node 3, 10.0.0.5)``."""
    if node is None:
        return "a node"
    return f"{clean(node.hostname)} (node {node.serial}, {clean(node.address)})"


def expiry_text(expires: float | None) -> str:
    return "never" if expires is None else local_time(expires)


def rule_summary(rule: m.MuteRule) -> str:
    """``#3 203.0.113.0/24 user:root, expires 2026-11-30 12:00:00, reason "scanner"``."""
    text = f"#{rule.id} {clean(rule_text(rule))}, expires {expiry_text(rule.expires)}"
    return text + (f', reason "{clean(rule.reason)}"' if rule.reason else "")


def _listed(names: list[str], count: int) -> str:
    shown = ", ".join(clean(name) for name in names)
    more = count - len(names)
    return f"{shown}, … {more} more" if more > 0 and shown else shown


def _outage(notice: m.NoticeUpdate) -> str:
    outage = notice.outage
    if outage is None:
        return node_text(notice.node)
    if notice.kind == notices.NODE_DOWN:
        return f"{node_text(notice.node)}, last seen {local_time(outage.since)}"
    away = f" after {duration_text(outage.away)} away" if outage.away is not None else ""
    return f"{node_text(notice.node)}{away}, {plural(outage.events, 'event')} written while away"


def _collector(notice: m.NoticeUpdate) -> str:
    state = notice.collector
    if state is None:
        return node_text(notice.node)
    why = f": {clean(state.message)}" if state.message and notice.kind != notices.COLLECTOR_OK else ""
    return f"{node_text(notice.node)}: {clean(state.collector)}{why}"


def _mute(notice: m.NoticeUpdate) -> str:
    change = notice.mute
    if change is None:
        return ""
    return rule_summary(change.rule) + (f", by {clean(change.by)}" if change.by else "")


def _source(notice: m.NoticeUpdate) -> str:
    failing = notice.source
    if failing is None:
        return ""
    where = source_text(failing.context)
    nodes = _listed(failing.nodes, failing.node_count)
    users = _listed(failing.users, failing.user_count)
    counts = (
        f"{plural(failing.failures, 'failure')} on {plural(failing.node_count, 'node')}"
        + (f" ({nodes})" if nodes else "")
        + f", {plural(failing.user_count, 'user')}"
        + (f" ({users})" if users else "")
    )
    span = f"from {local_time(failing.first)} to {local_time(failing.last)}"
    state = "ended, in all: " if failing.ended else ""
    return f"{clean(failing.source)}{f' {where}' if where else ''}: {state}{counts}, {span}"


def outcomes_text(record: m.CommandRecord, paint: Painter) -> str:
    """Each node's outcome, ``web-1: success (exit 0), web-2: failure (exit 3)``; "ran nowhere" for a refused one."""
    parts = []
    for outcome in record.outcomes:
        exit_code = f" (exit {outcome.exit_code})" if outcome.exit_code is not None else ""
        status = paint(GREEN if outcome.status == m.SUCCESS else RED, clean(outcome.status) + exit_code)
        parts.append(f"{clean(outcome.hostname)}: {status}")
    if record.finished is None:
        parts.append(paint(YELLOW, "running"))
    return ", ".join(parts) or paint(YELLOW, "ran nowhere")


def target_text(target: str) -> str:
    return "every node" if target == m.ALL_NODES else clean(target)


def _command(notice: m.NoticeUpdate, paint: Painter) -> str:
    record = notice.command
    if record is None:
        return ""
    who = clean(notices.requester_text(record.requester))
    return f"{clean(record.label)} on {target_text(record.target)} by {who}: {outcomes_text(record, paint)}"


_FIELDS: dict[str, Callable[[m.NoticeUpdate, Painter], str]] = {
    notices.NODE_DOWN: lambda n, _: _outage(n),
    notices.NODE_BACK: lambda n, _: _outage(n),
    notices.COLLECTOR_FAILED: lambda n, _: _collector(n),
    notices.COLLECTOR_OK: lambda n, _: _collector(n),
    notices.MUTE_ADDED: lambda n, _: _mute(n),
    notices.MUTE_REMOVED: lambda n, _: _mute(n),
    notices.MUTE_EXPIRED: lambda n, _: _mute(n),
    notices.SOURCE_FAILING: lambda n, _: _source(n),
    notices.COMMAND_RUN: _command,
}


def notice_line(notice: m.NoticeUpdate, paint: Painter) -> str:
    """``[SEQ] TIME Label: the fields of its kind``, the label coloured by severity."""
    label = clean(notices.label(notice.kind))
    colour = _SEVERITY_COLOUR.get(notices.severity(notice.kind))
    head = f"[{notice.seq}] {local_time(notice.time)} {paint(colour, label) if colour else label}"
    fields = _FIELDS.get(notice.kind)
    detail = fields(notice, paint) if fields else ""
    if not detail and notice.node is not None:  # a kind this version does not know: at least its node
        detail = node_text(notice.node)
    return f"{head}: {detail}" if detail else head


def mute_table(rules: list[m.MuteRule], paint: Painter) -> str:
    """The mute rules in force, one a line by id: what each matches, until when, why, who made it."""
    if not rules:
        return "no mute rules"
    rows = [["ID", "MATCHES", "EXPIRES", "REASON", "BY"]]
    for rule in sorted(rules, key=lambda r: r.id):
        rows.append([str(rule.id), clean(rule_text(rule)), expiry_text(rule.expires), clean(rule.reason),
                     clean(rule.by)])  # fmt: skip
    return table(rows, paint)


def audit_table(records: list[m.CommandRecord], paint: Painter) -> str:
    """Command requests, oldest first: when, who, which label where, and how it ended on each node."""
    if not records:
        return "no commands recorded"
    rows = [["ID", "TIME", "WHO", "LABEL", "TARGET", "OUTCOME"]]
    for record in records:
        who = clean(notices.requester_text(record.requester))
        rows.append([str(record.id), local_time(record.time), who, clean(record.label), target_text(record.target),
                     outcomes_text(record, paint)])  # fmt: skip
    return table(rows, paint)
