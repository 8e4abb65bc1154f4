"""Discord embeds for auth events, notices and quiet-hours digests: pure functions, escaped for markdown.

Text that came from a monitored server or another person (user names, hosts,
commands, GeoIP names, mute reasons, who did what) could carry markdown or
mentions; every such value is escaped here, and the webhook payload disables
mentions as well, so ``@everyone`` stays text.
"""

from __future__ import annotations

import re
from datetime import tzinfo
from typing import Any

from secmon import notifytext as words
from secmon.folding import Notice
from secmon.jsonform import iso
from secmon.notify import Outgoing
from secmon.protocol import messages as m
from secmon.protocol import notices
from secmon.protocol.kinds import FAILURE_KINDS, label
from secmon.quiet import Digest

GREEN, RED, AMBER, BLUE, GREY = 0x2E9D58, 0xD2352C, 0xE0A100, 0x3B82C4, 0x6B7280
SEVERITY_COLOURS = {notices.CRITICAL: RED, notices.WARNING: AMBER, notices.INFO: BLUE}
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


def embed_for(item: Outgoing, tz: tzinfo | None) -> dict[str, Any]:
    """The embed for whatever the relay hands on: an event or burst, a notice, a digest."""
    if type(item) is Notice:
        return embed(item)
    if type(item) is Digest:
        return digest_embed(item, tz)
    assert type(item) is m.NoticeUpdate
    return notice_embed(item, tz)


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
    context = update.context
    add("Where", words.place(context.source if context else None), inline=False)
    flags = words.flags(update)
    result: dict[str, Any] = {
        "title": title[:TITLE_LIMIT],
        "color": AMBER if flags else RED if failure else GREEN,
        "timestamp": iso(event.time),
        "fields": fields,
        "footer": {"text": f"SecMon · {event.process}"},
    }
    if flags:
        result["description"] = "\n".join(f"**{escape(flag, 200)}**" for flag in flags)
    if notice.folded:
        result["title"] = f"❌ {notice.count} more failures from {event.host or event.user or 'one source'}"[
            :TITLE_LIMIT
        ]
        result["color"] = AMBER
        users = ", ".join(escape(u, 64) for u in notice.users)
        kinds = ", ".join(title_for(k) for k in notice.kinds)
        description = f"Folded since {iso(notice.first_time)}: {kinds}."
        if flags:
            description = result["description"] + "\n" + description
        if users:
            description += f"\nUsers tried: {users}{' …' if notice.count > len(notice.users) else ''}"
        result["description"] = description[:DESCRIPTION_LIMIT]
    return result


def notice_embed(notice: m.NoticeUpdate, tz: tzinfo | None) -> dict[str, Any]:
    """A notice: its headline as the title, a line per fact (escaped), coloured by severity."""
    ended = notice.source is not None and notice.source.ended
    colour = GREEN if ended else SEVERITY_COLOURS.get(notices.severity(notice.kind), GREY)
    body = "\n".join(escape(line, DESCRIPTION_LIMIT) for line in words.notice_lines(notice, tz))
    return {
        "title": words.notice_title(notice)[:TITLE_LIMIT],
        "description": _cut(body, DESCRIPTION_LIMIT),
        "color": colour,
        "timestamp": iso(notice.time),
        "footer": {"text": f"SecMon · notice {notice.seq}"},
    }


def digest_embed(digest: Digest, tz: tzinfo | None) -> dict[str, Any]:
    """What quiet hours held back: counts per kind, top sources and nodes, the first few items."""
    fields = []
    counts = words.digest_counts(digest)
    if counts:
        fields.append({"name": "Held, per kind", "value": _cut("\n".join(escape(c, 200) for c in counts)),
                       "inline": False})  # fmt: skip
    for line in words.digest_tops(digest):
        name, _, value = line.partition(": ")
        fields.append({"name": name, "value": escape(value), "inline": False})
    if digest.details:
        fields.append({"name": "First held", "value": _held_lines(digest, tz), "inline": False})
    return {
        "title": ("🌙 " + words.digest_heading(digest, tz))[:TITLE_LIMIT],
        "color": GREY,
        "timestamp": iso(digest.until),
        "fields": fields,
        "footer": {"text": "SecMon · quiet hours digest"},
    }


def _held_lines(digest: Digest, tz: tzinfo | None) -> str:
    """The digest's details, as many whole lines as fit a field, and how many more there were."""
    lines = [escape(words.held_line(item, tz), 200) for item in digest.details]
    room = FIELD_LIMIT - 40  # the "… and N more" line
    kept: list[str] = []
    for line in lines:
        if sum(len(k) + 1 for k in kept) + len(line) > room:
            break
        kept.append(line)
    more = digest.held - len(kept)
    return "\n".join(kept + ([f"… and {more} more"] if more else []))


def _cut(text: str, limit: int = FIELD_LIMIT) -> str:
    """Whole lines of ``text`` within ``limit`` characters (escaping is never cut in half)."""
    if len(text) <= limit:
        return text
    kept, size = [], 2
    for line in text.split("\n"):
        if size + len(line) + 1 > limit:
            break
        kept.append(line)
        size += len(line) + 1
    return "\n".join([*kept, "…"])


def payload(embeds: list[dict[str, Any]], content: str = "") -> dict[str, Any]:
    """The webhook body: our content above the embeds, and no mention may ping anyone."""
    body: dict[str, Any] = {"embeds": embeds, "allowed_mentions": NO_MENTIONS}
    if content:
        body["content"] = content
    return body
