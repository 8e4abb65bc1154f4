"""Which journal entries are believed: trusted fields against the claimed program (pure)."""

from __future__ import annotations

import json
import pwd

import pytest

from secmon.collectors.authlog import parse_line
from secmon.protocol.kinds import FAILURE_KINDS, FORGED_AUTH_LINE

ACCEPTED = "Accepted password for root from 203.0.113.9 port 1 ssh2"


def entry(message: str, identifier: str = "sshd", **trusted: str) -> str:
    record = {"MESSAGE": message, "SYSLOG_IDENTIFIER": identifier, "__REALTIME_TIMESTAMP": "1795979785673859"}
    record.update(trusted)
    return json.dumps(record)


REAL_SSHD = {"_UID": "0", "_COMM": "sshd", "_EXE": "/usr/sbin/sshd", "_PID": "77"}


@pytest.mark.parametrize(
    ("identifier", "trusted"),
    [
        ("sshd", REAL_SSHD),
        ("sshd-session", {"_UID": "0", "_COMM": "sshd-session", "_EXE": "/usr/lib/openssh/sshd-session"}),
    ],
)
def test_sshd_as_root_is_believed(identifier, trusted):
    event = parse_line(entry(ACCEPTED, identifier, **trusted))
    assert event["kind"] == "ssh_accepted" and event["user"] == "root" and event["host"] == "203.0.113.9"


@pytest.mark.parametrize(
    ("trusted", "user", "command"),
    [
        ({"_UID": "1000", "_COMM": "logger", "_EXE": "/usr/bin/logger", "_PID": "4242"}, "uid=1000", "/usr/bin/logger"),
        ({"_UID": "0", "_COMM": "logger", "_EXE": "/usr/bin/logger"}, "uid=0", "/usr/bin/logger"),  # root, not sshd
        ({"_UID": "1000", "_COMM": "sshd", "_EXE": "/home/eve/sshd"}, "uid=1000", "/home/eve/sshd"),  # named sshd
        ({"_UID": "1000", "_COMM": "sshd", "_EXE": "/usr/sbin/sshd"}, "uid=1000", "/usr/sbin/sshd"),  # not root
        ({"_UID": "0", "_COMM": "sshd", "_EXE": "/tmp/x/python3"}, "uid=0", "/tmp/x/python3"),  # comm is settable
        ({"_UID": "0", "_COMM": "sshd"}, "uid=0", "sshd"),  # no _EXE: a comm alone is the sender's word
        ({"_UID": "0", "_COMM": "sshd", "_EXE": "/usr/local/bin/sshd"}, "uid=0", "/usr/local/bin/sshd"),
        ({"_UID": "0", "_COMM": "sshd", "_EXE": "/usr/sbin/../../tmp/sshd"}, "uid=0", "/usr/sbin/../../tmp/sshd"),
        ({}, "uid unknown", "unknown program"),  # nothing journald vouches for
    ],
)
def test_a_claim_the_trusted_fields_deny_is_a_forged_line(trusted, user, command):
    event = parse_line(entry(ACCEPTED, **trusted))
    assert event["kind"] == FORGED_AUTH_LINE and FORGED_AUTH_LINE in FAILURE_KINDS
    assert (event["user"], event["command"], event["process"]) == (user, command, "sshd")
    assert "host" not in event  # the forger's claimed host is not believed


def test_a_forged_line_of_no_known_shape_is_still_an_alarm():
    event = parse_line(entry("hello from eve", "su", _UID="1000", _COMM="logger", _EXE="/usr/bin/logger", _PID="9"))
    assert event["kind"] == FORGED_AUTH_LINE and event["process"] == "su" and event["pid"] == 9


def test_the_user_session_process_of_sshd_may_log_its_own_disconnect():
    """After login OpenSSH's session process runs as the user and logs its own end."""
    nobody = pwd.getpwnam("nobody")
    session = {"_UID": str(nobody.pw_uid), "_COMM": "sshd-session", "_EXE": "/usr/lib/openssh/sshd-session"}
    line = "Disconnected from user nobody 192.0.2.4 port 5151"
    event = parse_line(entry(line, "sshd-session", **session))
    assert event["kind"] == "ssh_disconnected" and event["user"] == "nobody"
    # its other lines (no event) are no alarm either
    for quiet in ("Received disconnect from 192.0.2.4 port 5151:11: disconnected by user", "error: no more sessions"):
        assert parse_line(entry(quiet, "sshd-session", **session)) is None
    # but not another user's disconnect, nor a login, nor the same from an sshd of the user's own
    for message in ("Disconnected from user root 192.0.2.4 port 5151", ACCEPTED):
        assert parse_line(entry(message, "sshd-session", **session))["kind"] == FORGED_AUTH_LINE
    own = {**session, "_EXE": "/home/eve/sshd-session"}
    assert parse_line(entry(line, "sshd-session", **own))["kind"] == FORGED_AUTH_LINE
    assert parse_line(entry("Received disconnect from 192.0.2.4 port 1:11: bye", "sshd", **own))["kind"] == (
        FORGED_AUTH_LINE
    )


def test_an_identifier_sent_twice_is_a_claim_and_not_believed():
    """journald keeps a repeated field as a list; journalctl's match still finds the entry."""
    record = json.loads(entry(ACCEPTED, **REAL_SSHD))
    record["SYSLOG_IDENTIFIER"] = ["sshd", "sshd-session"]
    event = parse_line(json.dumps({**record, "_UID": "1000", "_COMM": "sshd", "_EXE": "/usr/bin/python3"}))
    assert event["kind"] == FORGED_AUTH_LINE and event["command"] == "/usr/bin/python3"
    assert parse_line(json.dumps(record))["kind"] == FORGED_AUTH_LINE  # even from the real sshd: sshd sends it once


def test_a_comm_alone_claims_nothing():
    record = json.loads(entry(ACCEPTED, **REAL_SSHD))
    del record["SYSLOG_IDENTIFIER"]
    assert parse_line(json.dumps(record)) is None


def test_the_pid_is_journald_s_not_the_sender_s():
    event = parse_line(entry(ACCEPTED, **{**REAL_SSHD, "SYSLOG_PID": "1"}))
    assert event["pid"] == 77


@pytest.mark.parametrize(
    ("identifier", "exe", "message", "kind"),
    [
        ("su", "/usr/bin/su", "pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1)", "su_opened"),
        ("sudo", "/usr/bin/sudo", "alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/id", "sudo_command"),
    ],
)
def test_su_and_sudo_are_believed_from_their_own_executables_only(identifier, exe, message, kind):
    assert parse_line(entry(message, identifier, _UID="0", _EXE=exe, _COMM=identifier))["kind"] == kind
    forged = parse_line(entry(message, identifier, _UID="0", _EXE="/usr/bin/logger", _COMM="logger"))
    assert forged["kind"] == FORGED_AUTH_LINE


def test_other_programs_are_not_judged():
    assert parse_line(entry("anything", "cron", _UID="0", _EXE="/usr/sbin/cron")) is None


def test_syslog_text_has_no_trusted_fields_and_is_taken_as_written():
    event = parse_line(f"2026-11-29T02:09:01+00:00 vm sshd[7]: {ACCEPTED}")
    assert event["kind"] == "ssh_accepted"
