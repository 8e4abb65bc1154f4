"""/mute and /unmute words, parsed with plain calls."""

from __future__ import annotations

import pytest

from secmon_telegram.bot import on_behalf
from secmon_telegram.mutes import MuteRequest, MuteWordsError, parse_mute, parse_rule_id


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
        ("for 2w kind:su_failed", MuteRequest(kind="su_failed", duration=14 * 86400.0)),  # matchers after for
    ],
)
def test_mute_words(words, request_):
    assert parse_mute(words.split()) == request_


@pytest.mark.parametrize(
    ("words", "error"),
    [
        ("", "usage: /mute"),
        ("for 2h", "usage: /mute"),
        ("reason lab", "usage: /mute"),
        ("user:a for", "for needs a duration"),
        ("user:a for 2h for 3h", "for is given twice"),
        ("user:a reason", "reason needs a text"),
        # the words of secmon mute add, as secmon.mutewords reads them (all its faults: tests/core/test_mutewords.py)
        ("user:a user:b", "user: given twice"),
        ("10.0.0.0/8 192.0.2.1", "source: given twice"),
        ("user:", "user: empty"),
        ("root", "'root' is not a matcher"),
        ("kind:ssh_bogus", "kind: 'ssh_bogus' is not an event kind"),
        ("user:a for soon", "'soon' is not a duration"),
        ("user:a for 0s", "more than 0"),
    ],
)
def test_bad_mute_words_say_what_is_wrong(words, error):
    with pytest.raises(MuteWordsError, match=error):
        parse_mute(words.split())


def test_ids():
    assert parse_rule_id(["3"]) == 3 and parse_rule_id(["#12"]) == 12
    for words in ([], ["x"], ["1", "2"], ["-1"], ["0"]):
        with pytest.raises(MuteWordsError, match="usage: /unmute ID"):
            parse_rule_id(words)


def test_the_identity_the_bot_acts_for():
    assert on_behalf(42, "alice") == "telegram:42 @alice"
    assert on_behalf(42, None) == "telegram:42"
