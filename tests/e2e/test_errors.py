"""Configuration mistakes, made to the real programs: one line naming the variable or path, exit 2.

Every program is started as an operator starts it (``python -m ...``) with one
mistake in its environment; none may print a traceback. The same mistakes
listed at once by `secmon check` are here too, as are the allowlist warnings a
node logs at start.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WAIT, require_root_tools, secmon_argv

PROGRAMS = {
    "secmon hub": secmon_argv("hub"),
    "secmon node": secmon_argv("node", "who"),
    "secmon list": secmon_argv("list"),
    "secmon check": secmon_argv("check"),  # the level decides how check itself logs, so it comes first
    "secmon-http": [sys.executable, "-m", "secmon_http"],
    "secmon-tg": [sys.executable, "-m", "secmon_telegram"],
    "secmon-dc": [sys.executable, "-m", "secmon_discord"],
}


def run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a program that must give up at once (a daemon that starts instead is killed at the timeout)."""
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=WAIT)


def refused(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The one stderr line of a program that refused to start with exit 2; it holds every fragment."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"want one line, got:\n{result.stderr}"
    assert result.returncode == 2, (result.returncode, result.stderr)
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.mark.parametrize("program", PROGRAMS)
def test_bogus_log_level_is_one_line_in_every_program(base_env, program):
    result = run(PROGRAMS[program], {**base_env, "SECMON_LOG_LEVEL": "bogus"})
    line = refused(result, "SECMON_LOG_LEVEL", "'bogus'")
    assert line.startswith(program.split()[0] + ": ")


@pytest.mark.parametrize(("value", "fragment"), [("abc", "must be a number"), ("0", "≥ 0.01"), ("-0.5", "≥ 0.01")])
def test_follow_interval_must_be_a_positive_number(base_env, value, fragment):
    result = run(secmon_argv("node", "auth"), {**base_env, "SECMON_FOLLOW_INTERVAL": value})
    refused(result, "SECMON_FOLLOW_INTERVAL", fragment, repr(value))


@pytest.mark.parametrize(
    ("variable", "value"),
    [("SECMON_UVLOOP", "maybe"), ("ASSUME_HOSTNAME_UNIQUE", "sure"), ("BIND_PORT", "http"), ("BIND_IP", "localhost")],
)
def test_malformed_hub_variables_are_one_line(base_env, variable, value):
    refused(run(secmon_argv("hub"), {**base_env, variable: value}), variable, repr(value))


@pytest.mark.parametrize(("value", "loop"), [("false", "asyncio"), ("NO", "asyncio"), ("0", "asyncio"), ("yes", None)])
def test_uvloop_off_means_off_in_every_spelling(cluster, value, loop):
    if loop is None:
        loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    hub = cluster.start_hub(SECMON_UVLOOP=value)
    assert hub.wait_for(r"event loop: (\w+)")[1] == loop


@pytest.mark.parametrize("role", ["hub", "node"])
def test_state_dir_that_is_a_file_or_cannot_be_created(base_env, workdir, role):
    afile = workdir / "state-file"
    afile.write_text("")
    result = run(secmon_argv(role), {**base_env, "SECMON_STATE_DIR": str(afile)})
    refused(result, "SECMON_STATE_DIR", f"{afile} exists and is not a directory")
    result = run(secmon_argv(role), {**base_env, "SECMON_STATE_DIR": str(afile / "sub")})
    refused(result, "SECMON_STATE_DIR", f"cannot create {afile / 'sub'}: Not a directory")


@pytest.mark.parametrize(("role", "database"), [("hub", "hub.sqlite3"), ("node", "node.sqlite3")])
def test_corrupt_state_database_says_which_file_and_how_to_move_it_aside(cluster, workdir, role, database):
    state = workdir / "state"
    state.mkdir()
    path = state / database
    path.write_bytes(b"this was a database before the disk filled up\n" * 64)
    env = {**cluster.env, "SECMON_STATE_DIR": str(state)}
    line = refused(run(secmon_argv(role), env), str(path), "move it aside")
    check = run(secmon_argv("check", role), env)
    assert check.returncode == 2 and str(path) in check.stderr
    # The advice works: moved as the line says, the daemon starts with an empty store.
    for source, target in re.findall(r"mv (\S+) ([^\s)]+)", line):
        os.rename(source, target)
    assert (state / f"{database}.corrupt").exists()
    if role == "hub":
        cluster.start_hub(SECMON_STATE_DIR=str(state))
    else:
        cluster.start_hub()
        cluster.start_node("who", SECMON_STATE_DIR=str(state))
    assert path.exists()


def test_hub_refuses_a_token_others_can_read(base_env, workdir):
    token = workdir / "token"
    token.write_text("correct horse battery staple\n")
    token.chmod(0o644)
    refused(run(secmon_argv("hub"), {**base_env, "SECMON_TOKEN_FILE": str(token)}), "SECMON_TOKEN_FILE", "readable")
    refused(run(secmon_argv("node"), {**base_env, "SECMON_TOKEN_FILE": str(token)}), "SECMON_TOKEN_FILE", "readable")


def test_hub_refuses_a_token_file_that_is_not_text(base_env, workdir):
    token = workdir / "token"
    token.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")  # the wrong file, picked by mistake
    token.chmod(0o600)
    line = refused(run(secmon_argv("hub"), {**base_env, "SECMON_TOKEN_FILE": str(token)}), "SECMON_TOKEN_FILE")
    assert line.endswith(f"{token} is not UTF-8 text"), line


def _as_nobody() -> list[str]:
    """A prefix that runs a program as uid 65534, still able to read this root-only Python install."""
    require_root_tools("setpriv")  # root, to switch to another user
    if Path("/run/user/65534").exists():
        pytest.skip("uid 65534 has a runtime directory on this machine")
    caps = ["--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]  # read, never write, others' files
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *caps]


def test_hub_without_a_runtime_directory_suggests_secmon_socket(base_env):
    env = {k: v for k, v in base_env.items() if k not in ("SECMON_SOCKET", "XDG_RUNTIME_DIR")}
    prefix = _as_nobody()
    refused(run([*prefix, *secmon_argv("hub")], env), "/run/user/65534 does not exist", "set SECMON_SOCKET")
    check = run([*prefix, *secmon_argv("check", "hub")], env)
    assert check.returncode == 2 and "/run/user/65534 does not exist" in check.stderr


def test_node_warns_once_per_ignored_allowlist_line(cluster, hub):
    allowlist = cluster.allowlist("uptime=uptime\nbad label=ls\nquote=echo 'open\nuptime=uptime -p\n")
    node = cluster.start_node("who", COMMAND_ALLOWLIST_FILE=str(allowlist))
    where = re.escape(str(allowlist))
    node.wait_for(rf"allowlist {where} line 1 ignored: label 'uptime' is defined again on line 4")
    node.wait_for(rf"allowlist {where} line 2 ignored: label 'bad label'")
    node.wait_for(rf"allowlist {where} line 3 ignored: the command cannot be split")
    assert node.count("ignored:") == 3
    ran = cluster.cli("node-a", "uptime")
    assert ran.returncode == 0 and ran.stdout.strip()


def test_node_warns_at_start_about_an_allowlist_it_cannot_trust(cluster, hub):
    allowlist = cluster.allowlist("ls=ls\n", mode=0o666)
    node = cluster.start_node("who", COMMAND_ALLOWLIST_FILE=str(allowlist))
    node.wait_for("writable by group or others; refusing to run commands; no command will run until that is fixed")


def test_check_passes_a_clean_configuration_silently(base_env, workdir):
    Path(base_env["AUTH_LOG"]).write_text("")
    result = run(secmon_argv("check"), base_env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_check_lists_every_problem_one_line_each(base_env, workdir):
    allowlist = workdir / "allowlist"
    allowlist.write_text('ok=true\nbad label=ls\nquote=echo "open\n')
    allowlist.chmod(0o600)
    env = {
        **base_env,
        "HUB_PORT": "99999",
        "SECMON_FOLLOW_INTERVAL": "0",
        "SECMON_UVLOOP": "perhaps",
        "COMMAND_ALLOWLIST_FILE": str(allowlist),
    }
    result = run(secmon_argv("check"), env)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert all(line.startswith("secmon check: ") for line in lines)
    text = "\n".join(lines)
    for fragment in ("HUB_PORT", "SECMON_FOLLOW_INTERVAL", "SECMON_UVLOOP", "line 2 ignored", "line 3 ignored"):
        assert text.count(fragment) == 1, text
    assert f"AUTH_LOG: {base_env['AUTH_LOG']} does not exist" in text
    assert len(lines) == 6


def test_check_help_prints_usage(base_env):
    result = run(secmon_argv("check", "--help"), base_env)
    assert result.returncode == 0 and result.stdout.startswith("usage: secmon check")
    assert "secmon check" in run(secmon_argv("help"), base_env).stdout


def test_a_node_start_up_problem_stays_one_line_in_a_running_cluster(cluster, hub):
    """A node refused for its configuration leaves the hub serving the others."""
    good = cluster.start_node("who", hostname="good")
    env = {**cluster.env, "HUB_IP": hub.host, "HUB_PORT": str(hub.port), "SECMON_FOLLOW_INTERVAL": "never"}
    line = refused(run(secmon_argv("node", "who"), env))
    assert line == "secmon: SECMON_FOLLOW_INTERVAL must be a number of seconds, got 'never'"
    assert good.process.poll() is None and hub.process.poll() is None
    assert "good" in cluster.cli("list").stdout
