"""The suite itself: it leaves the machine as it found it, and runs on a machine lacking tools.

The real-sshd test (and a test that fails on purpose with the same fixtures) runs in a
pytest subprocess that notes what it created (SECMON_TEST_RECORD); afterwards the users
must be gone, the daemons stopped and the system paths as they were. .ci/run runs
against stub commands on PATH, to see which interpreter and packages it asks for.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import machine
import pytest
from conftest import WAIT, require_root_tools, wait_until

ROOT = Path(__file__).resolve().parents[2]
REAL_SSHD = ROOT / "tests" / "e2e" / "test_real_sshd.py"
RUN_TIMEOUT = 240  # seconds for a nested pytest run of the real-sshd test on a loaded machine
SYSTEM_PATHS = ("/var/run/utmp", "/run/sshd", "/dev/log")


def system_state() -> dict[str, object]:
    return {
        **{path: os.path.lexists(path) for path in SYSTEM_PATHS},
        "syslog": machine.syslog_alive(),
        "users": {user.pw_name for user in pwd.getpwall() if user.pw_name.startswith("smt")},  # smt-*, formerly smtest
    }


def as_found() -> dict[str, object]:
    """The machine's system paths, syslog and users, read while no test (in any process) holds them."""
    return wait_until(lambda: machine.when_idle(system_state), timeout=RUN_TIMEOUT, what="other tests to let go")


def nested_pytest(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    """Run pytest in a subprocess (never CI, unless asked); returns it and what its fixtures noted."""
    notes = tmp_path / "record.jsonl"
    notes.touch()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SECMON_")) and k != "CI"}
    base.update(SECMON_TEST_RECORD=str(notes), PYTHONPATH=str(ROOT / "tests"))
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", *args]
    result = subprocess.run(argv, cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return result, [json.loads(line) for line in notes.read_text().splitlines()]


def noted(notes: list[dict], kind: str) -> list:
    return [note[kind] for note in notes if kind in note]


def assert_given_back(notes: list[dict], before: dict[str, object]) -> None:
    """The machine is as it was, and every user and daemon the run noted is gone."""
    after = as_found()
    assert after["users"] <= before["users"], f"users left behind: {after['users'] - before['users']}"
    assert {**after, "users": None} == {**before, "users": None}
    users, daemons = noted(notes, "user"), noted(notes, "sshd") + noted(notes, "rsyslogd")
    for user in users:
        with pytest.raises(KeyError):
            pwd.getpwnam(user)
        assert not Path("/home", user).exists()
        for table in ("/etc/group", "/etc/shadow", "/etc/subuid", "/etc/subgid"):
            if Path(table).exists():
                assert not re.search(rf"^{re.escape(user)}:", Path(table).read_text(), re.M), table
    for pid in daemons:
        assert not machine.process_alive(pid), f"process {pid} left running"
    for log in noted(notes, "auth_log"):
        if "sm-syslog-" in log:  # the private rsyslogd's directory
            assert not Path(log).parent.exists()


def test_the_real_sshd_test_gives_the_machine_back(tmp_path):
    require_root_tools("/usr/sbin/sshd", "rsyslogd", "useradd", "su", "sudo")
    before = as_found()
    result, notes = nested_pytest(tmp_path, str(REAL_SSHD))
    ran = re.search(r"= (\d+) passed in ", result.stdout)  # every test of the module, none failed or skipped
    assert result.returncode == 0 and ran and int(ran[1]) >= 1, result.stdout[-3000:] + result.stderr[-2000:]
    assert_given_back(notes, before)
    assert noted(notes, "user") and noted(notes, "sshd"), f"the run noted no user or sshd: {notes}"


FAILING_TEST = """
import pwd


def test_fails_with_everything_set_up(sshd, test_user):
    assert pwd.getpwnam(test_user)
    raise AssertionError("failing on purpose")
"""


def test_a_failing_test_still_gives_the_machine_back(tmp_path):
    require_root_tools("/usr/sbin/sshd", "rsyslogd", "useradd")
    (tmp_path / "test_failing.py").write_text(FAILING_TEST)
    before = as_found()
    result, notes = nested_pytest(tmp_path, "-p", "conftest", "--rootdir", str(tmp_path), str(tmp_path))
    assert result.returncode == 1 and "failing on purpose" in result.stdout, result.stdout[-3000:]
    assert_given_back(notes, before)
    assert noted(notes, "user") and noted(notes, "sshd"), f"the run noted no user or sshd: {notes}"


HOLDER = """
import sys
import machine

with machine.syslog_lease() as setup, machine.temporary_user() as user:
    print(user, flush=True)
    sys.stdin.read()  # until killed
"""


def test_what_a_killed_test_held_is_given_back_by_the_next(tmp_path):
    require_root_tools("rsyslogd", "useradd")
    before = as_found()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "SECMON_TEST_RECORD": str(tmp_path / "record.jsonl")}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        user = holder.stdout.readline().strip()
        assert pwd.getpwnam(user) and machine.syslog_alive()
    finally:
        holder.kill()
        holder.wait(WAIT)
    assert pwd.getpwnam(user)  # nothing gave it back yet: the holder had no chance
    notes = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert_given_back(notes, before)  # as_found() reclaims, as the next test's fixtures would


def test_the_test_user_has_a_random_name_and_no_password(test_user):
    assert re.fullmatch(r"smt-[0-9a-f]{8}", test_user)
    shadow = next(line for line in Path("/etc/shadow").read_text().splitlines() if line.startswith(f"{test_user}:"))
    password = shadow.split(":")[1]
    assert password.startswith(("!", "*")), "a test user must not have a password that can match"
    with machine.temporary_user() as other:
        assert other != test_user and pwd.getpwnam(other).pw_shell == "/bin/sh"
    with pytest.raises(KeyError):
        pwd.getpwnam(other)


def shadow_path(tmp_path: Path, hidden: str) -> str:
    """A PATH with every command of this one except ``hidden``."""
    shadow = tmp_path / "bin"
    shadow.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if Path(directory).is_dir():
            for command in Path(directory).iterdir():
                target = shadow / command.name
                if command.name != hidden and not target.exists() and os.access(command, os.X_OK):
                    target.symlink_to(command)
    return str(shadow)


def test_a_missing_tool_skips_naming_its_package_and_fails_in_ci(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root: without it every real-sshd test skips for that")
    before = as_found()
    path = shadow_path(tmp_path, hidden="sudo")
    result, notes = nested_pytest(tmp_path, str(REAL_SSHD), PATH=path)
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r"SKIPPED .*needs sudo \(apt install sudo\)", result.stdout), result.stdout[-3000:]
    assert re.search(r"= \d+ skipped in ", result.stdout), result.stdout[-3000:]  # all skipped, none ran
    assert notes == []  # skipped before anything was set up
    result, _ = nested_pytest(tmp_path, str(REAL_SSHD), PATH=path, CI="true")
    assert result.returncode == 1
    assert "CI must provide sudo (apt install sudo)" in result.stdout
    assert_given_back([], before)


# --- .ci/run, against stub commands -------------------------------------------------------

STUB = """#!/bin/sh
echo "{name} $*" >> {log}
{extra}
"""
VENV_STUB = """if [ "$1 $2" = "-m venv" ]; then
  /bin/mkdir -p "$3/bin"
  printf '#!/bin/sh\\necho "venv-python $*" >> {log}\\n' > "$3/bin/python"
  /bin/chmod +x "$3/bin/python"
fi"""


def run_ci(tmp_path: Path, uid: int, pythons: tuple[str, ...]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """.ci/run with only stubs on PATH: id says ``uid``; apt-get, hatch and ``pythons`` log their arguments."""
    stubs, log = tmp_path / "stubs", tmp_path / "calls.log"
    stubs.mkdir()
    log.touch()
    extras = {"id": f"echo {uid}", "apt-get": "", "hatch": ""}
    extras.update({name: VENV_STUB.format(log=log) for name in pythons})
    for name, extra in extras.items():
        stub = stubs / name
        stub.write_text(STUB.format(name=name, log=log, extra=extra))
        stub.chmod(0o755)
    (stubs / "dirname").symlink_to("/usr/bin/dirname")
    env = {"PATH": str(stubs), "HOME": str(tmp_path), "SECMON_CI_VENV": str(tmp_path / "venv")}
    result = subprocess.run(["/bin/bash", str(ROOT / ".ci" / "run")], env=env, capture_output=True, text=True)
    return result, [call for call in log.read_text().splitlines() if not call.startswith("id ")]


@pytest.mark.parametrize("pythons", [("python3",), ("python",), ("python3", "python")])
def test_ci_run_finds_python3_or_python(tmp_path, pythons):
    result, calls = run_ci(tmp_path, 1000, pythons)
    assert result.returncode == 0, result.stderr
    assert calls == [
        f"{pythons[0]} -m venv {tmp_path / 'venv'}",
        "venv-python -m pip install -q --upgrade pip hatch",
        "hatch run lint:check",
        "hatch test -p",
    ]


def test_ci_run_without_python_says_so(tmp_path):
    result, calls = run_ci(tmp_path, 1000, ())
    assert result.returncode == 1 and calls == []
    assert result.stderr.strip() == ".ci/run: no python3 (or python) on PATH"


def test_ci_run_installs_every_package_a_skip_names(tmp_path):
    result, calls = run_ci(tmp_path, 0, ("python3",))
    assert result.returncode == 0, result.stderr
    install = next(call.split() for call in calls if call.startswith("apt-get install"))
    wanted = {*machine.TOOL_PACKAGES.values(), "systemd-journal-remote"}
    assert wanted <= set(install), f"not installed by .ci/run: {wanted - set(install)}"
    assert calls[-1] == "hatch test -p"


def test_no_two_test_modules_outside_packages_share_a_name():
    """pytest imports a test folder without __init__.py by basename: a second module of one name
    stops the whole-suite run with "import file mismatch", though each file passes alone."""
    tests = ROOT / "tests"
    seen: dict[str, Path] = {}
    for path in sorted(tests.rglob("test_*.py")):
        if (path.parent / "__init__.py").exists():
            continue
        other = seen.setdefault(path.name, path)
        assert other == path, f"{other.relative_to(ROOT)} and {path.relative_to(ROOT)} share a name"
