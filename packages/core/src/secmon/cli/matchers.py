"""The words of a mute rule on the command line: matchers and durations, from text to fields.

    203.0.113.0/24, 2001:db8::1, source:CIDR    the event's source address is in it
    user:NAME                                   the event names this user
    node:NODE                                   the event's node (serial, hostname or address)
    kind:KIND                                   the event's kind, e.g. ssh_failed_password

Several matchers make one rule (all must match), each field at most once. A
duration is ``90s``, ``30m``, ``2h``, ``7d``, ``2w`` or a number of seconds.
``rule_text`` writes a rule back in the same words, so what ``secmon mute list``
shows can be typed again. Every fault is a MatcherError whose one line says what
is wrong; arguments.py turns it into a usage error.
"""

from __future__ import annotations

import ipaddress
import math
import re

from ..protocol import messages as m
from ..protocol.kinds import LABELS

FIELDS = ("source", "user", "node", "kind")
# Beyond ten years a rule is one that never expires: say so by leaving --for out.
MAX_DURATION = 3_650 * 86_400.0
_DURATION = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,6})?)([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_MAX_SHOWN = 60  # characters of a bad argument quoted back in an error


class MatcherError(ValueError):
    """A matcher or duration that does not read; the text says why."""


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def parse_matcher(text: str) -> tuple[str, str]:
    """One matcher as ``(field, value)``: a bare address or network is a source."""
    name, colon, value = text.partition(":")
    if colon and name in FIELDS:
        if not value:
            raise MatcherError(f"{name}: empty (write {name}:VALUE)")
        if name == "source":
            if _network(value) is None:
                raise MatcherError(f"source: {_shown(value)} is not an IP address or CIDR network")
        elif name == "kind" and value not in LABELS:
            raise MatcherError(f"kind: {_shown(value)} is not an event kind (`secmon mute add --help` lists them)")
        return name, value
    if _network(text) is not None:
        return "source", text
    if colon and name.isalpha():
        raise MatcherError(f"{_shown(text)}: no such matcher {name + ':'!r}; use CIDR, user:U, node:N or kind:K")
    if "/" in text or colon or text.replace(".", "").isdigit():
        raise MatcherError(f"{_shown(text)} is not an IP address or CIDR network")
    raise MatcherError(f"{_shown(text)} is not a matcher: an address or CIDR, user:U, node:N or kind:K")


def rule_fields(matchers: list[str]) -> dict[str, str]:
    """The fields several matchers set together; a field named twice is an error."""
    fields: dict[str, str] = {}
    for text in matchers:
        name, value = parse_matcher(text)
        if name in fields:
            raise MatcherError(f"{name}: given twice ({_shown(fields[name])} and {_shown(value)}); a rule matches one")
        fields[name] = value
    return fields


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``30m``, ``2h``, ``7d``, ``2w`` or a plain number of seconds; more than 0."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise MatcherError(f"{_shown(text)} is not a duration like 90s, 30m, 2h, 7d or a number of seconds")
    seconds = float(match[1]) * _UNITS[match[2]]
    if not 0 < seconds <= MAX_DURATION or not math.isfinite(seconds):
        raise MatcherError(f"{_shown(text)}: a duration must be more than 0 and at most 3650d")
    return seconds


def parse_rule_id(text: str) -> int:
    """A mute rule's id: a whole number."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise MatcherError(f"expected a rule id (a whole number, as `secmon mute list` shows), got {_shown(text)}")
    return int(text)


def rule_text(rule: m.MuteRule) -> str:
    """The rule's matchers in the words ``secmon mute add`` takes: ``203.0.113.0/24 user:root``."""
    parts = [rule.source] if rule.source else []
    parts += [f"{name}:{getattr(rule, name)}" for name in FIELDS[1:] if getattr(rule, name)]
    return " ".join(parts) or "(everything)"
