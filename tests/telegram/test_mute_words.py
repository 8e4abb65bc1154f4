"""/mute and /unmute words, parsed with plain calls."""

from __future__ import annotations

import pytest

from secmon_telegram.bot import on_behalf
from secmon_telegram.mutes import MuteRequest, MuteWordsError, parse_duration, parse_mute, parse_rule_id


@pytest.mark.parametrize(
    ("words", "request_"),
    [
        ("203.0.113.0/24", MuteRequest(source="203.0.113.0/24")),
        ("2001:db8::/32 user:root", MuteRequest(source="2001:db8::/32", user="root")),
        (
            "user:root node:web-1 kind:ssh_invalid_user for 2h reason lab scanner, ticket #42",
            MuteRequest(None, "root", "web-1", "ssh_invalid_user", 7200.0, "lab scanner, ticket #42"),
        ),
        ("source:192.0.2.7 for 90", MuteRequest(source="192.0.2.7", duration=90.0)),
        ("USER:Admin for 7d", MuteRequest(user="Admin", duration=7 * 86400.0)),
        ("node:db-1 reason for the night", MuteRequest(node="db-1", reason="for the night")),
    ],
)
def test_mute_words(words, request_):
    assert parse_mute(words.split()) == request_


@pytest.mark.parametrize(
    ("words", "error"),
    [
        ("", "usage: /mute"),
        ("for 2h", "usage: /mute"),
        ("user:a user:b", "user is given twice"),
        ("10.0.0.0/8 192.0.2.1", "source is given twice"),
        ("user:", "user: needs a value"),
        ("user:a for", "for needs a duration"),
        ("user:a for soon", "a duration is a number"),
        ("user:a for 0s", "more than 0"),
        ("user:a for 2h for 3h", "for is given twice"),
        ("user:a reason", "reason needs a text"),
    ],
)
def test_bad_mute_words_say_what_is_wrong(words, error):
    with pytest.raises(MuteWordsError, match=error):
        parse_mute(words.split())


def test_durations_and_ids():
    assert [parse_duration(d) for d in ("90s", "30m", "2h", "7d", "45", "1.5h")] == [90, 1800, 7200, 604800, 45, 5400]
    assert parse_rule_id(["3"]) == 3 and parse_rule_id(["#12"]) == 12
    for words in ([], ["x"], ["1", "2"], ["-1"]):
        with pytest.raises(MuteWordsError, match="usage: /unmute ID"):
            parse_rule_id(words)


def test_the_identity_the_bot_acts_for():
    assert on_behalf(42, "alice") == "telegram:42 @alice"
    assert on_behalf(42, None) == "telegram:42"
