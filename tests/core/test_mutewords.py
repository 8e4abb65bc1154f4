"""The words of a mute rule every surface reads (matchers, durations, ids, a rule written back), with plain calls."""

from __future__ import annotations

import inspect
import math

import pytest

from secmon.client import HubClient
from secmon.mutewords import (
    MAX_DURATION,
    MuteRequest,
    MuteWordsError,
    check_value,
    parse_duration,
    parse_matcher,
    rule_fields,
    rule_id,
    rule_text,
)
from secmon.protocol import messages as m


@pytest.mark.parametrize(
    ("text", "matcher"),
    [
        ("203.0.113.0/24", ("source", "203.0.113.0/24")),
        ("198.51.100.7", ("source", "198.51.100.7")),
        ("2001:db8::/32", ("source", "2001:db8::/32")),
        ("fe80::1", ("source", "fe80::1")),  # "fe80" before the colon is no field
        ("source:192.0.2.0/24", ("source", "192.0.2.0/24")),
        ("user:root", ("user", "root")),
        ("user:a:b", ("user", "a:b")),
        ("USER:Admin", ("user", "Admin")),  # a field's name in any case, its value as written
        ("node:web-1", ("node", "web-1")),
        ("node:fe80::1", ("node", "fe80::1")),
        ("Kind:ssh_invalid_user", ("kind", "ssh_invalid_user")),
    ],
)
def test_matchers(text, matcher):
    assert parse_matcher(text) == matcher


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("root", "'root' is not a matcher: an address or CIDR, user:U, node:N or kind:K"),
        ("host:x", "'host:x': no such matcher 'host:'; use CIDR, user:U, node:N or kind:K"),
        ("300.1.1.1/8", "'300.1.1.1/8' is not an IP address or CIDR network"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or CIDR network"),
        ("2001:db8::zz", "'2001:db8::zz' is not an IP address or CIDR network"),
        ("10.1.2", "'10.1.2' is not an IP address or CIDR network"),
        ("source:example.org", "source: 'example.org' is not an IP address or CIDR network"),
        ("kind:ssh_bogus", "kind: 'ssh_bogus' is not an event kind"),
        ("kind:SSH_ACCEPTED", "kind: 'SSH_ACCEPTED' is not an event kind"),
        ("user:", "user: empty (write user:VALUE)"),
        ("Node:", "node: empty (write node:VALUE)"),
    ],
)
def test_matchers_that_do_not_read_say_why(text, message):
    with pytest.raises(MuteWordsError) as refused:
        parse_matcher(text)
    assert str(refused.value) == message


def test_a_hostile_word_is_quoted_back_escaped_and_cut():
    with pytest.raises(MuteWordsError) as refused:
        parse_matcher("kind:\x1b]0;pwned\x07" + "x" * 500)
    text = str(refused.value)
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;pwned\\x07" in text and len(text) < 120


def test_several_matchers_make_one_rule_each_field_once():
    words = ["203.0.113.0/24", "user:root", "node:web-1", "kind:su_failed"]
    assert rule_fields(words) == {"source": "203.0.113.0/24", "user": "root", "node": "web-1", "kind": "su_failed"}
    with pytest.raises(MuteWordsError, match=r"^user: given twice \('a' and 'b'\); a rule matches one$"):
        rule_fields(["user:a", "USER:b"])
    with pytest.raises(MuteWordsError, match=r"^source: given twice"):
        rule_fields(["10.0.0.0/8", "source:10.1.0.0/16"])


def test_values_are_checked_alone_for_a_surface_that_has_fields_not_words():
    assert check_value("source", "2001:db8::/32") == "2001:db8::/32"
    assert check_value("user", "not-an-address") == "not-an-address"
    with pytest.raises(MuteWordsError, match=r"^source: 'not-an-address' is not an IP address"):
        check_value("source", "not-an-address")
    with pytest.raises(MuteWordsError, match=r"^kind: 'nosuch' is not an event kind"):
        check_value("kind", "nosuch")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("30m", 1800.0),
        (" 2h ", 7200.0),
        ("7d", 604800.0),
        ("2w", 1209600.0),
        ("45", 45.0),
        ("1.5h", 5400.0),
        ("0.5", 0.5),
        ("3650d", MAX_DURATION),
        (90, 90.0),
        (0.25, 0.25),
    ],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    ["soon", "inf", "nan", "1e9", "2 h", "2H", "h", "", "-1h", "½h", "１h", "1.1234567s", "9" * 13, "\x1b[2J"],
)
def test_durations_that_do_not_read(value):
    with pytest.raises(MuteWordsError) as refused:
        parse_duration(value)
    assert str(refused.value).endswith(" is not a duration like 90s, 30m, 2h, 7d or a number of seconds")
    assert "\x1b" not in str(refused.value) and len(str(refused.value)) < 160


@pytest.mark.parametrize(
    "value", ["0", "0s", "3651d", "523w", "999999999999", 0, -5, 1e308, math.inf, math.nan, 10**400]
)
def test_durations_out_of_bounds(value):
    with pytest.raises(MuteWordsError) as refused:
        parse_duration(value)
    assert ": a duration must be more than 0 and at most 3650d; leave it out for no end" in str(refused.value)
    assert len(str(refused.value)) < 160


@pytest.mark.parametrize(("text", "number"), [("1", 1), ("#3", 3), ("42", 42), (str(2**63 - 1), 2**63 - 1)])
def test_rule_ids(text, number):
    assert rule_id(text) == number


@pytest.mark.parametrize("text", ["0", "#0", "-1", "1.0", "x", "", "#", "##3", "٣", " 1", str(2**63), "9" * 400])
def test_what_is_no_rule_id(text):
    assert rule_id(text) is None


def test_a_rule_is_written_back_in_the_words_that_make_it():
    rule = m.MuteRule(3, "203.0.113.0/24", "root", "web-1", "ssh_invalid_user")
    assert rule_text(rule) == "203.0.113.0/24 user:root node:web-1 kind:ssh_invalid_user"
    assert rule_text(m.MuteRule(4, kind="ssh_accepted")) == "kind:ssh_accepted"
    for fields in ({"source": "2001:db8::/32"}, {"user": "a:b", "node": "fe80::1"}, {"node": "n", "kind": "su_failed"}):
        assert rule_fields(rule_text(m.MuteRule(1, **fields)).split()) == fields


def test_a_request_is_what_the_client_library_takes():
    request = MuteRequest(**rule_fields(["user:root", "10.0.0.0/8"]), duration=parse_duration("2h"), reason="lab")
    assert request.arguments() == {
        "source": "10.0.0.0/8", "user": "root", "node": None, "kind": None, "duration": 7200.0, "reason": "lab",
    }  # fmt: skip
    assert set(request.arguments()) < set(inspect.signature(HubClient.add_mute).parameters)
