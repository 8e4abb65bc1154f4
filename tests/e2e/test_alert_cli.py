"""`secmon mute`, `secmon audit` and the notices `secmon subscribe` prints, against a real hub and node.

Every command is the real `secmon` process; the identity the hub records is the
Unix user of the test itself, read from the socket's peer credentials.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
from datetime import UTC, datetime

import pytest
from conftest import Daemon, secmon_argv, wait_until

ME = f"{pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"  # how every surface names the requester
LOCAL_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"


def ok(result) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result, code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.rstrip("\n")


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def write_auth(path, *lines: str, host: str = "alpha") -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    with path.open("a") as f:
        f.write("".join(f"{now} {host} {line}\n" for line in lines))


def subscriber(cluster, *args: str) -> Daemon:
    """`secmon subscribe --since 0` (no update missed however late it starts), stopped with the cluster."""
    daemon = Daemon(secmon_argv("subscribe", "--since", "0", *args), cluster.env, "subscribe")
    cluster.daemons.append(daemon)
    return daemon


# --- mute rules ------------------------------------------------------------------------------


def test_mute_add_list_rm_round_trip(cluster, hub):
    added = ok(cluster.cli("mute", "add", "203.0.113.0/24", "kind:ssh_failed_password", "--for", "2h",
                           "--reason", "pen test"))  # fmt: skip
    assert re.fullmatch(
        rf'added mute rule #1 203\.0\.113\.0/24 kind:ssh_failed_password, expires {LOCAL_TIME}, reason "pen test"\n',
        added,
    ), added
    second = json.loads(ok(cluster.cli("mute", "add", "user:deploy", "node:alpha", "--json")))
    assert second == {
        "id": 2, "source": None, "user": "deploy", "node": "alpha", "kind": None,
        "created": second["created"], "expires": None, "reason": "", "by": ME,
    }  # fmt: skip

    table = ok(cluster.cli("mute", "list")).splitlines()
    assert table[0].split() == ["ID", "MATCHES", "EXPIRES", "REASON", "BY"]
    assert re.fullmatch(
        rf"1 +203\.0\.113\.0/24 kind:ssh_failed_password +{LOCAL_TIME} +pen test +{re.escape(ME)}", table[1]
    ), table
    assert re.fullmatch(rf"2 +user:deploy node:alpha +never +{re.escape(ME)}", table[2]), table
    assert len(table) == 3

    rules = json.loads(ok(cluster.cli("mute", "list", "--json")))
    assert [rule["id"] for rule in rules] == [1, 2] and rules[1] == second
    first = rules[0]
    assert (first["source"], first["kind"], first["reason"], first["by"]) == (
        "203.0.113.0/24", "ssh_failed_password", "pen test", ME,
    )  # fmt: skip
    assert abs(stamp(first["expires"]) - stamp(first["created"]) - 7200) < 1

    removed = ok(cluster.cli("mute", "rm", "1"))
    assert removed.startswith("removed mute rule #1 203.0.113.0/24 kind:ssh_failed_password, expires "), removed
    assert [rule["id"] for rule in json.loads(ok(cluster.cli("--json", "mute", "list")))] == [2]
    assert json.loads(ok(cluster.cli("mute", "rm", "2", "--json")))["id"] == 2
    assert ok(cluster.cli("mute", "list")) == "no mute rules\n"
    assert json.loads(ok(cluster.cli("mute", "list", "--json"))) == []

    third = json.loads(ok(cluster.cli("mute", "add", "user:x", "--json")))
    assert third["id"] == 3  # ids are never reused


def test_removing_a_rule_that_is_not_there_is_one_line_exit_1(cluster, hub):
    for rule_id in ("1", "999999"):
        error = one_line_error(cluster.cli("mute", "rm", rule_id), 1)
        assert error.startswith("secmon: ") and rule_id in error, error


def test_a_rule_the_hub_refuses_is_one_line_exit_1(cluster, hub):
    error = one_line_error(cluster.cli("mute", "add", "user:x", "--reason", "r" * 501), 1)
    assert error.startswith("secmon: ") and "reason" in error, error
    assert json.loads(ok(cluster.cli("mute", "list", "--json"))) == []


def test_a_reason_with_terminal_escapes_is_refused_by_the_hub(cluster, hub):
    reason = "scanner\x1b[2J\x1b]0;owned\x07 again"
    error = one_line_error(cluster.cli("mute", "add", "user:x", "--reason", reason), 1)
    assert error == "secmon: reason: must not hold control characters (newline, tab, escapes)"
    assert json.loads(ok(cluster.cli("mute", "list", "--json"))) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["mute"], "the following arguments are required: ACTION"),
        (["mute", "add", "host:a"], "no such matcher 'host:'"),
        (["mute", "add", "user:a", "user:b"], "user: given twice"),
        (["mute", "add", "203.0.113.0/33"], "'203.0.113.0/33' is not an IP address or CIDR network"),
        (["mute", "add", "kind:ssh_nonsense"], "kind: 'ssh_nonsense' is not an event kind"),
        (["mute", "add", "user:a", "--for", "a while"], "'a while' is not a duration"),
        (["mute", "rm", "one"], "expected a rule id"),
        (["audit", "--since", "the dawn of time"], "--since: 'the dawn of time' is neither an ISO 8601 time"),
        (["audit", "--limit", "0"], "--limit: must be a whole number from 1 to 10000"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cluster, argv, message):
    assert message in one_line_error(cluster.cli(*argv), 2)  # no hub is needed to say so


def test_without_a_hub_mute_and_audit_say_so_in_one_line(cluster):
    for argv in (["mute", "list"], ["mute", "add", "user:a"], ["mute", "rm", "1"], ["audit"]):
        error = one_line_error(cluster.cli(*argv), 1)
        assert error.startswith(f"secmon: no hub is running on {cluster.env['SECMON_SOCKET']}"), error


@pytest.mark.parametrize("argv", [["mute", "--help"], ["mute", "add", "--help"], ["mute", "list", "-h"],
                                  ["mute", "rm", "--help"], ["audit", "--help"], ["help", "mute"]])  # fmt: skip
def test_help_after_mute_audit_and_each_action(cluster, argv):
    result = cluster.cli(*argv)
    assert result.returncode == 0 and result.stderr == ""
    word = " ".join(a for a in argv if not a.startswith("-") and a != "help")
    assert result.stdout.startswith(f"usage: secmon {word}"), result.stdout


def test_the_overview_lists_mute_and_audit(cluster):
    overview = ok(cluster.cli("help"))
    for usage in ("secmon mute add MATCHER", "secmon mute list", "secmon mute rm ID", "secmon audit [--since TIME]"):
        assert usage in overview


# --- the command audit -------------------------------------------------------------------------


def test_audit_lists_the_commands_the_cli_ran_with_who_and_how_they_ended(cluster, hub):
    allow = cluster.allowlist("hello=echo hello\nfail=sh -c 'exit 3'\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    assert ok(cluster.cli("alpha", "hello")) == "hello\n"
    assert cluster.cli("alpha", "fail").returncode == 3
    assert cluster.cli("nowhere", "hello").returncode == 1  # no such node: refused, recorded all the same

    def records() -> list[dict] | None:
        found = [json.loads(line) for line in ok(cluster.cli("audit", "--json")).splitlines()]
        return found if len(found) == 3 and all(r["finished"] for r in found) else None

    hello, fail, refused = wait_until(records, what="three finished records in the audit")
    me = {"uid": os.getuid(), "user": pwd.getpwuid(os.getuid()).pw_name, "on_behalf": None}
    assert [r["requester"] for r in (hello, fail, refused)] == [me, me, me]
    assert [(r["label"], r["target"]) for r in (hello, fail, refused)] == [
        ("hello", "alpha"), ("fail", "alpha"), ("hello", "nowhere"),
    ]  # fmt: skip
    assert hello["id"] < fail["id"] < refused["id"]
    assert [(o["hostname"], o["status"], o["exit_code"]) for o in hello["outcomes"]] == [("alpha", "success", 0)]
    assert [(o["hostname"], o["status"], o["exit_code"]) for o in fail["outcomes"]] == [("alpha", "failure", 3)]
    assert refused["outcomes"] == []

    table = ok(cluster.cli("audit")).splitlines()
    assert table[0].split() == ["ID", "TIME", "WHO", "LABEL", "TARGET", "OUTCOME"]
    who = re.escape(ME)
    assert re.fullmatch(rf"{hello['id']} +{LOCAL_TIME} +{who} +hello +alpha +alpha: success \(exit 0\)", table[1])
    assert re.fullmatch(rf"{fail['id']} +{LOCAL_TIME} +{who} +fail +alpha +alpha: failure \(exit 3\)", table[2])
    assert re.fullmatch(rf"{refused['id']} +{LOCAL_TIME} +{who} +hello +nowhere +ran nowhere", table[3])

    assert [json.loads(line)["label"] for line in ok(cluster.cli("audit", "--json", "--limit", "1")).splitlines()] == [
        "hello"
    ]  # the latest one
    assert ok(cluster.cli("audit", "--since", "2099-01-01T00:00:00Z")) == "no commands recorded\n"


# --- subscribe: notices and event context ------------------------------------------------------


def test_subscribe_prints_notices_and_marks_muted_events(cluster, hub, workdir):
    allow = cluster.allowlist("hello=echo hello\n")
    (workdir / "auth.log").write_text("")
    cluster.start_node("auth", hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    cluster.wait_auth_ok("alpha")
    watch = subscriber(cluster)
    watch_json = subscriber(cluster, "--json")

    ok(cluster.cli("mute", "add", "user:mallory", "--reason", "known scanner"))
    watch.wait_for(rf'^\[\d+\] {LOCAL_TIME} Mute rule added: #1 user:mallory, expires never, '
                   rf'reason "known scanner", by {re.escape(ME)}$')  # fmt: skip

    write_auth(workdir / "auth.log", "sshd[70]: Failed password for mallory from 203.0.113.9 port 5000 ssh2")
    line = watch.wait_for(r"ssh_failed_password mallory from 203\.0\.113\.9:5000.*$")[0]
    assert line.endswith(" [muted #1]"), line

    ok(cluster.cli("alpha", "hello"))
    watch.wait_for(rf"Command run: hello on alpha by {re.escape(ME)}: alpha: success \(exit 0\)$")

    ok(cluster.cli("mute", "rm", "1"))
    watch.wait_for(rf"Mute rule removed: #1 user:mallory, expires never, reason \"known scanner\", by {re.escape(ME)}$")

    # the same in JSON, and `secmon events` shows the event as it was broadcast
    watch_json.wait_for(r'"kind": "mute_removed"')
    updates = [json.loads(text) for text in watch_json.lines]
    assert [u["kind"] for u in updates if u["type"] == "notice"] == ["mute_added", "command_run", "mute_removed"]
    (event,) = [u for u in updates if u["type"] == "auth"]
    assert event["context"]["muted"] == [1]
    history = ok(cluster.cli("events")).splitlines()
    assert len(history) == 1
    assert history[0].endswith(": ssh_failed_password mallory from 203.0.113.9:5000 (password) [muted #1]")


def test_subscribe_prints_collector_and_node_notices(cluster, workdir):
    cluster.start_hub(NODE_DOWN_AFTER="1")
    auth_log = workdir / "auth.log"
    assert cluster.env["AUTH_LOG"] == str(auth_log) and not auth_log.exists()
    watch = subscriber(cluster)
    node = cluster.start_node("auth", hostname="alpha")
    alpha = r"alpha \(node 1, [0-9.]+\)"
    watch.wait_for(rf"Collector failing: {alpha}: auth: waiting for {re.escape(str(auth_log))} to appear$")
    auth_log.touch()
    watch.wait_for(rf"Collector working again: {alpha}: auth$")

    node.signal(signal.SIGKILL)
    watch.wait_for(rf"^\[\d+\] {LOCAL_TIME} Node down: {alpha}, last seen {LOCAL_TIME}$", timeout=1 + 5)
    cluster.start_node("auth", hostname="alpha")
    watch.wait_for(rf"Node back: {alpha} after \d+s away, 0 events written while away$")
    assert watch.count("Node down") == 1 and watch.count("Collector failing") == 1


def test_subscribe_and_events_print_geo_first_seen_and_fleet_context(cluster, workdir):
    from geoip import build_asn_db, build_city_db  # the test databases' builder

    city = build_city_db(workdir / "city.mmdb", {"192.0.2.0/24": ("DE", "Germany", "Berlin")})
    asn = build_asn_db(workdir / "asn.mmdb", {"192.0.2.0/24": (64496, "Example\x1b[2J Org")})
    cluster.start_hub(GEOIP_CITY_DB=str(city), GEOIP_ASN_DB=str(asn), SECMON_FLEET_FAILURES="3",
                      SECMON_FLEET_NODES="1")  # fmt: skip
    (workdir / "auth.log").write_text("")
    cluster.start_node("auth", hostname="alpha")
    cluster.wait_auth_ok("alpha")
    watch = subscriber(cluster)
    where = r"DE Berlin · AS64496 Example\\x1b\[2J Org"  # the organisation's escape as text

    write_auth(workdir / "auth.log", *(f"sshd[{70 + i}]: Failed password for root from 192.0.2.9 port 2201 ssh2"
                                       for i in range(3)))  # fmt: skip
    watch.wait_for(rf"Failures from one source across the fleet: 192\.0\.2\.9 {where}: 3 failures on 1 node "
                   rf"\(alpha\), 1 user \(root\), from {LOCAL_TIME} to {LOCAL_TIME}$")  # fmt: skip
    watch.wait_for(rf"ssh_failed_password root from 192\.0\.2\.9:2201 \(password\) {where} \[summarized\]$")
    write_auth(workdir / "auth.log", "sshd[80]: Accepted publickey for deploy from 192.0.2.9 port 2202 ssh2")
    accepted = rf"ssh_accepted deploy from 192\.0\.2\.9:2202 \(publickey\) {where} \[NEW host, asn, country\] "
    accepted += r"after 3 failures$"
    watch.wait_for(accepted)
    assert "\x1b" not in "".join(watch.lines)

    history = ok(cluster.cli("events")).splitlines()
    assert len(history) == 4
    assert re.search(rf"ssh_failed_password root from 192\.0\.2\.9:2201 \(password\) {where}$", history[0])
    assert re.search(r"\[summarized\]$", history[2]) and re.search(accepted, history[3])
