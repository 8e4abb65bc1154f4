"""The words of a mute rule, from text to fields and back: one vocabulary for every surface.

    203.0.113.0/24, 2001:db8::1, source:CIDR    the event's source address is in it
    user:NAME                                   the event names this user
    node:NODE                                   the event's node (serial, hostname or address)
    kind:KIND                                   the event's kind, e.g. ssh_failed_password

Several matchers make one rule (all must match), each field at most once; a
field's name may be written in any case (``User:root``), its value is taken as
written. A duration is ``90s``, ``30m``, ``2h``, ``7d``, ``2w`` or a number of
seconds, more than 0 and at most MAX_DURATION. A rule id is a whole number
(``3``, or ``#3`` as lists show it). ``rule_text`` writes a rule back in the
same words, so what a list shows can be typed again.

``secmon mute``, the Telegram bot's ``/mute`` and the HTTP bridge's
``POST /mutes`` read through here and add only their own syntax around it
(options, ``for``/``reason`` words, a JSON body). Every fault is a
MuteWordsError whose one line says what is wrong. The hub checks again what it
is sent: this module decides what the surfaces accept, not what the hub keeps.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import re
from dataclasses import dataclass
from typing import Any

from .protocol import messages as m
from .protocol.kinds import LABELS
from .protocol.notices import MAX_MUTE_DURATION

FIELDS = ("source", "user", "node", "kind")
MAX_DURATION = MAX_MUTE_DURATION  # the hub's bound, checked before asking it
MAX_RULE_ID = 2**63 - 1  # ids are SQLite integers on the hub
# At most 12 digits and 6 decimals: any more is a typo, and float() of it is exact enough.
_DURATION = re.compile(r"([0-9]{1,12}(?:\.[0-9]{1,6})?)([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
_MAX_SHOWN = 60  # characters of a bad word quoted back in an error


class MuteWordsError(ValueError):
    """Raised when a matcher, duration or rule does not read; ``str()`` is the one line to show."""


@dataclass(frozen=True, slots=True)
class MuteRequest:
    """A rule a user asks for: its matchers (None: any value), duration in seconds (None: no end), reason."""

    source: str | None = None
    user: str | None = None
    node: str | None = None
    kind: str | None = None
    duration: float | None = None
    reason: str = ""

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of ``HubClient.add_mute`` that ask for this rule (``on_behalf`` aside)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def shown(text: str) -> str:
    """``text`` quoted for an error line: repr (so control characters show as escapes), cut when long."""
    return repr(text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "...")


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def check_value(name: str, value: str) -> str:
    """``value`` when rule field ``name`` can hold it: a source is an address or network, a kind is known."""
    if name == "source" and _network(value) is None:
        raise MuteWordsError(f"source: {shown(value)} is not an IP address or CIDR network")
    if name == "kind" and value not in LABELS:
        raise MuteWordsError(f"kind: {shown(value)} is not an event kind")
    return value


def parse_matcher(text: str) -> tuple[str, str]:
    """One matcher as ``(field, value)``: a bare address or network is a source."""
    name, colon, value = text.partition(":")
    if colon and name.lower() in FIELDS:
        name = name.lower()
        if not value:
            raise MuteWordsError(f"{name}: empty (write {name}:VALUE)")
        return name, check_value(name, value)
    if _network(text) is not None:
        return "source", text
    if colon and name.isalpha():
        raise MuteWordsError(f"{shown(text)}: no such matcher {name + ':'!r}; use CIDR, user:U, node:N or kind:K")
    if "/" in text or colon or text.replace(".", "").isdigit():
        raise MuteWordsError(f"{shown(text)} is not an IP address or CIDR network")
    raise MuteWordsError(f"{shown(text)} is not a matcher: an address or CIDR, user:U, node:N or kind:K")


def rule_fields(matchers: list[str]) -> dict[str, str]:
    """The fields several matchers set together; a field named twice is an error."""
    fields: dict[str, str] = {}
    for text in matchers:
        name, value = parse_matcher(text)
        if name in fields:
            raise MuteWordsError(f"{name}: given twice ({shown(fields[name])} and {shown(value)}); a rule matches one")
        fields[name] = value
    return fields


def parse_duration(value: str | float) -> float:
    """Seconds in ``90s``, ``30m``, ``2h``, ``7d``, ``2w``, a plain number of seconds, or a number itself."""
    if isinstance(value, str):
        match = _DURATION.fullmatch(value.strip())
        if match is None:
            raise MuteWordsError(f"{shown(value)} is not a duration like 90s, 30m, 2h, 7d or a number of seconds")
        seconds = float(match[1]) * _UNITS[match[2]]
    else:
        try:
            seconds = float(value)
        except OverflowError:  # an int past what a float holds
            seconds = math.inf
    if not (math.isfinite(seconds) and 0 < seconds <= MAX_DURATION):
        raise MuteWordsError(
            f"{shown(str(value))}: a duration must be more than 0 and at most {MAX_DURATION / 86_400:g}d; "
            "leave it out for no end"
        )
    return seconds


def rule_id(text: str) -> int | None:
    """The id ``text`` names (``3``, or ``#3`` as lists show it), or None when it is no rule id."""
    digits = text.removeprefix("#")
    if not (digits.isascii() and digits.isdigit() and len(digits) <= len(str(MAX_RULE_ID))):
        return None
    number = int(digits)
    return number if 1 <= number <= MAX_RULE_ID else None


def rule_text(rule: m.MuteRule) -> str:
    """The rule's matchers in the words a mute is added with: ``203.0.113.0/24 user:root``."""
    parts = [rule.source] if rule.source else []
    parts += [f"{name}:{getattr(rule, name)}" for name in FIELDS[1:] if getattr(rule, name)]
    return " ".join(parts) or "(everything)"
