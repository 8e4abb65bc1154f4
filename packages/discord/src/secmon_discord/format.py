"""Discord embeds for auth events: pure functions, escaped for Discord markdown.

Text that came from a monitored server (user names, hosts, commands) could
carry markdown or mentions; every such value is escaped here, and the
webhook payload disables mentions as well, so ``@everyone`` stays text.
"""

from __future__ import annotations

import re
from typing import Any

from secmon.folding import Notice
from secmon.jsonform import iso
from secmon.protocol.kinds import FAILURE_KINDS, label

GREEN, RED, AMBER = 0x2E9D58, 0xD2352C, 0xE0A100
TITLE_LIMIT, FIELD_LIMIT, DESCRIPTION_LIMIT = 256, 1024, 4096  # Discord's embed limits
NO_MENTIONS: dict[str, list[str]] = {"parse": []}

_MARKDOWN = re.compile(r"([\\*_~`|>#\-\[\]()<:])")


def escape(text: object, limit: int = FIELD_LIMIT) -> str:
    """Markdown-inert text; mentions broken with a zero-width space; cut to ``limit``."""
    escaped = _MARKDOWN.sub(r"\\\1", str(text)).replace("@", "@\u200b")
    if len(escaped) > limit:
        escaped = escaped[: limit - 1] + "…"
    return escaped or "\u200b"


def title_for(kind: str) -> str:
    """The embed title's words for a kind: its label, as every medium shows it."""
    return label(kind)


def embed(notice: Notice) -> dict[str, Any]:
    """One embed for a notice: the event's fields, or a folded burst with its count."""
    update = notice.update
    event = update.event
    failure = event.kind in FAILURE_KINDS
    title = ("❌ " if failure else "✅ ") + title_for(event.kind)
    fields = []

    def add(name: str, value: object, inline: bool = True) -> None:
        if value is not None and value != "":
            fields.append({"name": name, "value": escape(value), "inline": inline})

    add("User", event.user)
    if event.host:
        add("From", f"{event.host}:{event.port}" if event.port else event.host)
    add("Method", event.method)
    add("Target user", event.target_user)
    add("Command", event.command, inline=False)
    add("TTY", event.tty)
    add("PID", event.pid)
    add("Node", f"{update.hostname} ({update.address})", inline=False)
    result: dict[str, Any] = {
        "title": title[:TITLE_LIMIT],
        "color": RED if failure else GREEN,
        "timestamp": iso(event.time),
        "fields": fields,
        "footer": {"text": f"SecMon · {event.process}"},
    }
    if notice.folded:
        result["title"] = f"❌ {notice.count} more failures from {event.host or event.user or 'one source'}"[
            :TITLE_LIMIT
        ]
        result["color"] = AMBER
        users = ", ".join(escape(u, 64) for u in notice.users)
        kinds = ", ".join(title_for(k) for k in notice.kinds)
        description = f"Folded since {iso(notice.first_time)}: {kinds}."
        if users:
            description += f"\nUsers tried: {users}{' …' if notice.count > len(notice.users) else ''}"
        result["description"] = description[:DESCRIPTION_LIMIT]
    return result


def payload(embeds: list[dict[str, Any]], content: str = "") -> dict[str, Any]:
    """The webhook body: our content above the embeds, and no mention may ping anyone."""
    body: dict[str, Any] = {"embeds": embeds, "allowed_mentions": NO_MENTIONS}
    if content:
        body["content"] = content
    return body
