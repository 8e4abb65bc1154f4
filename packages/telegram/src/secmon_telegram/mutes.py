"""The words of ``/mute`` and ``/unmute``, parsed: pure, so every form is tested with plain calls.

    /mute 203.0.113.0/24 user:root for 2h reason scanner from the lab
    /unmute 3

Matchers are those of ``secmon mute add``: an address or CIDR network, ``user:U``,
``node:N``, ``kind:K``; several combine (all must match), each at most once.
``for`` takes one DURATION (``90s``, ``30m``, ``2h``, ``7d``, or seconds);
``reason`` takes the rest of the line. The hub checks the rest (known kind, a
real network) and says what it refuses.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

USAGE = "usage: /mute CIDR|user:U|node:N|kind:K ... [for DURATION] [reason TEXT]"
FIELDS = ("user", "node", "kind")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
MAX_DURATION = 10 * 365 * 86_400  # ten years: longer is a typo, and "no expiry" is said by leaving it out


class MuteWordsError(ValueError):
    """Raised when /mute or /unmute words do not parse; the text is the reply, one line."""


@dataclass(frozen=True, slots=True)
class MuteRequest:
    """A parsed ``/mute``: the fields of HubClient.add_mute."""

    source: str | None = None
    user: str | None = None
    node: str | None = None
    kind: str | None = None
    duration: float | None = None
    reason: str = ""


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``2h``, ``7d`` or plain seconds, as seconds; MuteWordsError otherwise."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise MuteWordsError(f"a duration is a number with s, m, h or d (90s, 30m, 2h, 7d), got {text!r}")
    seconds = float(match[1]) * UNITS[match[2]]
    if not 0 < seconds <= MAX_DURATION or not math.isfinite(seconds):
        raise MuteWordsError(f"a duration must be more than 0 and at most ten years, got {text!r}")
    return seconds


def parse_mute(words: list[str]) -> MuteRequest:
    """The words after ``/mute``, as a MuteRequest; MuteWordsError saying what is wrong otherwise."""
    fields: dict[str, str] = {}
    duration: float | None = None
    reason = ""
    index = 0
    while index < len(words):
        word = words[index]
        if word.lower() == "reason":
            reason = " ".join(words[index + 1 :]).strip()
            if not reason:
                raise MuteWordsError("reason needs a text after it")
            break
        if word.lower() == "for":
            if index + 1 >= len(words):
                raise MuteWordsError("for needs a duration after it (90s, 30m, 2h, 7d)")
            if duration is not None:
                raise MuteWordsError("for is given twice")
            duration = parse_duration(words[index + 1])
            index += 2
            continue
        name, sep, value = word.partition(":")
        if sep and name.lower() in (*FIELDS, "source"):
            name = name.lower()
        else:
            name, value = "source", word  # an address or network, as the CLI takes it
        if not value:
            raise MuteWordsError(f"{name}: needs a value ({word!r})")
        if name in fields:
            raise MuteWordsError(f"{name} is given twice")
        fields[name] = value
        index += 1
    if not fields:
        raise MuteWordsError(USAGE)
    return MuteRequest(
        source=fields.get("source"),
        user=fields.get("user"),
        node=fields.get("node"),
        kind=fields.get("kind"),
        duration=duration,
        reason=reason,
    )


def parse_rule_id(words: list[str]) -> int:
    """The one id after ``/unmute`` (``3`` or ``#3``); MuteWordsError otherwise."""
    if len(words) != 1 or not words[0].lstrip("#").isdigit():
        raise MuteWordsError("usage: /unmute ID (the number /mutes shows)")
    return int(words[0].lstrip("#"))
