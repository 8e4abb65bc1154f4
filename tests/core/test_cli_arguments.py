"""The CLI's pure parts: what each command line means, and the node table's failing collectors."""

from __future__ import annotations

import pytest

from secmon.cli import arguments
from secmon.cli.arguments import HelpShown, parse
from secmon.cli.render import MAX_REASON, collector_failures, node_table
from secmon.cli.terminal import Painter
from secmon.errors import ConfigError
from secmon.protocol import messages as m


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["hub"], {"command": "hub", "allow_insecure": False}),
        (["hub", "--allow-insecure"], {"command": "hub", "allow_insecure": True}),
        (["node"], {"command": "node", "monitors": [], "reconnect": False}),
        (["node", "who", "--reconnect", "wg", "who"], {"monitors": ["who", "wg"], "reconnect": True}),
        (["subscribe"], {"command": "subscribe", "since": None, "json": False}),
        (["subscribe", "--since", "42", "--json"], {"command": "subscribe", "since": 42, "json": True}),
        (["list"], {"command": "list", "json": False}),
        (["-"], {"command": "list"}),
        (["--json", "list"], {"command": "list", "json": True}),
        (["node-a"], {"command": "show", "node": "node-a", "label": None}),
        (["3", "--json"], {"command": "show", "node": "3", "json": True}),
        (["node-a", "uptime"], {"command": "execute", "node": "node-a", "label": "uptime"}),
        (["-", "uptime"], {"command": "execute", "node": "-", "label": "uptime"}),
        (["node-a", "--", "--help"], {"command": "execute", "node": "node-a", "label": "--help"}),
        (["node-a", "--", "--json"], {"command": "execute", "label": "--json", "json": False}),
        (["authlog"], {"command": "authlog", "source": "-", "stats": False, "unmatched": False}),
        (["authlog", "/var/log/auth.log", "--stats"], {"source": "/var/log/auth.log", "stats": True}),
        (["check"], {"command": "check", "extra": []}),
        (["check", "hub", "--allow-insecure", "--json"], {"extra": ["hub", "--allow-insecure"], "json": True}),
        (["events", "--since", "5"], {"command": "events", "since": "5", "limit": "100"}),
        (
            ["events", "--node", "a", "--node", "2", "--kind", "su_failed", "--failures", "--json"],
            {"node": ["a", "2"], "kind": ["su_failed"], "failures": True, "json": True},
        ),
        (
            ["events", "--user", "root", "--source", "10.0.0.0/8", "--until", "2h", "--limit", "5"],
            {"user": "root", "source": "10.0.0.0/8", "until": "2h", "limit": "5"},
        ),
        (
            ["mute", "add", "203.0.113.0/24"],
            {"command": "mute add", "fields": {"source": "203.0.113.0/24"}, "duration": None, "reason": ""},
        ),
        (
            ["mute", "add", "--for", "2h", "user:root", "--reason", "pen test", "kind:ssh_failed_password"],
            {"fields": {"user": "root", "kind": "ssh_failed_password"}, "duration": 7200.0, "reason": "pen test"},
        ),
        (
            ["mute", "add", "2001:db8::/32", "node:web-1", "--json", "--for", "90"],
            {"fields": {"source": "2001:db8::/32", "node": "web-1"}, "duration": 90.0, "json": True},
        ),
        (
            ["mute", "add", "source:198.51.100.7", "--for=1.5d"],
            {"fields": {"source": "198.51.100.7"}, "duration": 1.5 * 86400},
        ),
        (["mute", "add", "node:fe80::1", "user:a:b"], {"fields": {"node": "fe80::1", "user": "a:b"}}),
        (["mute", "list"], {"command": "mute list", "json": False}),
        (["--json", "mute", "list"], {"command": "mute list", "json": True}),
        (["mute", "rm", "12"], {"command": "mute rm", "id": 12}),
        (["audit"], {"command": "audit", "since": None, "limit": "100", "json": False}),
        (["audit", "--since", "2h", "--limit", "5", "--json"], {"since": "2h", "limit": "5", "json": True}),
    ],
)
def test_command_lines_and_what_they_mean(argv, expected):
    ns = parse(argv)
    assert {key: getattr(ns, key) for key in expected} == expected


def _help(argv: list[str]) -> str:
    with pytest.raises(HelpShown) as shown:
        parse(argv)
    return shown.value.text


@pytest.mark.parametrize("word", [*(w for w in arguments.RESERVED if w != "check"), "node-a", "-", "12"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_after_every_word_is_that_words_usage(word, flag):
    text = _help([word, flag])
    if word in arguments.RESERVED:
        assert text.startswith(f"usage: secmon {word}")
    else:
        assert text.startswith("usage: secmon NODE [LABEL]")


@pytest.mark.parametrize("argv", [[], ["help"], ["--help"], ["-h"], ["--json"]])
def test_the_overview(argv):
    assert _help(argv) == arguments.OVERVIEW


def test_help_after_a_label_or_with_other_arguments_is_still_help():
    assert _help(["node-a", "uptime", "--help"]).startswith("usage: secmon NODE")
    assert _help(["node", "who", "--help", "bogus"]).startswith("usage: secmon node")


def test_check_reads_its_own_arguments_and_help():
    assert parse(["check", "--help"]).extra == ["--help"]
    assert _help(["help", "check"]).startswith("usage: secmon check")


def test_help_on_one_word():
    assert _help(["help", "subscribe"]).startswith("usage: secmon subscribe")
    assert _help(["help", "NODE"]).startswith("usage: secmon NODE")


def test_mute_and_audit_are_in_the_overview_and_each_mute_action_has_its_help():
    for usage in ("secmon mute add MATCHER", "secmon mute list", "secmon mute rm ID", "secmon audit [--since TIME]"):
        assert usage in arguments.OVERVIEW
    for action in ("add", "list", "rm"):
        assert _help(["mute", action, "--help"]).startswith(f"usage: secmon mute {action}")
        assert _help(["mute", action, "-h", "whatever"]).startswith(f"usage: secmon mute {action}")
    assert _help(["help", "mute"]).startswith("usage: secmon mute {add,list,rm}")
    assert _help(["help", "audit"]).startswith("usage: secmon audit")
    assert "ssh_failed_password" in _help(["mute", "add", "--help"])  # the kinds a rule may name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["hub", "--bogus"], "unrecognized arguments: --bogus (see `secmon hub --help`)"),
        (["node", "who", "bogus"], "'bogus' is not a monitor: choose from who, wg, auth (see `secmon node --help`)"),
        (["subscribe", "--since", "x"], "expected a sequence number, got 'x'"),
        (["subscribe", "--since", "-1"], "expected a sequence number, got '-1'"),
        (["list", "extra"], "unrecognized arguments: extra (see `secmon list --help`)"),
        (["node-a", "uptime", "extra"], "unrecognized arguments: extra (see `secmon help`)"),
        (["node-a", "-x"], "unrecognized arguments: -x"),
        (["authlog", "a", "b"], "unrecognized arguments: b"),
        (["help", "bogus"], "no help on 'bogus'"),
        (["hub", "--allow"], "unrecognized arguments: --allow"),  # no abbreviations
        (["mute"], "the following arguments are required: ACTION (see `secmon mute --help`)"),
        (["mute", "bogus"], "argument ACTION: invalid choice: 'bogus'"),
        (["mute", "add"], "the following arguments are required: MATCHER (see `secmon mute add --help`)"),
        (["mute", "add", "root"], "'root' is not a matcher: an address or CIDR, user:U, node:N or kind:K"),
        (["mute", "add", "host:x"], "'host:x': no such matcher 'host:'; use CIDR, user:U, node:N or kind:K"),
        (["mute", "add", "user:a", "user:b"], "user: given twice ('a' and 'b')"),
        (["mute", "add", "10.0.0.0/8", "source:10.1.0.0/16"], "source: given twice"),
        (["mute", "add", "300.1.1.1/8"], "'300.1.1.1/8' is not an IP address or CIDR network"),
        (["mute", "add", "10.0.0.0/33"], "'10.0.0.0/33' is not an IP address or CIDR network"),
        (["mute", "add", "2001:db8::zz"], "'2001:db8::zz' is not an IP address or CIDR network"),
        (["mute", "add", "source:example.org"], "source: 'example.org' is not an IP address or CIDR network"),
        (["mute", "add", "kind:ssh_bogus"], "kind: 'ssh_bogus' is not an event kind"),
        (["mute", "add", "user:"], "user: empty (write user:VALUE)"),
        (["mute", "add", "user:a", "--for", "soon"], "'soon' is not a duration like 90s, 30m, 2h, 7d"),
        (["mute", "add", "user:a", "--for", "0"], "'0': a duration must be more than 0 and at most 3650d"),
        (["mute", "add", "user:a", "--for", "3651d"], "'3651d': a duration must be more than 0"),
        (["mute", "add", "user:a", "--for", "-5m"], "argument --for: expected one argument"),
        (["mute", "add", "user:a", "--for", "1e9"], "'1e9' is not a duration"),
        (["mute", "add", "user:a", "--reason"], "argument --reason: expected one argument"),
        (["mute", "rm"], "the following arguments are required: ID"),
        (["mute", "rm", "x"], "expected a rule id (a whole number, as `secmon mute list` shows), got 'x'"),
        (["mute", "rm", "-1"], "expected a rule id (a whole number, as `secmon mute list` shows), got '-1'"),
        (["mute", "rm", str(2**63)], "expected a rule id"),  # past what the hub's ids can reach
        (["mute", "rm", "1", "2"], "unrecognized arguments: 2 (see `secmon mute rm --help`)"),
        (["mute", "list", "x"], "unrecognized arguments: x (see `secmon mute list --help`)"),
        (["audit", "extra"], "unrecognized arguments: extra (see `secmon audit --help`)"),
    ],
)
def test_usage_errors_are_one_line(argv, message):
    with pytest.raises(ConfigError) as error:
        parse(argv)
    assert message in str(error.value)
    assert "\n" not in str(error.value) and error.value.exit_code == 2


# --- the node table ---------------------------------------------------------------------


def _node(serial: int, hostname: str, **attributes: object) -> m.NodeInfo:
    values = {"sessions": [], "wg_peers": m.NOT_MONITORED, "auth": m.AUTH_OK, **attributes}
    return m.NodeInfo(serial, hostname, "10.0.0.1", True, 0.0, **values)


def test_collector_failures_name_the_collector_and_its_reason():
    node = _node(1, "a", sessions="cannot read /var/run/utmp: Permission denied", auth="waiting for /x to appear")
    assert collector_failures(node) == [
        "sessions: cannot read /var/run/utmp: Permission denied",
        "auth: waiting for /x to appear",
    ]
    assert collector_failures(_node(2, "b", sessions=m.INITIALIZING, auth=m.INITIALIZING)) == []
    assert collector_failures(_node(3, "c", auth=m.NOT_MONITORED)) == []


def test_a_long_reason_is_cut_and_control_characters_are_shown():
    (text,) = collector_failures(_node(1, "a", wg_peers="x" * 200))
    assert text == "wg peers: " + "x" * (MAX_REASON - 1) + "…"
    (text,) = collector_failures(_node(1, "a", auth="bad\x1b[2J"))
    assert text == "auth: bad\\x1b[2J"


def test_the_table_has_a_failing_column_only_when_a_collector_fails():
    healthy = node_table([_node(1, "a")], Painter(False))
    assert "FAILING" not in healthy.splitlines()[0]
    table = node_table([_node(1, "a"), _node(2, "b", auth="waiting for /var/log/auth.log to appear")], Painter(False))
    header, first, second = table.splitlines()
    assert header.split()[-1] == "FAILING"
    assert "auth:" not in first
    assert second.endswith("auth: waiting for /var/log/auth.log to appear")


# --- secmon events ------------------------------------------------------------------------


def test_events_options_become_the_hubs_filter():
    ns = parse(["events", "--since", "42", "--until", "2026-11-29T10:00:00Z", "--node", "alpha", "--failures"])
    query, limit = arguments.event_query(ns, now=1_800_000_000.0)
    assert query == m.EventFilter(since_seq=42, until_time=1_795_946_400.0, nodes=["alpha"], failures=True)
    assert limit == 100
    query, _ = arguments.event_query(parse(["events", "--since", "15m", "--source", "2001:db8::/32"]), 1_000.0)
    assert (query.since_time, query.source) == (100.0, "2001:db8::/32")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["events", "--since", "tomorrowish"], "--since: 'tomorrowish' is neither an ISO 8601 time"),
        (["events", "--until=-5m"], "--until: '-5m' is neither"),
        (["events", "--source", "300.1.1.1/8"], "--source: '300.1.1.1/8' is not an IP address or CIDR network"),
        (["events", "--limit", "10001"], "--limit: must be a whole number from 1 to 10000, got '10001'"),
        (["events", "--limit", "x"], "--limit: must be a whole number"),
    ],
)
def test_bad_events_options_are_one_line_usage_errors(argv, message):
    with pytest.raises(ConfigError) as error:
        arguments.event_query(parse(argv), now=1_000.0)
    assert message in str(error.value) and "(see `secmon events --help`)" in str(error.value)
    assert "\n" not in str(error.value) and error.value.exit_code == 2


# --- secmon mute, secmon audit ------------------------------------------------------------


def test_a_hostile_matcher_is_quoted_back_escaped_and_cut():
    with pytest.raises(ConfigError) as error:
        parse(["mute", "add", "kind:\x1b]0;pwned\x07" + "x" * 500])
    text = str(error.value)
    assert "\x1b" not in text and "\x07" not in text and "\\x1b]0;pwned\\x07" in text
    assert "\n" not in text and len(text) < 200


def test_audit_options_become_the_hubs_query():
    assert arguments.audit_query(parse(["audit"]), now=1_000.0) == (None, 100)
    assert arguments.audit_query(parse(["audit", "--since", "15m", "--limit", "7"]), now=1_000.0) == (100.0, 7)
    since, _ = arguments.audit_query(parse(["audit", "--since", "2026-11-29T10:00:00Z"]), now=0.0)
    assert since == 1_795_946_400.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["audit", "--since", "yesterday"], "--since: 'yesterday' is neither an ISO 8601 time"),
        (["audit", "--since", "42"], "--since: '42' is neither"),  # a time, not a sequence
        (["audit", "--limit", "0"], "--limit: must be a whole number from 1 to 10000, got '0'"),
    ],
)
def test_bad_audit_options_are_one_line_usage_errors(argv, message):
    with pytest.raises(ConfigError) as error:
        arguments.audit_query(parse(argv), now=1_000.0)
    assert message in str(error.value) and "(see `secmon audit --help`)" in str(error.value)
    assert "\n" not in str(error.value) and error.value.exit_code == 2
