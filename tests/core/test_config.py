"""Environment parsing, secrets, state directories, the allowlist's ignored lines, and `secmon check`.

Plain function calls on real files in a temporary directory; the daemons'
side of the same mistakes is in tests/e2e/test_errors.py.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from pathlib import Path

import pytest

from secmon.check import check_configuration, main, parse_settings, state_problems
from secmon.config import (
    HubSettings,
    NodeSettings,
    env_bool,
    env_float,
    env_log_level,
    read_secret,
    state_directory,
    state_error,
)
from secmon.errors import ConfigError, StateCorrupt
from secmon.hub.store import HubStore
from secmon.node.commands import IgnoredLine, read_allowlist
from secmon.protocol.batches import UpdateFrame

# --- booleans and levels: one reading everywhere ------------------------------------------


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *[("1", True), ("true", True), ("TRUE", True), ("Yes", True), (" yes ", True)],
        *[("0", False), ("false", False), ("False", False), ("NO", False)],
    ],
)
def test_booleans_read_six_words_in_any_case(raw, value):
    assert env_bool({"FLAG": raw}, "FLAG", not value) is value


@pytest.mark.parametrize("raw", ["maybe", "on", "off", "2", "y", "n", "truthy", "-1"])
def test_any_other_boolean_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError) as caught:
        env_bool({"SECMON_UVLOOP": raw}, "SECMON_UVLOOP", True)
    assert caught.value.variable == "SECMON_UVLOOP"
    assert str(caught.value).startswith("SECMON_UVLOOP ") and repr(raw) in str(caught.value)


def test_unset_and_blank_booleans_take_the_default():
    assert env_bool({}, "FLAG", True) is True
    assert env_bool({"FLAG": "  "}, "FLAG", False) is False


@pytest.mark.parametrize(
    ("raw", "level"),
    [
        *[("debug", logging.DEBUG), ("INFO", logging.INFO), ("Warning", logging.WARNING), ("warn", logging.WARNING)],
        *[("error", logging.ERROR), ("CRITICAL", logging.CRITICAL), ("", logging.INFO)],
    ],
)
def test_log_levels_by_name(raw, level):
    assert env_log_level({"SECMON_LOG_LEVEL": raw}) == level


@pytest.mark.parametrize("raw", ["bogus", "10", "notset", "infoo"])
def test_unknown_log_level_is_refused(raw):
    with pytest.raises(ConfigError, match=r"^SECMON_LOG_LEVEL must be one of debug, info"):
        env_log_level({"SECMON_LOG_LEVEL": raw})


@pytest.mark.parametrize(("raw", "message"), [("abc", "must be a number"), ("0", "≥ 0.01"), ("-1", "≥ 0.01")])
def test_follow_interval_must_be_a_positive_number(raw, message):
    with pytest.raises(ConfigError, match=message) as caught:
        NodeSettings.from_env({"SECMON_FOLLOW_INTERVAL": raw})
    assert caught.value.variable == "SECMON_FOLLOW_INTERVAL"


def test_node_settings_carry_follow_interval_and_hostname():
    settings = NodeSettings.from_env({"SECMON_FOLLOW_INTERVAL": "0.25", "SECMON_HOSTNAME": " web-1 "})
    assert (settings.follow_interval, settings.hostname) == (0.25, "web-1")
    assert NodeSettings.from_env({}).hostname is None


def test_uvloop_is_a_hub_setting_read_as_a_boolean():
    assert HubSettings.from_env({"SECMON_UVLOOP": "false"}).uvloop is False
    assert HubSettings.from_env({"SECMON_UVLOOP": "No"}).uvloop is False
    assert HubSettings.from_env({}).uvloop is True


def test_unknown_socket_group_is_refused_when_settings_are_read():
    with pytest.raises(ConfigError, match="SECMON_SOCKET_GROUP: no group named 'no-such-group-here'"):
        HubSettings.from_env({"SECMON_SOCKET_GROUP": "no-such-group-here"})


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0", "must be at least 0.0417 days (an hour; 0 would keep nothing), got 0"),
        ("0.01", "must be at least 0.0417 days"),
        ("abc", "must be a number of days, got 'abc'"),
    ],
)
def test_history_days_keep_at_least_an_hour(raw, message):
    with pytest.raises(ConfigError, match=rf"^SECMON_HISTORY_DAYS {re.escape(message)}"):
        HubSettings.from_env({"SECMON_HISTORY_DAYS": raw})
    assert HubSettings.from_env({"SECMON_HISTORY_DAYS": "0.0417"}).history_days == 0.0417
    assert HubSettings.from_env({}).history_days == 30.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NODE_DOWN_AFTER": "0"}, "NODE_DOWN_AFTER must be more than 0 seconds, got 0"),
        ({"NODE_DOWN_AFTER": "soon"}, "NODE_DOWN_AFTER must be a number of seconds, got 'soon'"),
        (
            {"NODE_DOWN_AFTER": "300"},
            "NODE_DOWN_AFTER (300 s) must be shorter than DISCONNECT_GRACE_PERIOD (300 s): "
            "a node forgotten before it is said down would never be",
        ),
        ({"NODE_DOWN_AFTER": "30", "DISCONNECT_GRACE_PERIOD": "20"}, "NODE_DOWN_AFTER (30 s) must be shorter"),
    ],
)
def test_node_down_after_is_positive_and_shorter_than_the_grace_period(env, message):
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}"):
        HubSettings.from_env(env)
    problems = check_configuration({"SECMON_SOCKET": "/tmp/x.sock", **env}, ["hub"])
    assert any(p.startswith(message) for p in problems)


def test_node_down_after_defaults_to_a_minute_or_half_a_short_grace_period():
    assert HubSettings.from_env({}).node_down_after == 60.0
    assert HubSettings.from_env({"DISCONNECT_GRACE_PERIOD": "4"}).node_down_after == 2.0  # set before it existed
    settings = HubSettings.from_env({"NODE_DOWN_AFTER": "1.5", "SECMON_AUDIT_MAX": "5", "SECMON_NOTICES_MAX": "7"})
    assert (settings.node_down_after, settings.audit_max, settings.notices_max) == (1.5, 5, 7)
    with pytest.raises(ConfigError, match=r"^SECMON_AUDIT_MAX must be between 1 and"):
        HubSettings.from_env({"SECMON_AUDIT_MAX": "0"})


def test_infinite_and_nan_seconds_are_refused():
    for raw in ("inf", "nan"):
        with pytest.raises(ConfigError):
            env_float({"T": raw}, "T", 1.0)


# --- secrets are private files --------------------------------------------------------------


def _secret(tmp_path: Path, mode: int, text: str = "s3cret\n") -> dict[str, str]:
    path = tmp_path / "token"
    path.write_text(text)
    path.chmod(mode)
    return {"SECMON_TOKEN_FILE": str(path)}


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640])
def test_private_token_is_read(tmp_path, mode):
    assert read_secret(_secret(tmp_path, mode), "SECMON_TOKEN_FILE") == "s3cret"


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        (0o644, "readable by others"),
        (0o604, "readable by others"),
        (0o620, "writable by group or others"),
        (0o602, "writable by group or others"),
    ],
)
def test_token_others_can_reach_is_refused(tmp_path, mode, message):
    with pytest.raises(ConfigError, match=message) as caught:
        read_secret(_secret(tmp_path, mode), "SECMON_TOKEN_FILE")
    assert str(caught.value).startswith(f"SECMON_TOKEN_FILE: {tmp_path / 'token'} ")


def test_token_owned_by_another_user_is_refused(tmp_path):
    if os.getuid() != 0:
        pytest.skip("giving a file to another user needs root")
    env = _secret(tmp_path, 0o600)
    os.chown(tmp_path / "token", 65534, -1)
    with pytest.raises(ConfigError, match="owned by uid 65534, not root or us"):
        read_secret(env, "SECMON_TOKEN_FILE")


def test_missing_and_empty_tokens_say_so(tmp_path):
    with pytest.raises(ConfigError, match=r"cannot read .*No such file"):
        read_secret({"SECMON_TOKEN_FILE": str(tmp_path / "absent")}, "SECMON_TOKEN_FILE")
    with pytest.raises(ConfigError, match="is empty"):
        read_secret(_secret(tmp_path, 0o600, " \n"), "SECMON_TOKEN_FILE")


def test_a_token_file_that_is_not_text_says_so(tmp_path):
    path = tmp_path / "token"
    path.write_bytes(b"\xff\xfe\x00\x9c binary, not a token\n")
    path.chmod(0o600)
    with pytest.raises(ConfigError) as caught:
        read_secret({"SECMON_TOKEN_FILE": str(path)}, "SECMON_TOKEN_FILE")
    assert str(caught.value) == f"SECMON_TOKEN_FILE: {path} is not UTF-8 text"
    assert caught.value.variable == "SECMON_TOKEN_FILE"


# --- state directories and databases ----------------------------------------------------------


def test_state_directory_is_created_private(tmp_path):
    made = state_directory(tmp_path / "a" / "b")
    assert made.is_dir() and made.stat().st_mode & 0o777 == 0o700


def test_state_directory_that_is_a_file_or_under_one_is_refused(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^SECMON_STATE_DIR: .*/file exists and is not a directory$"):
        state_directory(tmp_path / "file")
    with pytest.raises(ConfigError, match=r"^SECMON_STATE_DIR: cannot create .*/file/sub: Not a directory$"):
        state_directory(tmp_path / "file" / "sub")


def test_a_garbage_hub_database_names_the_file_and_how_to_move_it_aside(tmp_path):
    database = tmp_path / "hub.sqlite3"
    database.write_bytes(b"not a database at all, just text " * 10)
    with pytest.raises(StateCorrupt) as caught:
        HubStore(tmp_path, ring_size=10)
    assert caught.value.exit_code == 2
    assert str(caught.value) == (
        f"state database {database} is unreadable (file is not a database); "
        f"move it aside (mv {database} {database}.corrupt) to start with an empty store"
    )


def test_moving_aside_includes_the_wal_files_left_behind(tmp_path):
    database = tmp_path / "hub.sqlite3"
    Path(f"{database}-wal").write_bytes(b"x")
    message = str(StateCorrupt(database, "damaged"))
    assert f"mv {database} {database}.corrupt && mv {database}-wal {database}-wal.corrupt" in message


def test_an_unopenable_database_is_not_called_corrupt(tmp_path):
    (tmp_path / "hub.sqlite3").mkdir()  # SQLite cannot open a directory as a database
    try:
        sqlite3.connect(tmp_path / "hub.sqlite3").execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        error = state_error(tmp_path / "hub.sqlite3", exc)
    assert not isinstance(error, StateCorrupt)
    assert str(error).startswith("SECMON_STATE_DIR: cannot use ")


def test_a_good_store_reopens(tmp_path):
    HubStore(tmp_path, ring_size=10).close()
    HubStore(tmp_path, ring_size=10).close()
    assert state_problems(tmp_path, "hub.sqlite3") == []


def test_state_problems_create_nothing(tmp_path):
    assert state_problems(tmp_path / "new" / "dir", "hub.sqlite3") == []
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("")
    assert state_problems(tmp_path / "file" / "sub", "hub.sqlite3") == [
        f"SECMON_STATE_DIR: cannot create {tmp_path / 'file' / 'sub'}: {tmp_path / 'file'} is not a directory"
    ]


def test_state_problems_find_a_damaged_page(tmp_path):
    store = HubStore(tmp_path, ring_size=1000)
    store.save([UpdateFrame(seq, seq, b"x" * 2000) for seq in range(1, 200)])
    store.close()
    database = tmp_path / "hub.sqlite3"
    data = bytearray(database.read_bytes())
    page = 4096
    data[page * 5 : page * 9] = b"\xff" * (page * 4)  # table pages, well past the header
    database.write_bytes(bytes(data))
    [problem] = state_problems(tmp_path, "hub.sqlite3")
    assert problem.startswith(f"state database {database} is unreadable (")
    assert f"mv {database} {database}.corrupt" in problem


# --- the allowlist's ignored lines ------------------------------------------------------------

ALLOWLIST = """\
# what may run
uptime=uptime
bad label=ls
quote=echo "unterminated
noequals
empty=
=ls
disk=df -h
uptime=uptime -p
"""


def test_allowlist_reports_each_line_it_ignores_with_its_number():
    allowlist = read_allowlist(ALLOWLIST)
    assert allowlist.entries == {"uptime": ["uptime", "-p"], "disk": ["df", "-h"]}
    assert allowlist.ignored == [
        IgnoredLine(2, "label 'uptime' is defined again on line 9"),
        IgnoredLine(3, "label 'bad label': a label has no spaces or control characters"),
        IgnoredLine(4, "the command cannot be split: no closing quotation"),
        IgnoredLine(5, "no '=': a line is label=command"),
        IgnoredLine(6, "label 'empty' has no command after '='"),
        IgnoredLine(7, "label '': a label has 1 to 64 characters"),
    ]


def test_a_clean_allowlist_ignores_nothing():
    assert read_allowlist("# c\n\nls=ls -l\n  who = who  \n").ignored == []


# --- secmon check ----------------------------------------------------------------------------


@pytest.fixture
def clean_env(tmp_path) -> dict[str, str]:
    """What a correct hub and node on this machine could run with."""
    log = tmp_path / "auth.log"
    log.write_text("")
    return {"SECMON_SOCKET": str(tmp_path / "hub.sock"), "AUTH_LOG": str(log)}


def test_check_finds_nothing_wrong_in_a_clean_configuration(clean_env):
    assert check_configuration(clean_env) == []


def test_check_lists_every_malformed_variable_at_once(clean_env):
    env = {
        **clean_env,
        "SECMON_LOG_LEVEL": "bogus",
        "BIND_PORT": "http",
        "SECMON_UVLOOP": "false-ish",
        "SECMON_FOLLOW_INTERVAL": "0",
        "HUB_PORT": "70000",
        "SECMON_KEEPALIVE_INTERVAL": "soon",
    }
    problems = check_configuration(env)
    named = [p.split()[0] for p in problems]
    assert named == [
        "SECMON_LOG_LEVEL",
        "BIND_PORT",
        "SECMON_KEEPALIVE_INTERVAL",
        "SECMON_UVLOOP",
        "HUB_PORT",
        "SECMON_FOLLOW_INTERVAL",
    ]
    assert sum("SECMON_KEEPALIVE_INTERVAL" in p for p in problems) == 1  # read by both roles, said once


def test_parse_settings_gives_defaults_in_place_of_bad_values():
    settings, problems = parse_settings(HubSettings.from_env, {"BIND_PORT": "x", "DISCONNECT_GRACE_PERIOD": "-3"})
    assert settings is not None and settings.bind_port == 9992 and settings.disconnect_grace == 300.0
    assert len(problems) == 2


def test_check_lists_allowlist_lines_and_a_shared_token_others_can_read(clean_env, tmp_path):
    allowlist = tmp_path / "allowlist"
    allowlist.write_text(ALLOWLIST)
    allowlist.chmod(0o600)
    token = tmp_path / "token"
    token.write_text("t0ken\n")
    token.chmod(0o644)
    env = {**clean_env, "COMMAND_ALLOWLIST_FILE": str(allowlist), "SECMON_TOKEN_FILE": str(token)}
    problems = check_configuration(env, ["node"])
    assert problems[0] == f"SECMON_TOKEN_FILE: {token} is readable by others; refusing it (chmod o-rwx {token})"
    lines = [p for p in problems if p.startswith("COMMAND_ALLOWLIST_FILE:")]
    assert [line.split(" line ")[1].split()[0] for line in lines] == ["2", "3", "4", "5", "6", "7"]
    assert f"COMMAND_ALLOWLIST_FILE: {allowlist} line 3 ignored: label 'bad label'" in lines[1]


def test_check_refuses_an_allowlist_others_may_write(clean_env, tmp_path):
    allowlist = tmp_path / "allowlist"
    allowlist.write_text("ls=ls\n")
    allowlist.chmod(0o666)
    assert check_configuration({**clean_env, "COMMAND_ALLOWLIST_FILE": str(allowlist)}, ["node"]) == [
        f"COMMAND_ALLOWLIST_FILE: allowlist {allowlist} is writable by group or others; refusing to run commands"
    ]


def test_check_tls_files_for_each_role(clean_env, tmp_path):
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    env = {**clean_env, "SECMON_TLS_CA": str(tmp_path / "ca.pem")}
    [hub] = check_configuration(env, ["hub"])
    assert hub == "SECMON_TLS_CA on the hub needs SECMON_TLS_CERT and SECMON_TLS_KEY as well"
    [node] = check_configuration(env, ["node"])
    assert node.startswith("cannot load TLS files:")
    missing = {**clean_env, "SECMON_TLS_CERT": str(tmp_path / "absent.pem"), "SECMON_TLS_KEY": str(tmp_path / "k")}
    expected = f"SECMON_TLS_CERT: {tmp_path / 'absent.pem'} is not a readable file"
    assert check_configuration(missing, ["hub"]) == [expected]


def test_check_hub_exposure_follows_allow_insecure(clean_env):
    env = {**clean_env, "BIND_IP": "0.0.0.0"}
    [problem] = check_configuration(env, ["hub"])
    assert "anyone who can reach the port can join" in problem
    assert check_configuration(env, ["hub"], allow_insecure=True) == []


def test_check_state_directory_and_auth_log(clean_env, tmp_path):
    (tmp_path / "state").write_text("")
    env = {**clean_env, "SECMON_STATE_DIR": str(tmp_path / "state"), "AUTH_LOG": str(tmp_path / "no.log")}
    assert check_configuration(env) == [
        f"SECMON_STATE_DIR: {tmp_path / 'state'} exists and is not a directory",
        f"AUTH_LOG: {tmp_path / 'no.log'} does not exist",
    ]


def test_check_hub_opens_the_history_database_too(clean_env, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    env = {**clean_env, "SECMON_STATE_DIR": str(state)}
    assert check_configuration(env, ["hub"]) == []
    (state / "history.sqlite3").write_bytes(b"not a database at all, just text " * 10)
    [problem] = check_configuration(env, ["hub"])
    assert problem.startswith(f"state database {state / 'history.sqlite3'} is unreadable")


@pytest.mark.parametrize("database", ["audit.sqlite3", "notices.sqlite3"])
def test_check_hub_opens_the_audit_and_notice_databases_too(clean_env, tmp_path, database):
    state = tmp_path / "state"
    state.mkdir()
    env = {**clean_env, "SECMON_STATE_DIR": str(state)}
    (state / database).write_bytes(b"not a database at all, just text " * 10)
    [problem] = check_configuration(env, ["hub"])
    assert problem.startswith(f"state database {state / database} is unreadable")


def test_check_reads_auth_log_as_the_node_does(clean_env, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    # a file whose name starts with "journal" is a file to the node, so to check too
    named = {**clean_env, "AUTH_LOG": str(tmp_path / "journal.log")}
    assert check_configuration(named, ["node"]) == [f"AUTH_LOG: {tmp_path / 'journal.log'} does not exist"]
    missing = {**clean_env, "AUTH_LOG": f"journal:{tmp_path / 'nojournal'}"}
    assert check_configuration(missing, ["node"]) == [
        f"AUTH_LOG=journal:{tmp_path / 'nojournal'}: {tmp_path / 'nojournal'} is not a directory"
    ]
    assert check_configuration({**clean_env, "AUTH_LOG": f"journal:{tmp_path}"}, ["node"]) == []
    [problem] = check_configuration({**clean_env, "AUTH_LOG": "journal:"}, ["node"])
    assert "AUTH_LOG=journal: names no directory" in problem


def test_check_reports_a_path_it_may_not_look_at(clean_env, tmp_path, monkeypatch):
    from pathlib import Path

    hidden = tmp_path / "locked" / "state"
    real_exists = Path.exists

    def exists(self, *args, **kwargs):
        if self == hidden:
            raise PermissionError(13, "Permission denied")  # Python 3.11 raises for a parent it cannot enter
        return real_exists(self, *args, **kwargs)

    monkeypatch.setattr(Path, "exists", exists)
    env = {**clean_env, "SECMON_STATE_DIR": str(hidden)}
    assert check_configuration(env, ["node"]) == [f"SECMON_STATE_DIR: cannot look at {hidden}: Permission denied"]


def test_check_main_usage_and_exit_status(clean_env, monkeypatch, capsys):
    assert main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: secmon check [hub] [node]")
    assert main(["frobnicate"]) == 2
    assert "unknown argument 'frobnicate'" in capsys.readouterr().err
    for name in list(os.environ):
        if name.startswith(("SECMON_", "HUB_", "BIND_", "COMMAND_", "AUTH_LOG", "DISCONNECT_", "ASSUME_")):
            monkeypatch.delenv(name)
    for name, value in clean_env.items():
        monkeypatch.setenv(name, value)
    assert main(["hub", "node"]) == 0
    assert capsys.readouterr() == ("", "")
    monkeypatch.setenv("BIND_PORT", "nine")
    assert main(["hub"]) == 2
    assert capsys.readouterr().err == "secmon check: BIND_PORT must be an integer, got 'nine'\n"
