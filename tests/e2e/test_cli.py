"""The `secmon` command as a user meets it: help, usage errors, permission problems, failing collectors.

Permission tests run the real CLI as the unprivileged user nobody (setpriv). The
test interpreter lives where nobody cannot read, so the CLI runs on the system's
python3 from a world-readable copy of secmon and the packages it imports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import WAIT, require_root_tools, wait_until

SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534

# Print where each package outside the standard library that the CLI imports lives.
_LIST_IMPORTS = """
import sys
import anyio._backends._asyncio, secmon.cli.main, secmon.client
for name in sorted({n.partition(".")[0] for n in sys.modules} - set(sys.stdlib_module_names)):
    if name.startswith("_sysconfigdata"):  # the test interpreter's own build settings
        continue
    path = getattr(sys.modules.get(name), "__file__", None)
    if path:
        print(path)
"""

WORDS = ["hub", "node", "authlog", "list", "subscribe", "check", "help", "events", "mute", "audit"]


@pytest.fixture(scope="module")
def readable_secmon() -> Iterator[Path]:
    """A directory every user may read, holding secmon and what it imports, for PYTHONPATH."""
    require_root_tools("setpriv", SYSTEM_PYTHON)  # to act as another user, on a python it may read
    version = subprocess.run([SYSTEM_PYTHON, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                             capture_output=True, text=True)  # fmt: skip
    if version.stdout.strip() != "True":
        pytest.skip(f"needs {SYSTEM_PYTHON} 3.11 or newer (apt install python3)")
    listed = subprocess.run([sys.executable, "-c", _LIST_IMPORTS], capture_output=True, text=True, check=True)
    lib = Path(tempfile.mkdtemp(prefix="sm-lib-", dir="/tmp"))
    lib.chmod(0o755)
    try:
        for path in map(Path, listed.stdout.split()):
            if path.name == "__init__.py":
                shutil.copytree(path.parent, lib / path.parent.name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(path, lib / path.name)
        for item in lib.rglob("*"):
            item.chmod(0o755 if item.is_dir() else 0o644)
        yield lib
    finally:
        shutil.rmtree(lib, ignore_errors=True)


@pytest.fixture
def as_nobody(cluster, readable_secmon) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `secmon ARGS` as user nobody, with primary group ``gid`` and no other groups."""

    def run(*args: str, gid: int = NOBODY) -> subprocess.CompletedProcess[str]:
        argv = ["setpriv", f"--reuid={NOBODY}", f"--regid={gid}", "--clear-groups", SYSTEM_PYTHON, "-m", "secmon"]
        env = {**cluster.env, "PYTHONPATH": str(readable_secmon), "PYTHONDONTWRITEBYTECODE": "1"}
        return subprocess.run([*argv, *args], env=env, capture_output=True, text=True, timeout=WAIT)

    return run


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr.rstrip("\n")


# --- help and usage ------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [[], ["help"], ["--help"], ["-h"], ["--json", "help"]])
def test_the_overview_lists_every_command(cluster, argv):
    result = cluster.cli(*argv)
    assert result.returncode == 0 and result.stderr == ""
    for usage in ["secmon hub", "secmon node", "secmon subscribe", "secmon <list|->", "secmon - <command-label>",
                  "secmon check", "secmon authlog", "secmon WORD --help"]:  # fmt: skip
        assert usage in result.stdout


@pytest.mark.parametrize("word", [*WORDS, "node-a", "-"])
def test_help_after_every_word_prints_its_usage_and_exits_0(cluster, workdir, word):
    result = cluster.cli(word, "--help")
    assert result.returncode == 0 and result.stderr == ""
    expected = f"usage: secmon {word}" if word in WORDS else "usage: secmon NODE [LABEL]"
    assert result.stdout.startswith(expected), result.stdout
    assert not (workdir / "hub.sock").exists()  # `hub --help` started no hub


def test_node_help_shows_usage_and_never_runs_a_label(cluster, hub, workdir):
    marker = workdir / "ran"
    allow = cluster.allowlist(f"--help=touch {marker}\n")
    cluster.start_node(hostname="node-a", COMMAND_ALLOWLIST_FILE=str(allow))
    shown = cluster.cli("node-a", "--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: secmon NODE")
    assert not marker.exists()  # a run would have finished before the CLI returned
    ran = cluster.cli("node-a", "--", "--help")  # the way to name such a label
    assert ran.returncode == 0, ran.stderr
    assert marker.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["node", "bogus"], "'bogus' is not a monitor: choose from who, wg, auth (see `secmon node --help`)"),
        (["hub", "--bogus"], "unrecognized arguments: --bogus (see `secmon hub --help`)"),
        (["subscribe", "--since", "soon"], "expected a sequence number, got 'soon'"),
        (["list", "node-a"], "unrecognized arguments: node-a (see `secmon list --help`)"),
        (["node-a", "uptime", "now"], "unrecognized arguments: now (see `secmon help`)"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(cluster, argv, message):
    assert message in one_line_error(cluster.cli(*argv), 2)


def test_json_may_come_anywhere(cluster, hub):
    cluster.start_node(hostname="node-a")
    before = json.loads(cluster.cli("--json", "node-a").stdout)
    after = json.loads(cluster.cli("node-a", "--json").stdout)
    assert before["hostname"] == after["hostname"] == "node-a"
    assert [n["hostname"] for n in json.loads(cluster.cli("--json", "-").stdout)] == ["node-a"]


def test_authlog_still_reads_a_file(cluster, workdir):
    log = workdir / "sample.log"
    log.write_text("Mar  1 10:00:00 h sshd[42]: Failed password for root from 192.0.2.7 port 5000 ssh2\n")
    result = cluster.cli("authlog", str(log))
    assert result.returncode == 0, result.stderr
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert event["user"] == "root" and event["host"] == "192.0.2.7"


# --- who may connect ---------------------------------------------------------------------


def test_a_directory_in_the_way_is_named_with_who_may_pass(cluster, hub, workdir, as_nobody):
    assert (os.stat(workdir).st_mode & 0o777) == 0o700
    error = one_line_error(as_nobody("list"), 1)
    assert error == (
        f"secmon: cannot connect to {hub.socket}: permission denied "
        f"(its directory {workdir} is owned by root:root, mode 0700: run as root)"
    )


def test_a_private_socket_says_only_root_may_connect(cluster, hub, workdir, as_nobody):
    workdir.chmod(0o755)
    error = one_line_error(as_nobody("list"), 1)
    assert error == (
        f"secmon: cannot connect to {hub.socket}: permission denied (owned by root:root, mode 0600: run as root)"
    )


def test_a_group_socket_names_its_group_and_lets_members_in(cluster, workdir, as_nobody):
    import grp

    group = grp.getgrnam("nogroup").gr_gid
    hub = cluster.start_hub(SECMON_SOCKET_GROUP="nogroup")
    workdir.chmod(0o755)
    error = one_line_error(as_nobody("list", gid=group - 1), 1)
    assert error == (
        f"secmon: cannot connect to {hub.socket}: permission denied "
        "(owned by root:nogroup, mode 0660: run as root or a member of group nogroup)"
    )
    member = as_nobody("list", gid=group)
    assert member.returncode == 0 and member.stdout == "no nodes\n", member.stderr


def test_a_client_the_hub_refuses_is_told_who_may_connect(cluster, hub, workdir, as_nobody):
    workdir.chmod(0o755)
    os.chmod(hub.socket, 0o666)  # as a careless admin might: only the hub's uid check is left
    error = one_line_error(as_nobody("list"), 1)
    assert error == (
        f"secmon: the hub on {hub.socket} refused this client: "
        f"uid {NOBODY} may not use this hub (only root may connect)"
    )
    hub.wait_for(f"client refused: uid {NOBODY} may not use this hub")


# --- failing collectors in the list ----------------------------------------------------------


def test_list_names_a_failing_collector_until_it_recovers(cluster, hub, workdir):
    auth_log = workdir / "auth.log"
    assert cluster.env["AUTH_LOG"] == str(auth_log) and not auth_log.exists()
    cluster.start_node("who", "auth", hostname="node-a")
    waiting = f"auth: waiting for {auth_log} to appear"

    def table() -> str:
        result = cluster.cli("list")
        assert result.returncode == 0, result.stderr
        return result.stdout

    def failing() -> list[str] | None:
        lines = table().splitlines()
        return lines if waiting in lines[-1] else None

    header, row = wait_until(failing, what="auth to be failing")
    assert header.split()[-1] == "FAILING" and row.endswith(waiting)
    auth_log.touch()
    wait_until(lambda: "FAILING" not in table(), what="the FAILING column to go")
    assert "node-a" in table()
