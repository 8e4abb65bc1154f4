"""Plain words for what chat notifiers tell: event context, notices, mute rules, digests.

Pure functions that return plain, unescaped text; each medium (Telegram HTML,
Discord markdown) escapes every piece as it escapes everything else, and adds
its own emphasis. Both media take their words from here, so a node-down
reads the same in either.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from .folding import Notice
from .mutewords import rule_text
from .protocol import kinds, notices
from .protocol import messages as m
from .quiet import Digest, Held

NEW_WORDS = {notices.NEW_HOST: "host", notices.NEW_ASN: "ASN", notices.NEW_COUNTRY: "country"}
ICONS = {
    notices.NODE_DOWN: "🔴",
    notices.NODE_BACK: "🟢",
    notices.COLLECTOR_FAILED: "⚠️",
    notices.COLLECTOR_OK: "✅",
    notices.MUTE_ADDED: "🔇",
    notices.MUTE_REMOVED: "🔊",
    notices.MUTE_EXPIRED: "🔊",
    notices.SOURCE_FAILING: "🚨",
    notices.COMMAND_RUN: "▶️",
}
COMMAND_OK = (m.SUCCESS,)


def when(stamp: float | None, tz: tzinfo | None) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM:SS`` in ``tz`` (None: local time); "never" for None."""
    if stamp is None:
        return "never"
    return datetime.fromtimestamp(stamp, tz).astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def span(seconds: float | None) -> str:
    """A duration in two units at most: "45 s", "5 min 12 s", "3 h 20 min", "2 d 4 h"."""
    if seconds is None:
        return "?"
    whole = max(0, round(seconds))
    units = (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1))
    for index, (name, size) in enumerate(units):
        if whole >= size or size == 1:
            big, rest = divmod(whole, size)
            text = f"{big} {name}"
            if size > 1:
                small_name, small_size = units[index + 1]
                if small := rest // small_size:
                    text += f" {small} {small_name}"
            return text
    return "0 s"  # unreachable: the last unit always matches


def count(n: int, word: str) -> str:
    """ "1 failure", "30 failures"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def kind_label(kind: str) -> str:
    """The label of a notice kind or an auth event kind."""
    return notices.label(kind) if kind in notices.NOTICE_KINDS else kinds.label(kind)


def place(source: m.SourceContext | None) -> str:
    """Where GeoIP puts a source: "Germany (DE), Berlin · AS64496 Example GmbH"; "" when it knows nothing."""
    if source is None:
        return ""
    country = source.country_name or source.country or ""
    if source.country_name and source.country:
        country = f"{source.country_name} ({source.country})"
    where = ", ".join(part for part in (country, source.city or "") if part)
    network = ""
    if source.asn is not None:
        network = f"AS{source.asn}" + (f" {source.org}" if source.org else "")
    elif source.org:
        network = source.org
    return " · ".join(part for part in (where, network) if part)


def flags(update: m.AuthUpdate) -> list[str]:
    """The flags an auth event's message leads with: new for its user, success after failures."""
    context = update.context
    if context is None:
        return []
    lines = []
    if context.new:
        what = ", ".join(NEW_WORDS.get(n, n) for n in context.new)
        user = update.event.user or "this user"
        lines.append(f"🆕 New {what} for {user}")
    if context.after_failures and update.event.kind not in kinds.FAILURE_KINDS:
        lines.append(f"⚠️ After {count(context.after_failures, 'failure')} from this source")
    return lines


def node_name(node: m.NodeRef | None) -> str:
    if node is None:
        return "a node"
    return f"{node.hostname} #{node.serial} ({node.address})"


def rule_terms(rule: m.MuteRule, tz: tzinfo | None) -> str:
    """A rule's expiry and reason: "until 2026-11-30 07:00:00 · reason: scanner"."""
    terms = [f"until {when(rule.expires, tz)}" if rule.expires is not None else "no expiry"]
    if rule.reason:
        terms.append(f"reason: {rule.reason}")
    return " · ".join(terms)


def outcome(o: m.CommandOutcome) -> str:
    """One node's end of a command: "web-1: success", "web-2: failure (exit 1)"."""
    code = f" (exit {o.exit_code})" if o.exit_code not in (None, 0) else ""
    return f"{o.hostname}: {o.status}{code}"


def command_ok(record: m.CommandRecord) -> bool:
    return bool(record.outcomes) and all(o.status in COMMAND_OK for o in record.outcomes)


def notice_title(notice: m.NoticeUpdate) -> str:
    """The headline of a notice, icon and label; a source that has gone quiet says so."""
    if notice.kind == notices.SOURCE_FAILING and notice.source is not None and notice.source.ended:
        return "✅ Source quiet again"
    if notice.kind == notices.COMMAND_RUN and notice.command is not None and not command_ok(notice.command):
        return "⚠️ " + notices.label(notice.kind)
    return f"{ICONS.get(notice.kind, '🔔')} {notices.label(notice.kind)}"


def notice_lines(notice: m.NoticeUpdate, tz: tzinfo | None) -> list[str]:
    """The body of a notice, one plain line each, under its title."""
    lines: list[str] = []
    outage, collector, mute, source, command = (
        notice.outage,
        notice.collector,
        notice.mute,
        notice.source,
        notice.command,
    )
    if outage is not None:
        lines.append(f"Node: {node_name(notice.node)}")
        if notice.kind == notices.NODE_BACK:
            lines.append(f"Away {span(outage.away)} (gone since {when(outage.since, tz)})")
            lines.append(f"Delivered {count(outage.events, 'event')} written while away")
        else:
            lines.append(f"Silent since {when(outage.since, tz)} (more than {span(outage.down_after)})")
    elif collector is not None:
        lines.append(f"Node: {node_name(notice.node)}")
        lines.append(f"Collector: {collector.collector}")
        if collector.message:
            lines.append(f"Error: {collector.message}")
    elif mute is not None:
        rule = mute.rule
        lines.append(f"Rule #{rule.id}: {rule_text(rule)}")
        lines.append(rule_terms(rule, tz))
        lines.append(f"By: {mute.by}" if mute.by else "By: the hub (expired)")
        if notice.kind == notices.MUTE_ADDED and rule.by and rule.by != mute.by:
            lines.append(f"Made by: {rule.by}")
    elif source is not None:
        lines.append(f"Source: {source.source}")
        if where := place(source.context):
            lines.append(f"Where: {where}")
        lines.append(
            f"{count(source.failures, 'failure')} on {count(source.node_count, 'node')}, "
            f"{count(source.user_count, 'user')} tried"
        )
        lines.append(f"From {when(source.first, tz)} to {when(source.last, tz)}")
        if source.nodes:
            lines.append("Nodes: " + _listed(source.nodes, source.node_count))
        if source.users:
            lines.append("Users: " + _listed(source.users, source.user_count))
        if not source.ended:
            lines.append("Further failures from this source are counted, not sent, until it is quiet")
    elif command is not None:
        lines.append(f"Label: {command.label} on {command.target}")
        lines.append(f"By: {notices.requester_text(command.requester)}")
        if command.outcomes:
            lines += [outcome(o) for o in command.outcomes]
        else:
            lines.append("Ran nowhere (refused before it started)")
    elif notice.node is not None:
        lines.append(f"Node: {node_name(notice.node)}")
    lines.append(f"At {when(notice.time, tz)}")
    return lines


def _listed(names: list[str], count: int) -> str:
    more = count - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def held_line(item: Held, tz: tzinfo | None) -> str:
    """One plain line for an item a digest lists."""
    if type(item) is Notice:
        update, event = item.update, item.update.event
        who = f" {event.user}" if event.user else ""
        origin = f" from {event.host}" if event.host else ""
        times = f"{item.count}× " if item.folded else ""
        return f"{when(event.time, tz)} {times}{kinds.label(event.kind)}{who}{origin} on {update.hostname}"
    assert type(item) is m.NoticeUpdate
    about = ""
    if item.node is not None:
        about = f" {item.node.hostname}"
    elif item.mute is not None:
        about = f" #{item.mute.rule.id} {rule_text(item.mute.rule)}"
    elif item.source is not None:
        about = f" {item.source.source} ({count(item.source.failures, 'failure')})"
    elif item.command is not None:
        about = f" {item.command.label} on {item.command.target}"
    return f"{when(item.time, tz)} {notices.label(item.kind)}{about}"


def digest_counts(digest: Digest) -> list[str]:
    """Per kind, busiest first: "SSH password failed: 120"."""
    counts = [(n, kinds.label(k)) for k, n in digest.events.items()]
    counts += [(n, notices.label(k)) for k, n in digest.notices.items()]
    return [f"{name}: {n}" for n, name in sorted(counts, key=lambda c: (-c[0], c[1]))]


def digest_heading(digest: Digest, tz: tzinfo | None) -> str:
    return (
        f"Quiet hours {digest.window}: {count(digest.held, 'message')} held back "
        f"({count(digest.event_count, 'auth event')}) since {when(digest.first, tz)}"
    )


def digest_tops(digest: Digest) -> list[str]:
    """ "Top sources: ..." and "Nodes: ..." lines, with the rest summed."""
    lines = []
    if digest.sources:
        tops = ", ".join(f"{source} ({n})" for source, n in digest.top_sources())
        rest = len(digest.sources) - len(digest.top_sources())
        lines.append("Top sources: " + tops + (f" and {rest} more" if rest > 0 or digest.other_sources else ""))
    if digest.nodes:
        tops = ", ".join(f"{node} ({n})" for node, n in digest.top_nodes())
        rest = len(digest.nodes) - len(digest.top_nodes())
        lines.append("Nodes: " + tops + (f" and {rest} more" if rest > 0 or digest.other_nodes else ""))
    return lines
