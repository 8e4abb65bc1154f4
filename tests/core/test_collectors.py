"""Pure collectors: auth-log lines, utmp records and `wg show all dump`, from real shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from secmon.collectors import authlog as a
from secmon.collectors.sessions import make_record, parse_utmp
from secmon.collectors.wireguard import parse_dump
from secmon.protocol import kinds as k

DATA = Path(__file__).parent / "data"

# (program, message, expected fields) — messages as OpenSSH, util-linux su, sudo and PAM write them.
CASES = [
    ("sshd", "Accepted publickey for root from 127.0.0.1 port 57344 ssh2: ED25519 SHA256:Xw1kZ0aQ",
     {"kind": k.SSH_ACCEPTED, "user": "root", "host": "127.0.0.1", "port": 57344, "method": "publickey"}),
    ("sshd", "Accepted password for alice from 2001:db8::1 port 40022 ssh2",
     {"kind": k.SSH_ACCEPTED, "user": "alice", "host": "2001:db8::1", "port": 40022, "method": "password"}),
    ("sshd-session", "Accepted keyboard-interactive/pam for bob from 198.51.100.9 port 2200 ssh2",
     {"kind": k.SSH_ACCEPTED, "user": "bob", "method": "keyboard-interactive/pam", "port": 2200}),
    ("sshd", "Failed password for alice from 203.0.113.4 port 51111 ssh2",
     {"kind": k.SSH_FAILED_PASSWORD, "user": "alice", "host": "203.0.113.4", "port": 51111, "method": "password"}),
    ("sshd", "Failed password for invalid user admin from 203.0.113.4 port 51112 ssh2",
     {"kind": k.SSH_FAILED_PASSWORD, "user": "admin", "port": 51112}),
    ("sshd", "Failed publickey for root from 203.0.113.4 port 51113 ssh2: RSA SHA256:abc",
     {"kind": k.SSH_FAILED_PUBLICKEY, "user": "root", "method": "publickey"}),
    ("sshd", "Failed keyboard-interactive/pam for invalid user oracle from 203.0.113.4 port 51114 ssh2",
     {"kind": k.SSH_FAILED_KBDINT, "user": "oracle"}),
    ("sshd", "Failed none for invalid user test from 203.0.113.4 port 51115 ssh2",
     {"kind": k.SSH_INVALID_USER, "user": "test"}),
    ("sshd", "Invalid user postgres from 203.0.113.4 port 51116",
     {"kind": k.SSH_INVALID_USER, "user": "postgres", "host": "203.0.113.4", "port": 51116}),
    ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.4  user=alice",
     {"kind": k.SSH_PAM_FAILURE, "user": "alice", "host": "203.0.113.4"}),
    ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.4",
     {"kind": k.SSH_PAM_FAILURE, "user": None, "host": "203.0.113.4"}),
    ("sshd", "User mallory from 203.0.113.4 not allowed because not listed in AllowUsers",
     {"kind": k.SSH_USER_REFUSED, "user": "mallory", "host": "203.0.113.4"}),
    ("sshd", "User bob from 10.0.0.8 not allowed because listed in DenyUsers",
     {"kind": k.SSH_USER_REFUSED, "user": "bob", "host": "10.0.0.8"}),
    ("sshd", "ROOT LOGIN REFUSED FROM 203.0.113.4 port 51117",
     {"kind": k.SSH_ROOT_REFUSED, "host": "203.0.113.4", "port": 51117}),
    ("sshd", "error: maximum authentication attempts exceeded for root from 203.0.113.4 port 51118 ssh2 [preauth]",
     {"kind": k.SSH_TOO_MANY_FAILURES, "user": "root", "port": 51118}),
    ("sshd", "Disconnecting authenticating user root 203.0.113.4 port 51119: Too many authentication failures [preauth]",
     {"kind": k.SSH_TOO_MANY_FAILURES, "user": "root", "host": "203.0.113.4", "port": 51119}),
    ("sshd", "Connection closed by authenticating user root 203.0.113.4 port 51120 [preauth]",
     {"kind": k.SSH_CLOSED_PREAUTH, "user": "root", "host": "203.0.113.4", "port": 51120}),
    ("sshd", "Connection closed by invalid user guest 203.0.113.4 port 51121 [preauth]",
     {"kind": k.SSH_CLOSED_PREAUTH, "user": "guest"}),
    ("sshd", "Disconnected from authenticating user root 203.0.113.4 port 51122 [preauth]",
     {"kind": k.SSH_CLOSED_PREAUTH, "user": "root", "port": 51122}),
    ("sshd", "Disconnected from user alice 192.0.2.10 port 40100",
     {"kind": k.SSH_DISCONNECTED, "user": "alice", "host": "192.0.2.10", "port": 40100}),
    ("su", "pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)",
     {"kind": k.SU_OPENED, "user": "alice", "target_user": "root"}),
    ("su", "pam_unix(su:session): session opened for user nobody(uid=65534) by (uid=0)",
     {"kind": k.SU_OPENED, "user": None, "target_user": "nobody"}),
    ("su", "pam_unix(su-l:session): session opened for user postgres by root(uid=0)",
     {"kind": k.SU_OPENED, "user": "root", "target_user": "postgres"}),
    ("su", "pam_unix(su:session): session closed for user root",
     {"kind": k.SU_CLOSED, "target_user": "root"}),
    ("su", "pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/1 ruser=alice rhost=  user=root",
     {"kind": k.SU_FAILED, "user": "alice", "target_user": "root"}),
    ("su", "FAILED SU (to root) alice on pts/1",
     {"kind": k.SU_FAILED, "user": "alice", "target_user": "root", "tty": "pts/1"}),
    ("sudo", "   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id -u",
     {"kind": k.SUDO_COMMAND, "user": "alice", "target_user": "root", "command": "/usr/bin/id -u", "tty": "pts/0"}),
    ("sudo", "    root : PWD=/work ; USER=nobody ; COMMAND=/usr/bin/true",
     {"kind": k.SUDO_COMMAND, "user": "root", "target_user": "nobody", "command": "/usr/bin/true", "tty": None}),
    ("sudo", "   alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh",
     {"kind": k.SUDO_FAILURE, "user": "alice", "command": "/bin/sh"}),
    ("sudo", "     eve : user NOT in sudoers ; TTY=pts/2 ; PWD=/home/eve ; USER=root ; COMMAND=/usr/bin/cat /etc/shadow",
     {"kind": k.SUDO_FAILURE, "user": "eve", "target_user": "root", "command": "/usr/bin/cat /etc/shadow"}),
    ("sudo", "   alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/echo a ; USER=evil",
     {"kind": k.SUDO_COMMAND, "target_user": "root", "command": "/bin/echo a ; USER=evil"}),
    ("sudo", "pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice",
     {"kind": k.SUDO_FAILURE, "user": "alice"}),
    # Legacy and variant sshd forms; hosts as names, IPv6 and IPv4-mapped.
    ("sshd", "Failed password for invalid user admin from 203.0.113.4",
     {"kind": k.SSH_FAILED_PASSWORD, "user": "admin", "host": "203.0.113.4", "port": None}),
    ("sshd", "Invalid user admin from gw.example.net",
     {"kind": k.SSH_INVALID_USER, "user": "admin", "host": "gw.example.net", "port": None}),
    ("sshd", "Failed password for root from ::ffff:198.51.100.7 port 2222 ssh1",
     {"kind": k.SSH_FAILED_PASSWORD, "user": "root", "host": "198.51.100.7", "port": 2222}),
    ("sshd", "Failed hostbased for alice from 2001:db8::5 port 2200 ssh2: ruser bob",
     {"kind": k.SSH_FAILED_PASSWORD, "user": "alice", "host": "2001:db8::5", "method": "hostbased"}),
    ("sshd", "message repeated 3 times: [ Failed password for root from 203.0.113.4 port 51111 ssh2]",
     {"kind": k.SSH_FAILED_PASSWORD, "user": "root", "host": "203.0.113.4", "port": 51111}),
    # PAM, in sshd's words and in pam_unix's.
    ("sshd", "error: PAM: Authentication failure for alice from 203.0.113.4",
     {"kind": k.SSH_PAM_FAILURE, "user": "alice", "host": "203.0.113.4"}),
    ("sshd", "error: PAM: authentication error for illegal user zz from gw.example.net via 192.0.2.1",
     {"kind": k.SSH_PAM_FAILURE, "user": "zz", "host": "gw.example.net"}),
    ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.4 ",
     {"kind": k.SSH_PAM_FAILURE, "user": None, "host": "203.0.113.4"}),
    ("sshd", "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.4  user=root",
     {"kind": k.SSH_PAM_FAILURE, "user": "root", "host": "203.0.113.4"}),
    # Refusals by configuration.
    ("sshd", "User carol from 203.0.113.4 not allowed because none of user's groups are listed in AllowGroups",
     {"kind": k.SSH_USER_REFUSED, "user": "carol", "host": "203.0.113.4"}),
    ("sshd", "User dave from 203.0.113.4 not allowed because a group is listed in DenyGroups",
     {"kind": k.SSH_USER_REFUSED, "user": "dave", "host": "203.0.113.4"}),
    ("sshd", "refused connect from gw.example.net (203.0.113.4)",
     {"kind": k.SSH_HOST_REFUSED, "host": "203.0.113.4"}),
    # Pre-auth endings.
    ("sshd", "Received disconnect from 203.0.113.4 port 51124:11: Bye Bye [preauth]",
     {"kind": k.SSH_CLOSED_PREAUTH, "host": "203.0.113.4", "port": 51124}),
    ("sshd", "error: Received disconnect from 2001:db8::9: 3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
     {"kind": k.SSH_CLOSED_PREAUTH, "host": "2001:db8::9", "port": None}),
    ("sshd", "Disconnecting invalid user guest 203.0.113.4 port 51125: Change of username or service not allowed: (guest,ssh-connection) -> (root,ssh-connection) [preauth]",
     {"kind": k.SSH_CLOSED_PREAUTH, "user": "guest", "host": "203.0.113.4", "port": 51125}),
    ("sshd", "Disconnecting: Too many authentication failures for root [preauth]",
     {"kind": k.SSH_TOO_MANY_FAILURES, "user": "root", "host": None}),
    ("sshd", "Timeout before authentication for connection from 203.0.113.4 to 192.0.2.1, pid = 4343",
     {"kind": k.SSH_CLOSED_PREAUTH, "host": "203.0.113.4"}),
    ("sshd", "fatal: Timeout before authentication for 203.0.113.4 port 51126",
     {"kind": k.SSH_CLOSED_PREAUTH, "host": "203.0.113.4", "port": 51126}),
    # OpenSSH 9.8+: the session and pre-auth processes, the listener's penalties and throttling.
    ("sshd-auth", "Connection closed by invalid user guest 203.0.113.4 port 51127 [preauth]",
     {"kind": k.SSH_CLOSED_PREAUTH, "user": "guest", "port": 51127}),
    ("sshd", "drop connection #0 from [203.0.113.4]:51128 on [192.0.2.1]:22 penalty: failed authentication",
     {"kind": k.SSH_PENALTY, "host": "203.0.113.4", "port": 51128}),
    ("sshd", "drop connection #4 from [2001:db8::9]:51129 on [2001:db8::1]:22 PerSourcePenalties",
     {"kind": k.SSH_PENALTY, "host": "2001:db8::9", "port": 51129}),
    ("sshd", "drop connection #31 from [203.0.113.4]:51130 on [192.0.2.1]:22 past Maxstartups",
     {"kind": k.SSH_THROTTLED, "host": "203.0.113.4", "port": 51130}),
    ("sshd", "srclimit_penalise: ipv4: new 203.0.113.4/32 active penalty of 30.000 seconds for penalty: failed authentication",
     {"kind": k.SSH_PENALTY, "host": "203.0.113.4"}),
    ("sshd", "srclimit_penalise: 2001:db8::/64: activating ipv6 penalty of 35 seconds for penalty: caused crash",
     {"kind": k.SSH_PENALTY, "host": "2001:db8::/64"}),
    ("sshd", "error: beginning MaxStartups throttling",
     {"kind": k.SSH_THROTTLED, "host": None}),
    # su and runuser as util-linux writes them; sudo's optional fields; sudo-rs.
    ("su", "(to nobody) root on none",
     {"kind": k.SU_OPENED, "user": "root", "target_user": "nobody", "tty": None}),
    ("su", "(to root) alice on pts/0",
     {"kind": k.SU_OPENED, "user": "alice", "target_user": "root", "tty": "pts/0"}),
    ("runuser", "pam_unix(runuser-l:session): session opened for user www-data(uid=33) by (uid=0)",
     {"kind": k.SU_OPENED, "user": None, "target_user": "www-data"}),
    ("runuser", "pam_unix(runuser:session): session closed for user www-data",
     {"kind": k.SU_CLOSED, "target_user": "www-data"}),
    ("sudo", "   alice : HOST=web1 ; TTY=pts/1 ; CHROOT=/srv ; PWD=/ ; USER=root ; GROUP=adm ; TSID=00000A ; ENV=LANG=C TZ=UTC ; COMMAND=/usr/bin/env",
     {"kind": k.SUDO_COMMAND, "user": "alice", "target_user": "root", "command": "/usr/bin/env", "tty": "pts/1"}),
    ("sudo", "   alice : command not allowed ; TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/passwd root",
     {"kind": k.SUDO_FAILURE, "user": "alice", "command": "/usr/bin/passwd root"}),
    ("sudo", "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
     {"kind": k.SUDO_COMMAND, "user": "alice", "tty": "pts/0", "command": "/usr/bin/id"}),
    ("sudo", "deploy :  PWD=/srv ; USER=root ; COMMAND=/usr/bin/whoami",
     {"kind": k.SUDO_COMMAND, "user": "deploy", "tty": None, "target_user": "root", "command": "/usr/bin/whoami"}),
]  # fmt: skip

IGNORED = [
    ("sshd", "Server listening on 0.0.0.0 port 22."),
    ("sshd", "Received disconnect from 192.0.2.10 port 40100:11: disconnected by user"),
    ("sshd", "Connection closed by 203.0.113.4 port 51123 [preauth]"),
    ("sshd", "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)"),
    ("sudo", "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)"),
    ("cron", "Accepted password for alice from 192.0.2.1 port 1 ssh2"),
    # A connection that tried no login is no failure, when nothing before says otherwise.
    ("sshd", "Disconnected from 203.0.113.4 port 51131 [preauth]"),
    ("sshd", 'Connection from 203.0.113.4 port 51132 on 192.0.2.1 port 22 rdomain ""'),
    ("sshd", "Disconnected from user alice 192.0.2.10 port 40100 [preauth]"),
    ("sudo", "   alice : (command continued) --exclude=.git"),
    ("sudo", "pam_unix(sudo:session): session closed for user root"),
    ("sudo", "alice : a line with no command"),
    ("su", "pam_unix(su:auth): conversation failed"),
]


def syslog_line(program: str, message: str, stamp: str = "2026-11-29T02:09:01.037761+00:00") -> str:
    return f"{stamp} vm {program}[4242]: {message}"


def journal_line(program: str, message: str) -> str:
    """An entry as journald records it for ``program`` itself, trusted fields included."""
    entry = {
        "__REALTIME_TIMESTAMP": "1764382141037761",
        "_PID": "4242",
        "_UID": "0",
        "_COMM": program,
        "_EXE": f"/usr/sbin/{program}",
        "SYSLOG_IDENTIFIER": program,
        "MESSAGE": message,
        "_HOSTNAME": "vm",
    }
    return json.dumps(entry)


@pytest.mark.parametrize(
    ("program", "message", "expected"), CASES, ids=[c[2]["kind"] + f"-{i}" for i, c in enumerate(CASES)]
)
@pytest.mark.parametrize("form", ["syslog", "journal"])
def test_every_shape_in_both_forms(form, program, message, expected):
    line = syslog_line(program, message) if form == "syslog" else journal_line(program, message)
    event = a.parse_line(line)
    assert event is not None, line
    for key, value in expected.items():
        assert event.get(key) == value, (key, event)
    assert event["process"] == program
    assert event["pid"] == 4242 and isinstance(event["pid"], int)
    expected_time = 1795918141.037761 if form == "syslog" else 1764382141.037761
    assert event["time"] == pytest.approx(expected_time)


@pytest.mark.parametrize(("program", "message"), IGNORED)
def test_other_lines_are_ignored(program, message):
    assert a.parse_line(syslog_line(program, message)) is None
    assert a.parse_line(journal_line(program, message)) is None


def test_classic_syslog_timestamp_takes_this_year():
    now = 1795918141.0  # 2026-11-29
    event = a.parse_line("Nov 29 02:09:01 host sshd[1]: Invalid user x from 192.0.2.1 port 22", now=now)
    assert event["kind"] == k.SSH_INVALID_USER
    assert abs(event["time"] - now) < 2 * 86400
    december = a.parse_line("Dec 31 23:59:59 host sshd[1]: Invalid user x from 192.0.2.1 port 22", now=now)
    assert december["time"] < now  # last year's December, not next month


@pytest.mark.parametrize(
    "user",
    ["<b>x</b>", "&amp;", "a b", "x from 6.6.6.6 port 1", "@everyone", "\x1b[31mred", "ユーザー", "'; DROP TABLE --"],
)
def test_hostile_user_names_are_kept_verbatim(user):
    line = syslog_line("sshd", f"Invalid user {user} from 192.0.2.1 port 2222")
    event = a.parse_line(line)
    assert (event["user"], event["host"], event["port"]) == (user, "192.0.2.1", 2222)


def test_journal_message_as_byte_array_is_decoded():
    entry = json.loads(journal_line("sshd", ""))
    entry["MESSAGE"] = list(b"Invalid user \xff\xfe from 192.0.2.1 port 22")
    event = a.parse_line(json.dumps(entry))
    assert event["kind"] == k.SSH_INVALID_USER and event["user"] == "\ufffd\ufffd"


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "not a log line",
        "{",
        '{"MESSAGE": 5}',
        "[1, 2]",
        '{"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "Invalid user x from 1.2.3.4 port 99999999999999"}',
        "2026-13-45T99:99:99+00:00 vm sshd[1]: Invalid user x from 1.2.3.4 port 1",
        "\x00\x01\x02\xff binary",
        syslog_line("sshd", "Accepted password for " + "a" * 10_000 + " from 1.2.3.4 port 1 ssh2"),
    ],
)
def test_junk_never_raises(junk):
    event = a.parse_line(junk)
    assert event is None or event["kind"] in (k.SSH_INVALID_USER, k.FORGED_AUTH_LINE)


def test_secmon_authlog_prints_the_events_it_recognises(tmp_path):
    import subprocess
    import sys

    log = tmp_path / "auth.log"
    lines = [syslog_line(p, msg) for p, msg, _ in CASES[:3]] + ["garbage", journal_line("su", CASES[20][1])]
    log.write_text("\n".join(lines) + "\n")
    result = subprocess.run([sys.executable, "-m", "secmon", "authlog", str(log)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["kind"] for e in events] == [k.SSH_ACCEPTED] * 3 + [k.SU_OPENED]
    assert events[0]["time"] == "2026-11-29T02:09:01.037Z"
    assert events[3]["failure"] is False and events[3]["target_user"] == "root"
    piped = subprocess.run(
        [sys.executable, "-m", "secmon", "authlog", "-"], input=log.read_text(), capture_output=True, text=True
    )
    assert piped.stdout == result.stdout


def test_wg_dump_with_several_interfaces_and_odd_peers():
    peers = parse_dump((DATA / "wg-dump.txt").read_text())
    assert [(p.interface, p.endpoint, p.latest_handshake) for p in peers] == [
        ("wg0", "203.0.113.5:51820", 1764382000.0),
        ("wg0", None, None),
        ("wg1", "[2001:db8::7]:51821", 1764381900.0),
    ]
    assert peers[0].public_key == "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
    assert parse_dump("") == []
    assert parse_dump("garbage\nwg0\tonly\ttwo\n") == []


def test_utmp_records_become_sessions():
    data = b"".join(
        [
            make_record("reboot", "~", kind=2),
            make_record("alice", "pts/0", "192.0.2.10", 1764382141.25),
            make_record("root", "tty1", "", 1764382000),
            make_record("", "pts/9", kind=8),  # DEAD_PROCESS after logout
            b"\x07\x00partial record",
        ]
    )
    sessions = parse_utmp(data)
    assert [(s.user, s.tty, s.host) for s in sessions] == [("alice", "pts/0", "192.0.2.10"), ("root", "tty1", None)]
    assert sessions[0].login_time == pytest.approx(1764382141.25)


HEADERS = [
    "Nov 29 02:09:01 vm sshd[4242]: {}",
    "<38>Nov 29 02:09:01 vm sshd[4242]: {}",
    "Nov 29 02:09:01 vm sshd[4242]: [ID 800047 auth.info] {}",
    "2026-11-29T02:09:01.037761+00:00 vm sshd[4242]: {}",
    "<38>1 2026-11-28T21:09:01.03-05:00 vm sshd 4242 - - {}",
    '<38>1 2026-11-29T02:09:01Z vm sshd 4242 - [origin ip="192.0.2.1"][meta x="\\]\\""] {}',
    "Nov 29 02:09:01 vm /usr/sbin/sshd[4242]: {}",
]


@pytest.mark.parametrize("header", HEADERS)
def test_every_header_other_systems_put_before_the_message(header):
    line = header.format("Invalid user oracle from 203.0.113.4 port 51200")
    event = a.parse_line(line, now=1795918141.0)
    assert event is not None, line
    assert (event["kind"], event["user"], event["host"], event["port"]) == (
        k.SSH_INVALID_USER,
        "oracle",
        "203.0.113.4",
        51200,
    )
    assert (event["process"], event["pid"]) == ("sshd", 4242)
    if "2026-11-2" in header:
        assert event["time"] == pytest.approx(1795918141.0, abs=0.1)


def test_a_line_without_a_host_takes_it_from_the_same_pid():
    parser = a.AuthLogParser()
    first = parser.parse_line(syslog_line("sshd", "Failed password for root from 203.0.113.4 port 51300 ssh2"))
    other = parser.parse_line(
        syslog_line("sshd", "Failed password for root from 198.51.100.1 port 51301 ssh2").replace("[4242]", "[4343]")
    )
    ending = parser.parse_line(syslog_line("sshd", "Disconnecting: Too many authentication failures [preauth]"))
    assert (first["host"], other["host"]) == ("203.0.113.4", "198.51.100.1")
    assert (ending["kind"], ending["user"], ending["host"], ending["port"]) == (
        k.SSH_TOO_MANY_FAILURES,
        "root",
        "203.0.113.4",
        51300,
    )
    echo = parser.parse_line(
        syslog_line("sshd", "Connection closed by authenticating user root 203.0.113.4 port 51300 [preauth]")
    )
    assert echo is None  # the same connection's end, said again


def test_su_and_pam_saying_the_same_thing_make_one_event():
    parser = a.AuthLogParser()
    opened = parser.parse_line(syslog_line("su", "(to root) alice on pts/0"))
    echo = parser.parse_line(
        syslog_line("su", "pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)")
    )
    closed = parser.parse_line(syslog_line("su", "pam_unix(su:session): session closed for user root"))
    assert (opened["kind"], opened["tty"], echo, closed["kind"]) == (k.SU_OPENED, "pts/0", None, k.SU_CLOSED)


def test_parser_is_fast_enough_for_the_hot_path():
    """A generous bound: a node must keep up with a flood of several thousand lines a second."""
    import time

    lines = [syslog_line(p, msg) for p, msg, _ in CASES] * 50
    parser = a.AuthLogParser()
    start = time.perf_counter()
    for line in lines:
        parser.parse_line(line)
    per_line = (time.perf_counter() - start) / len(lines)
    assert per_line < 200e-6, f"{per_line * 1e6:.1f} µs a line"


def test_a_utmp_that_cannot_be_read_is_an_error_not_nobody(tmp_path):
    from secmon.collectors.sessions import read_sessions

    missing = tmp_path / "utmp"
    assert read_sessions(missing) == f"cannot read {missing}: No such file or directory"
    missing.mkdir()
    assert read_sessions(missing) == f"cannot read {missing}: Is a directory"
