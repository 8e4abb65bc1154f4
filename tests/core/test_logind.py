"""Sessions from logind: loginctl's output parsed (tables of what 252 and 257 print), the source chosen,
and the reader run against a stand-in loginctl and against the real one where it is installed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import anyio
import pytest
from fake_loginctl import install, remove_session, session_properties, write_session

from secmon.check import check_configuration
from secmon.collectors import logind
from secmon.collectors.logind import (
    LogindSource,
    UtmpSource,
    choose_sessions_source,
    parse_properties,
    parse_session_ids,
    parse_sessions,
    parse_timestamp,
    read_logind_sessions,
)
from secmon.collectors.sources import poll_sessions
from secmon.config import NodeSettings
from secmon.errors import ConfigError
from secmon.protocol.messages import Session

LOGIN = 1764443124.0  # Sat 2025-11-29 19:05:24 UTC

# `loginctl list-sessions --no-legend`, as each version prints it (not on a terminal).
LISTINGS = [
    pytest.param(
        "      3 1000 alice -     1234   user    pts/0 no   -\n"
        "     12  118 gdm   seat0 987    greeter -     no   -\n"
        "     c1    0 root  -     654    manager -     no   -\n",
        ["3", "12", "c1"],
        id="257",
    ),
    pytest.param(
        " 3 1000 alice       pts/0\n12  118 gdm   seat0\n",
        ["3", "12"],
        id="252, empty seat and tty",
    ),
    pytest.param(
        "SESSION  UID USER  SEAT  TTY\n      3 1000 alice       pts/0\n\n1 sessions listed.\n",
        ["3"],
        id="legend left in",
    ),
    pytest.param("", [], id="no sessions"),
    pytest.param("No sessions.\n", [], id="no sessions, with legend"),
    pytest.param("  -x 1000 alice\n  ../4 0 root\n", [], id="not session ids"),
]


@pytest.mark.parametrize(("text", "ids"), LISTINGS)
def test_session_ids_are_the_first_column(text, ids):
    assert parse_session_ids(text) == ids


SHOW_257 = """\
Id=3
Name=alice
Timestamp=Sat 2025-11-29 19:05:24 UTC
TimestampMonotonic=86000000000
Seat=
TTY=pts/0
RemoteHost=192.0.2.7
Class=user
State=active

Id=12
Name=gdm
Timestamp=Sat 2025-11-29 19:05:24 UTC
TimestampMonotonic=86000000000
Seat=seat0
TTY=
RemoteHost=
Class=greeter
State=online
"""


def test_show_session_blocks_start_at_their_id():
    blocks = parse_properties(SHOW_257)
    assert [b["Id"] for b in blocks] == ["3", "12"]
    assert blocks[0]["RemoteHost"] == "192.0.2.7" and blocks[1]["RemoteHost"] == ""
    assert blocks[1]["Seat"] == "seat0"


def block(**props: str) -> str:
    base = {
        "Id": "5",
        "Name": "alice",
        "Timestamp": "Sat 2025-11-29 19:05:24 UTC",
        "TimestampMonotonic": "86000000000",
        "Seat": "",
        "TTY": "pts/0",
        "RemoteHost": "",
        "Class": "user",
        "State": "active",
    }
    base.update(props)
    return "".join(f"{name}={value}\n" for name, value in base.items())


WALL, MONOTONIC = 1764500000.0, 90000.0  # the clocks "now", for sessions with no readable Timestamp=

SESSIONS = [
    pytest.param(block(), Session("alice", "pts/0", None, LOGIN), id="local terminal"),
    pytest.param(block(RemoteHost="192.0.2.7"), Session("alice", "pts/0", "192.0.2.7", LOGIN), id="ssh with a pty"),
    pytest.param(block(TTY="", RemoteHost="2001:db8::7"), Session("alice", "-", "2001:db8::7", LOGIN), id="ssh no pty"),
    pytest.param(block(TTY="", Seat="seat0"), Session("alice", "seat0", None, LOGIN), id="graphical, on a seat"),
    pytest.param(block(State="online"), Session("alice", "pts/0", None, LOGIN), id="online (not in front)"),
    pytest.param(block(Class="user-early"), Session("alice", "pts/0", None, LOGIN), id="257 root before nologin"),
    pytest.param(block(Class="user-incomplete"), Session("alice", "pts/0", None, LOGIN), id="257 no user manager"),
    pytest.param(block(Class="greeter"), None, id="greeter"),
    pytest.param(block(Class="lock-screen"), None, id="lock screen"),
    pytest.param(block(Class="background"), None, id="cron"),
    pytest.param(block(Class="manager"), None, id="257 user manager"),
    pytest.param(block(State="closing"), None, id="logged out, processes left"),
    pytest.param(block(State="opening"), None, id="not logged in yet"),
    pytest.param(block(Name=""), None, id="no user name"),
    pytest.param(
        block(Timestamp="Sat 2025-11-29 20:05:24 CET"),
        Session("alice", "pts/0", None, WALL - (MONOTONIC - 86000.0)),
        id="zone not UTC: from the monotonic clock",
    ),
    pytest.param(block(Timestamp="", TimestampMonotonic="0"), Session("alice", "pts/0", None, 0.0), id="no time"),
]


@pytest.mark.parametrize(("text", "expected"), SESSIONS)
def test_only_live_user_sessions_become_sessions(text, expected):
    assert parse_sessions(text, WALL, MONOTONIC) == ([expected] if expected else [])


@pytest.mark.parametrize(
    ("text", "stamp"),
    [
        ("Sat 2025-11-29 19:05:24 UTC", LOGIN),
        ("Thu 1970-01-01 00:00:01 UTC", 1.0),
        ("Sat 2025-11-29 19:05:24 GMT", None),
        ("Sat 2025-11-29 19:05:24", None),
        ("", None),
        ("--- XXXX-XX-XX XX:XX:XX UTC", None),
    ],
)
def test_timestamps_are_read_in_utc_only(text, stamp):
    assert parse_timestamp(text) == stamp


@pytest.mark.parametrize(
    ("env", "running", "which", "expected"),
    [
        ({}, True, "/usr/bin/loginctl", "logind"),
        ({}, False, "/usr/bin/loginctl", "utmp"),
        ({}, True, None, "utmp"),
        ({"SECMON_SESSIONS_SOURCE": "logind"}, False, None, "logind"),
        ({"SECMON_SESSIONS_SOURCE": "utmp"}, True, "/usr/bin/loginctl", "utmp"),
        ({"SECMON_UTMP": "/srv/utmp"}, True, "/usr/bin/loginctl", "utmp"),
    ],
)
def test_the_source_is_logind_where_it_runs(env, running, which, expected):
    setting = NodeSettings.from_env(env).sessions_source
    source = choose_sessions_source(setting, env, running=lambda: running, which=lambda _: which)
    assert isinstance(source, LogindSource if expected == "logind" else UtmpSource)


def test_a_bad_source_setting_is_a_config_error_that_secmon_check_reports():
    with pytest.raises(ConfigError, match="SECMON_SESSIONS_SOURCE must be one of auto, logind, utmp; got 'who'"):
        NodeSettings.from_env({"SECMON_SESSIONS_SOURCE": "who"})
    assert NodeSettings.from_env({"SECMON_SESSIONS_SOURCE": " LOGIND "}).sessions_source == "logind"
    problems = check_configuration({"SECMON_SESSIONS_SOURCE": "who"}, ["node"])
    assert "SECMON_SESSIONS_SOURCE must be one of auto, logind, utmp; got 'who'" in problems


def test_logind_runs_when_booted_by_systemd_and_its_seats_exist(tmp_path):
    booted, seats = tmp_path / "system", tmp_path / "seats"
    seats.mkdir()  # as in a container whose image kept /run/systemd/seats: not booted, so no logind
    assert not logind.logind_running(booted, seats)
    booted.mkdir()
    assert logind.logind_running(booted, seats)


# --- the reader against a stand-in loginctl, a real subprocess --------------------------------


@pytest.fixture
def sessions_dir(tmp_path):
    directory = tmp_path / "sessions"
    directory.mkdir()
    write_session(directory, session_properties("3", "alice", remote_host="192.0.2.7", login=LOGIN))
    write_session(directory, session_properties("12", "gdm", tty="", seat="seat0", session_class="greeter"))
    write_session(directory, session_properties("c1", "root", uid=0, tty="", session_class="manager"))
    write_session(directory, session_properties("14", "bob", tty="", remote_host="198.51.100.4", state="online"))
    return directory


@pytest.mark.parametrize("version", [252, 257])
async def test_sessions_are_read_through_loginctl(tmp_path, sessions_dir, version):
    loginctl = install(tmp_path / "bin", sessions_dir, version)
    sessions = await read_logind_sessions(str(loginctl))
    assert sessions == [
        Session("alice", "pts/0", "192.0.2.7", LOGIN),
        Session("bob", "-", "198.51.100.4", 1764443124.0),
    ]


async def test_no_sessions_is_an_empty_list(tmp_path):
    (tmp_path / "sessions").mkdir()
    assert await read_logind_sessions(str(install(tmp_path / "bin", tmp_path / "sessions"))) == []


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (257, "Failed to connect to system scope bus via local transport: No such file or directory"),
        (252, "Failed to connect to bus: No such file or directory"),
    ],
)
async def test_an_unreachable_logind_is_an_error_not_no_sessions(tmp_path, sessions_dir, version, message):
    loginctl = install(tmp_path / "bin", sessions_dir, version, down=True)
    error = await read_logind_sessions(str(loginctl))
    assert error == f"cannot see sessions from logind: loginctl list-sessions exited with 1: {message}"


async def test_a_missing_loginctl_is_an_error(tmp_path):
    error = await read_logind_sessions(str(tmp_path / "no-such-loginctl"))
    assert error == "cannot see sessions from logind: loginctl not found"


async def test_a_session_gone_between_listing_and_showing_is_listed_again(tmp_path, sessions_dir):
    """The first show-session names a session that has ended: loginctl fails, the reader lists again."""
    bin_dir = tmp_path / "bin"
    real = install(bin_dir / "real", sessions_dir)
    calls = tmp_path / "calls"
    wrapper = bin_dir / "loginctl"
    wrapper.write_text(  # the first listing still has session 9, which show-session no longer knows
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'if [ "$2" = list-sessions ] && [ ! -e {tmp_path}/listed ]; then\n'
        f"  touch {tmp_path}/listed; echo '      9 1000 carol - 77 user pts/3 no -'; exit 0\n"
        "fi\n"
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    sessions = await read_logind_sessions(str(wrapper))
    assert [s.user for s in sessions] == ["alice", "bob"]
    verbs = [line.split()[1] for line in calls.read_text().splitlines()]
    assert verbs == ["list-sessions", "show-session", "list-sessions", "show-session"]


async def test_the_real_loginctl_gives_sessions_or_says_why_not():
    """On this machine's own loginctl: a list where logind runs, else an error, never a silent []."""
    if shutil.which("loginctl") is None:
        pytest.skip("needs loginctl (Debian package systemd)")
    sessions = await read_logind_sessions()
    if logind.logind_running():
        assert isinstance(sessions, list)
    else:
        assert isinstance(sessions, str) and sessions.startswith("cannot see sessions from logind: loginctl ")


# --- poll_sessions: woken by logind's directory changing ---------------------------------------


async def test_logins_and_logouts_are_reported_when_the_directory_changes(tmp_path, sessions_dir, monkeypatch):
    install(tmp_path / "bin", sessions_dir)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SECMON_LOGIND_SESSIONS", str(sessions_dir))
    reports: list[list[str]] = []
    changed = anyio.Event()

    def report(name: str, value) -> None:
        nonlocal changed
        assert name == "sessions" and isinstance(value, list), value
        reports.append([s.user for s in value])
        changed.set()

    async def until(users: list[str]) -> None:
        nonlocal changed
        # Under RECHECK (10 s): only the inotify watch can wake the poller this soon (its interval is 60 s).
        with anyio.fail_after(8):
            while not reports or reports[-1] != users:
                await changed.wait()
                changed = anyio.Event()

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll_sessions, report, 60.0, "logind")
        await until(["alice", "bob"])
        write_session(sessions_dir, session_properties("15", "carol", remote_host="203.0.113.9"))
        await until(["alice", "bob", "carol"])
        write_session(sessions_dir, session_properties("3", "alice", state="closing"))
        await until(["bob", "carol"])
        remove_session(sessions_dir, "14")
        await until(["carol"])
        tg.cancel_scope.cancel()
    # A read may see a change half made (the new file not yet renamed in) and report the same again.
    assert [users for i, users in enumerate(reports) if i == 0 or users != reports[i - 1]] == [
        ["alice", "bob"],
        ["alice", "bob", "carol"],
        ["bob", "carol"],
        ["carol"],
    ]


def test_the_stamp_changes_with_every_rewrite(sessions_dir):
    source = LogindSource(sessions_dir)
    before = source.stamp()
    write_session(sessions_dir, session_properties("3", "alice", state="online"))  # same name, new file
    assert source.stamp() != before
    assert LogindSource(sessions_dir / "missing").stamp() is None
    assert str(source) == "logind (loginctl)"
    assert str(UtmpSource(Path("/run/utmp"))) == "utmp /run/utmp"


async def test_a_missing_utmp_is_an_error_naming_the_source(tmp_path):
    missing = tmp_path / "utmp"
    error = await UtmpSource(missing).read()
    assert error == f"cannot see sessions from utmp: cannot read {missing}: No such file or directory"
    missing.write_bytes(b"")
    assert await UtmpSource(missing).read() == []
