"""The words of ``/mute`` and ``/unmute``, parsed: pure, so every form is tested with plain calls.

    /mute 203.0.113.0/24 user:root for 2h reason scanner from the lab
    /unmute 3

Matchers, durations and rule ids are those of ``secmon mute`` (``secmon.mutewords``
reads them); this module owns only the chat's own words around them: ``for``
takes the next word as the DURATION, ``reason`` takes the rest of the line.
"""

from __future__ import annotations

from secmon.mutewords import MuteRequest, MuteWordsError, parse_duration, rule_fields, rule_id

USAGE = "usage: /mute CIDR|user:U|node:N|kind:K ... [for DURATION] [reason TEXT]"


def parse_mute(words: list[str]) -> MuteRequest:
    """The words after ``/mute``, as a MuteRequest; MuteWordsError saying what is wrong otherwise."""
    matchers: list[str] = []
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
        matchers.append(word)
        index += 1
    if not matchers:
        raise MuteWordsError(USAGE)
    return MuteRequest(**rule_fields(matchers), duration=duration, reason=reason)


def parse_rule_id(words: list[str]) -> int:
    """The one id after ``/unmute`` (``3`` or ``#3``); MuteWordsError otherwise."""
    number = rule_id(words[0]) if len(words) == 1 else None
    if number is None:
        raise MuteWordsError("usage: /unmute ID (the number /mutes shows)")
    return number
