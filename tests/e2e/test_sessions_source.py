"""Where a real node reads sessions from, and what it says when it cannot see them.

A real hub and node; logind is a stand-in `loginctl` on the node's PATH that
prints what systemd 257 prints, serving sessions the test keeps as files in a
directory the node watches like logind's own. `secmon NODE --json` is what an
operator sees.
"""

from __future__ import annotations

import json
import os

from conftest import wait_until
from fake_loginctl import install, remove_session, session_properties, write_session

LOGIN = 1764443124.0  # Sat 2025-11-29 19:05:24 UTC
LOGIN_ISO = "2025-11-29T19:05:24.000Z"
RECHECK = 10.0  # the node's look at a watched source when nothing woke it


def node_sessions(cluster, hostname: str = "node-a"):
    result = cluster.cli(hostname, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["sessions"]


def logind_env(cluster, version: int = 257, down: bool = False) -> dict[str, str]:
    directory = cluster.workdir / "logind-sessions"
    directory.mkdir(exist_ok=True)
    bin_dir = cluster.workdir / f"bin-{version}{'-down' if down else ''}"
    install(bin_dir, directory, version, down)
    return {
        "SECMON_SESSIONS_SOURCE": "logind",
        "SECMON_LOGIND_SESSIONS": str(directory),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }


def test_a_node_reports_logind_sessions_and_follows_logins(cluster, hub):
    env = logind_env(cluster)
    directory = cluster.workdir / "logind-sessions"
    write_session(directory, session_properties("3", "alice", remote_host="192.0.2.7", login=LOGIN))
    write_session(directory, session_properties("4", "alice", uid=1000, tty="", session_class="manager"))
    write_session(directory, session_properties("12", "gdm", tty="", seat="seat0", session_class="greeter"))
    write_session(directory, session_properties("14", "bob", tty="", remote_host="2001:db8::4", state="online"))
    node = cluster.start_node("who", **env)
    node.wait_for(r"reading sessions from logind \(loginctl\)")
    assert not node.count(r"reading sessions from utmp")  # base_env names a utmp file; the setting wins

    expected = [
        {"user": "alice", "tty": "pts/0", "host": "192.0.2.7", "login_time": LOGIN_ISO},
        {"user": "bob", "tty": "-", "host": "2001:db8::4", "login_time": LOGIN_ISO},
    ]
    wait_until(lambda: node_sessions(cluster) == expected, what="logind's user sessions on the hub")

    # A login and a logout reach the hub sooner than the node's periodic look: the watch woke it.
    write_session(directory, session_properties("15", "carol", remote_host="203.0.113.9", login=LOGIN + 60))
    remove_session(directory, "3")
    wait_until(
        lambda: [s["user"] for s in node_sessions(cluster)] == ["bob", "carol"],
        timeout=RECHECK - 2,
        what="carol's login and alice's logout",
    )


def test_a_node_that_cannot_ask_logind_says_so(cluster, hub):
    node = cluster.start_node("who", **logind_env(cluster, down=True))
    node.wait_for(r"reading sessions from logind \(loginctl\)")
    expected = {
        "error": "cannot see sessions from logind: loginctl list-sessions exited with 1: "
        "Failed to connect to system scope bus via local transport: No such file or directory"
    }
    wait_until(lambda: node_sessions(cluster) == expected, what="the logind error on the hub")


def test_a_node_without_utmp_or_logind_reports_an_error_not_an_empty_list(cluster, hub):
    utmp = cluster.workdir / "no-utmp"
    node = cluster.start_node("who", SECMON_SESSIONS_SOURCE="auto", SECMON_UTMP=str(utmp))
    node.wait_for(rf"reading sessions from utmp {utmp}")
    expected = {"error": f"cannot see sessions from utmp: cannot read {utmp}: No such file or directory"}
    wait_until(lambda: node_sessions(cluster) == expected, what="the missing utmp error on the hub")


def test_a_bad_sessions_source_is_a_one_line_error(cluster, hub):
    result = cluster.cli("node", "who", SECMON_SESSIONS_SOURCE="who")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "secmon: SECMON_SESSIONS_SOURCE must be one of auto, logind, utmp; got 'who'"
    ]
