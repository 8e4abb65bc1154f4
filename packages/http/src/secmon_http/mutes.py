"""What a ``POST /mutes`` body may say, from JSON to the fields of a mute rule, without I/O.

The bridge checks the shape (types, known fields, a duration that reads); what
the values mean (a source that is an address or network, a known event kind, a
reason's length, at least one matcher) is the hub's to decide, and its
``bad_query`` answer names the field as well.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

MATCHERS = ("source", "user", "node", "kind")
FIELDS = frozenset({*MATCHERS, "for", "reason"})
MAX_DURATION = 3_650 * 86_400.0  # seconds: ten years; a rule meant for longer is one without an end
MAX_FIELD = 1_000  # characters a matcher or reason may have here; the hub bounds the reason tighter
UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,6})?)([smhdw]?)")
MAX_RULE_ID = 2**63 - 1  # ids are SQLite integers on the hub


class MuteBodyError(ValueError):
    """A mute request that does not read; the text names the field."""


@dataclass(frozen=True, slots=True)
class MuteRequest:
    """The fields of a rule to add (None: any value), and its duration in seconds (None: never ends)."""

    source: str | None = None
    user: str | None = None
    node: str | None = None
    kind: str | None = None
    duration: float | None = None
    reason: str = ""


def parse_duration(value: object) -> float | None:
    """Seconds from a JSON number, digits, or ``90s``, ``30m``, ``2h``, ``7d``, ``2w``; None for null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MuteBodyError('for: must be seconds or a duration like "30m", "2h", "7d"')
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            shown = value[:30] + ("..." if len(value) > 30 else "")
            raise MuteBodyError(f'for: {shown!r} is not a duration like "90s", "30m", "2h", "7d" or seconds')
        seconds = float(match[1]) * UNITS[match[2] or "s"]
    else:
        seconds = float(value)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_DURATION:
        raise MuteBodyError("for: a duration must be more than 0 and at most 3650 days; leave it out for no end")
    return seconds


def parse_mute_body(body: Any) -> MuteRequest:
    """The rule a decoded JSON body asks for; MuteBodyError naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise MuteBodyError('body must be a JSON object: {"source": "203.0.113.0/24", "for": "2h", "reason": "..."}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise MuteBodyError(f"unknown field {unknown[0][:40]!r}; a rule has {', '.join(sorted(FIELDS))}")
    values: dict[str, str | None] = {}
    for name in MATCHERS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise MuteBodyError(f"{name}: must be a string or null")
        if value is not None and not value.strip():
            raise MuteBodyError(f"{name}: empty; leave it out (or null) to match any {name}")
        if value is not None and len(value) > MAX_FIELD:
            raise MuteBodyError(f"{name}: longer than {MAX_FIELD} characters")
        values[name] = value.strip() if value is not None else None
    reason = body.get("reason")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise MuteBodyError("reason: must be a string")
    if len(reason) > MAX_FIELD:
        raise MuteBodyError(f"reason: longer than {MAX_FIELD} characters")
    return MuteRequest(**values, duration=parse_duration(body.get("for")), reason=reason.strip())


def parse_rule_id(text: str) -> int:
    """A rule id from a path: digits, from 1."""
    if not (text.isascii() and text.isdigit() and len(text) <= 19) or not 1 <= int(text) <= MAX_RULE_ID:
        shown = text[:30] + ("..." if len(text) > 30 else "")
        raise MuteBodyError(f"id: a mute rule's id is a whole number from 1, got {shown!r}")
    return int(text)
