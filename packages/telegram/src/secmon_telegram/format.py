"""Telegram HTML for nodes, events, notices, digests, mute rules and command results: pure functions.

Everything that came from a monitored server or another person (user names,
hosts, GeoIP names, mute reasons, who did what) goes through ``html.escape``
before it is placed in markup, so a name like ``<b>x</b>`` or ``&`` is
shown as typed and the message is still valid HTML for Telegram.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from html import escape
from typing import TypeVar

from secmon import notifytext as words
from secmon.folding import Notice
from secmon.mutewords import rule_text
from secmon.notify import Outgoing
from secmon.protocol import messages as m
from secmon.protocol.kinds import FAILURE_KINDS, label
from secmon.quiet import Digest

__all__ = [
    "HELP",
    "command_result",
    "digest_message",
    "escape",
    "event_message",
    "message",
    "mute_list",
    "node_details",
    "node_list",
    "notice_message",
]

Item = TypeVar("Item")

MESSAGE_LIMIT = 4096  # Telegram's limit on a message's text, markup included
OUTPUT_ROOM = 3500  # of which command output may use this much, leaving room for the frame and the note
NOTE_ROOM = 80  # the <pre> frame and the trimming note

HELP = """<b>SecMon</b>
<code>list</code> or <code>-</code> — all nodes
<code>NODE</code> — one node (serial, hostname or address)
<code>NODE LABEL</code> — run an allowed command on a node
<code>- LABEL</code> — run it on every connected node
<code>/mute MATCHERS [for DURATION] [reason TEXT]</code> — stop pushes of the events that match: \
<code>CIDR</code>, <code>user:U</code>, <code>node:N</code>, <code>kind:K</code> (all must match); \
DURATION like <code>90s</code>, <code>30m</code>, <code>2h</code>, <code>7d</code>
<code>/mutes</code> — the mute rules in force
<code>/unmute ID</code> — remove a mute rule"""


when = words.when


def message(item: Outgoing, tz: tzinfo | None) -> str:
    """The message for whatever the relay hands on: an event or burst, a notice, a digest."""
    if type(item) is Notice:
        return event_message(item, tz)
    if type(item) is Digest:
        return digest_message(item, tz)
    assert type(item) is m.NoticeUpdate
    return notice_message(item, tz)


def node_list(nodes: list[m.NodeInfo]) -> str:
    if not nodes:
        return "No node has connected yet."
    lines = ["<b>Nodes</b>"]
    for node in sorted(nodes, key=lambda n: (n.hostname, n.serial)):
        state = "🟢" if node.connected else "🔴"
        sessions = len(node.sessions) if isinstance(node.sessions, list) else "–"
        lines.append(
            f"{state} <b>{escape(node.hostname)}</b> #{node.serial} {escape(node.address)} · sessions: {sessions}"
        )
    return "\n".join(lines)


def _session(s: m.Session, tz: tzinfo | None) -> str:
    origin = f"from {escape(s.host)}" if s.host else "local"
    return f"{escape(s.user)} on {escape(s.tty)} {origin} since {when(s.login_time, tz)}"


def _peer(p: m.WgPeer, tz: tzinfo | None) -> str:
    handshake = when(p.latest_handshake, tz) if p.latest_handshake else "never"
    endpoint = escape(p.endpoint) if p.endpoint else "no endpoint"
    return f"{escape(p.interface)} <code>{escape(p.public_key[:12])}…</code> {endpoint}, handshake {handshake}"


def _attribute_lines(value: list[Item] | str, describe: Callable[[Item], str]) -> list[str]:
    """An attribute's items as bullets, or its error (initializing, not_monitored, why it failed)."""
    if isinstance(value, str):
        return [f"<i>{escape(value)}</i>"]
    return [f"• {describe(item)}" for item in value] or ["none"]


def node_details(node: m.NodeInfo, tz: tzinfo | None) -> str:
    state = "🟢 connected" if node.connected else "🔴 disconnected"
    lines = [f"<b>{escape(node.hostname)}</b> #{node.serial} {escape(node.address)}", state]
    lines.append("<b>Sessions</b>")
    lines += _attribute_lines(node.sessions, lambda s: _session(s, tz))
    lines.append("<b>WireGuard peers</b>")
    lines += _attribute_lines(node.wg_peers, lambda p: _peer(p, tz))
    if node.labels:
        lines.append("<b>Commands</b> " + ", ".join(f"<code>{escape(label)}</code>" for label in node.labels))
    return "\n".join(lines)


def event_message(notice: Notice, tz: tzinfo | None) -> str:
    """A short message for one event, or for a folded burst of failures."""
    update = notice.update
    event = update.event
    failure = event.kind in FAILURE_KINDS
    where = f"{escape(update.hostname)} ({escape(update.address)})"
    context = update.context
    place = words.place(context.source if context else None)
    geo = [f"🌍 {escape(place)}"] if place else []
    if notice.folded:
        source = escape(event.host or event.user or "one source")
        users = ", ".join(escape(u) for u in notice.users)
        more = " …" if notice.count > len(notice.users) else ""
        lines = [
            f"❌ <b>{notice.count} more failures</b> from {source} on {where}",
            f"since {when(notice.first_time, tz)}" + (f"; users: {users}{more}" if users else ""),
            *geo,
        ]
        return "\n".join(lines)
    parts = [("❌ " if failure else "✅ ") + f"<b>{escape(label(event.kind))}</b>"]
    if event.user is not None:
        parts.append(f"<code>{escape(event.user)}</code>")
    if event.target_user:
        parts.append(f"→ <code>{escape(event.target_user)}</code>")
    if event.host:
        origin = f"{event.host}:{event.port}" if event.port else event.host
        parts.append(f"from {escape(origin)}")
    if event.method:
        parts.append(f"({escape(event.method)})")
    lines = [f"<b>{escape(flag)}</b>" for flag in words.flags(update)]
    lines.append(" ".join(parts))
    if event.command:
        lines.append(f"<code>{escape(event.command[:500])}</code>")
    lines += geo
    lines.append(f"{where} · {when(event.time, tz)}")
    return "\n".join(lines)


def notice_message(notice: m.NoticeUpdate, tz: tzinfo | None) -> str:
    """A notice: its headline in bold, then a line per fact; names and reasons escaped."""
    lines = [f"<b>{escape(words.notice_title(notice))}</b>"]
    lines += [escape(line) for line in words.notice_lines(notice, tz)]
    return _within_limit(lines)


def digest_message(digest: Digest, tz: tzinfo | None) -> str:
    """One message for what quiet hours held back: counts per kind, top sources and nodes, the first few."""
    lines = [f"🌙 <b>{escape(words.digest_heading(digest, tz))}</b>"]
    lines += [f"• {escape(line)}" for line in words.digest_counts(digest)]
    lines += [escape(line) for line in words.digest_tops(digest)]
    if digest.details:
        lines.append("<b>Held</b>")
        lines += [f"• {escape(words.held_line(item, tz)[:200])}" for item in digest.details]
        if digest.left_out:
            lines.append(f"<i>… and {digest.left_out} more</i>")
    return _within_limit(lines)


def mute_rule(rule: m.MuteRule, tz: tzinfo | None) -> str:
    """One rule on one line: id, matchers, expiry, reason, who made it."""
    by = f" · by {escape(rule.by)}" if rule.by else ""
    return f"#{rule.id} <code>{escape(rule_text(rule))}</code> · {escape(words.rule_terms(rule, tz))}{by}"


def mute_list(rules: list[m.MuteRule], tz: tzinfo | None) -> str:
    if not rules:
        return "No mute rules: every event is pushed."
    lines = [f"🔇 <b>{len(rules)} mute rule{'s' if len(rules) != 1 else ''}</b>"]
    lines += [mute_rule(rule, tz) for rule in rules]
    return _within_limit(lines)


def _within_limit(lines: list[str]) -> str:
    """Join a message's lines, cut to Telegram's limit between two of them: each line balances its own
    tags, and a line may hold a newline from a field (a rule's matcher), so the cut never splits one."""
    html = "\n".join(lines)
    if len(html) <= MESSAGE_LIMIT:
        return html
    note = "\n<i>… cut to Telegram's limit</i>"
    kept: list[str] = []
    size = len(note)
    for line in lines:
        if size + len(line) + 1 > MESSAGE_LIMIT:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept) + note


def command_result(result: m.CommandResult, hostname: str) -> str:
    """Status and output of one command on one node, within Telegram's limit."""
    ok = result.status == m.SUCCESS
    code = f" (exit {result.exit_code})" if result.exit_code not in (None, 0) else ""
    head = f"{'✅' if ok else '❌'} <b>{escape(hostname)}</b>: {escape(result.status)}{code}"
    if result.message:
        head += f"\n<i>{escape(result.message[:300])}</i>"
    if not result.output.strip():
        return head
    output = result.output[-OUTPUT_ROOM:]
    body = escape(output)
    while len(head) + len(body) + NOTE_ROOM > MESSAGE_LIMIT:  # escaping can lengthen it
        output = output[len(output) // 10 :]
        body = escape(output)
    cut = len(result.output) - len(output)
    note = f"\n<i>… output trimmed: first {cut} characters not shown</i>" if cut else ""
    return f"{head}\n<pre>{body}</pre>{note}"
