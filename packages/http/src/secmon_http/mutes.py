"""What a ``POST /mutes`` body may say, from JSON to the fields of a mute rule, without I/O.

The bridge checks the JSON shape (types, known fields, lengths); the values
read as every surface reads them (``secmon.mutewords``: a source that is an
address or network, a known event kind, a duration). What is left (a reason's
length, at least one matcher) is the hub's to decide, and its ``bad_query``
answer names the field as well.
"""

from __future__ import annotations

from typing import Any

from secmon import mutewords
from secmon.mutewords import MuteRequest, MuteWordsError

FIELDS = frozenset({*mutewords.FIELDS, "for", "reason"})
MAX_FIELD = 1_000  # characters a matcher or reason may have here; the hub bounds the reason tighter


class MuteBodyError(MuteWordsError):
    """A mute request that does not read; the text names the field."""


def parse_duration(value: object) -> float | None:
    """Seconds from the ``for`` field: a JSON number, or words as ``secmon mute add --for`` takes; None for null."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MuteBodyError('for: must be seconds or a duration like "30m", "2h", "7d"')
    try:
        return mutewords.parse_duration(value)
    except MuteWordsError as exc:
        raise MuteBodyError(f"for: {exc}") from None


def parse_mute_body(body: Any) -> MuteRequest:
    """The rule a decoded JSON body asks for; MuteBodyError naming the first field that is wrong."""
    if not isinstance(body, dict):
        raise MuteBodyError('body must be a JSON object: {"source": "203.0.113.0/24", "for": "2h", "reason": "..."}')
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise MuteBodyError(f"unknown field {unknown[0][:40]!r}; a rule has {', '.join(sorted(FIELDS))}")
    values: dict[str, str | None] = {}
    for name in mutewords.FIELDS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise MuteBodyError(f"{name}: must be a string or null")
        if value is not None and not value.strip():
            raise MuteBodyError(f"{name}: empty; leave it out (or null) to match any {name}")
        if value is not None and len(value) > MAX_FIELD:
            raise MuteBodyError(f"{name}: longer than {MAX_FIELD} characters")
        try:
            values[name] = mutewords.check_value(name, value.strip()) if value is not None else None
        except MuteWordsError as exc:
            raise MuteBodyError(str(exc)) from None
    reason = body.get("reason")
    if reason is None:
        reason = ""
    if not isinstance(reason, str):
        raise MuteBodyError("reason: must be a string")
    if len(reason) > MAX_FIELD:
        raise MuteBodyError(f"reason: longer than {MAX_FIELD} characters")
    return MuteRequest(**values, duration=parse_duration(body.get("for")), reason=reason.strip())


def parse_rule_id(text: str) -> int:
    """A rule id from a path, as every surface reads one."""
    number = mutewords.rule_id(text)
    if number is None:
        shown = text[:30] + ("..." if len(text) > 30 else "")
        raise MuteBodyError(f"id: a mute rule's id is a whole number from 1, got {shown!r}")
    return number
