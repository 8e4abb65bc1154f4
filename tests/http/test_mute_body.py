"""What a POST /mutes body may say, as plain function calls (mutes.py has no I/O)."""

from __future__ import annotations

import pytest

from secmon_http.mutes import MuteBodyError, MuteRequest, parse_duration, parse_mute_body, parse_rule_id


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), (90, 90.0), (0.5, 0.5), ("90", 90.0), (" 2h ", 7200.0), ("2w", 1209600.0), ("3650d", 315360000.0)],
)  # every form of the words: tests/core/test_mutewords.py
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [0, -5, "0s", "3651d", 1e308, 10**400, float("inf"), float("nan"), "soon", "2H", "", True, [], {}, "9" * 400],
)
def test_durations_that_do_not_read(value):
    with pytest.raises(MuteBodyError) as refused:
        parse_duration(value)
    assert str(refused.value).startswith("for: ") and len(str(refused.value)) < 200


def test_a_full_body():
    body = {"source": "203.0.113.0/24", "user": "root", "node": "web-1", "kind": "ssh_failed_password",
            "for": "2h", "reason": " scanner we know "}  # fmt: skip
    assert parse_mute_body(body) == MuteRequest(
        "203.0.113.0/24", "root", "web-1", "ssh_failed_password", 7200.0, "scanner we know"
    )
    assert parse_mute_body({"user": "backup", "for": None, "reason": None}) == MuteRequest(user="backup")
    assert parse_mute_body({}) == MuteRequest()  # no matcher: the hub says what is missing


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ([], "body must be a JSON object"),
        ("source", "body must be a JSON object"),
        (None, "body must be a JSON object"),
        ({"source": "1.2.3.4", "expires": 5}, "unknown field 'expires'"),
        ({"source": 5}, "source: must be a string or null"),
        ({"user": ["root"]}, "user: must be a string or null"),
        ({"node": {"a": 1}}, "node: must be a string or null"),
        ({"kind": True}, "kind: must be a string or null"),
        ({"user": "  "}, "user: empty; leave it out"),
        ({"user": "x" * 1001}, "user: longer than 1000"),
        ({"user": "root", "reason": 7}, "reason: must be a string"),
        ({"user": "root", "reason": "x" * 1001}, "reason: longer than 1000"),
        ({"user": "root", "for": "soon"}, "for: 'soon' is not a duration"),
        ({"source": "not-an-address"}, "source: 'not-an-address' is not an IP address or CIDR network"),
        ({"source": " 203.0.113.0/99 "}, "source: '203.0.113.0/99' is not an IP address"),
        ({"kind": "nosuch_kind"}, "kind: 'nosuch_kind' is not an event kind"),
    ],
)
def test_bodies_that_do_not_read_name_the_field(body, words):
    with pytest.raises(MuteBodyError) as refused:
        parse_mute_body(body)
    assert words in str(refused.value)


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("42", 42), (str(2**63 - 1), 2**63 - 1)])
def test_rule_ids(text, value):
    assert parse_rule_id(text) == value


@pytest.mark.parametrize("text", ["0", "-1", "1.0", "x", "", "٣", str(2**63), "9" * 400, " 1", "#"])
def test_rule_ids_that_do_not_read(text):
    with pytest.raises(MuteBodyError, match="id: a mute rule's id is a whole number from 1"):
        parse_rule_id(text)
