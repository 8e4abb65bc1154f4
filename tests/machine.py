"""What the real-service tests borrow from the machine, and how each thing is given back.

Tests that drive a real sshd need a syslog daemon on /dev/log, /run/sshd, a utmp
file and a local user. /dev/log is one per machine, so the syslog daemon is shared
by every test process (xdist workers, nested pytest runs): each test takes a lease
on it; the first lease sets up what is missing and records what it did, the last
one undoes exactly that. A syslog daemon that was running before is never stopped.
The record lives in REGISTRY under a lock, with the pid (and start time) of each
lease holder, so a holder that died without releasing is noticed and its share
given back by the next test. Users are temporary: a random name, no password
(key logins only), removed with their home at the end, even when the test fails.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar

REGISTRY = Path("/run/secmon-tests")  # on tmpfs: a reboot also forgets every lease
STOP_WAIT = 10.0  # seconds a process we started may take to exit on SIGTERM before SIGKILL

# The Debian package that brings each tool a test runs, named in skip messages.
# .ci/run installs every one of them (tests/e2e/test_suite_hygiene.py checks that).
TOOL_PACKAGES = {
    "sshd": "openssh-server",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "rsyslogd": "rsyslog",
    "logger": "bsdutils",
    "useradd": "passwd",
    "userdel": "passwd",
    "groupadd": "passwd",
    "groupdel": "passwd",
    "su": "util-linux",
    "setpriv": "util-linux",
    "sudo": "sudo",
    "chromium": "chromium",
    "openssl": "openssl",
    "python3": "python3",
    "wg": "wireguard-tools",
    "journalctl": "systemd",
    "systemd-analyze": "systemd",
    "systemd-journal-remote": "systemd-journal-remote",
}

T = TypeVar("T")
USER_PREFIX = "smt-"  # temporary users are smt- and 8 random hex digits


def missing_tools(tools: tuple[str, ...], root: bool) -> list[str]:
    """One "tool (apt install package)" per tool not installed, and "root" when needed and not had."""
    missing = []
    for tool in tools:
        found = os.access(tool, os.X_OK) if "/" in tool else shutil.which(tool) is not None
        if not found:
            name = Path(tool).name
            package = TOOL_PACKAGES.get(name)
            missing.append(f"{name} (apt install {package})" if package else name)
    if root and os.geteuid() != 0:
        missing.append("root")
    return missing


def record(kind: str, value: object) -> None:
    """Note what a fixture created, for the suite-hygiene test that checks it is gone afterwards."""
    if path := os.environ.get("SECMON_TEST_RECORD"):
        with open(path, "a") as f:
            f.write(json.dumps({kind: value}) + "\n")


# --- processes, by pid ------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, ...


def process_identity(pid: int) -> str | None:
    """``pid:start-time`` of a live process, None for a gone or zombie one (pids are reused)."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return f"{pid}:{fields[19]}"


def process_alive(pid: int) -> bool:
    return process_identity(pid) is not None


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (an sshd's session processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat_fields(int(entry.name))):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_processes(pids: list[int], timeout: float = STOP_WAIT) -> None:
    """SIGTERM each process, wait for all to go, SIGKILL those still there."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        pids = [p for p in pids if process_alive(p)]
        if not pids:
            return
    raise RuntimeError(f"processes {pids} survived SIGKILL")


def processes_of(uid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(FileNotFoundError, ProcessLookupError):
                if entry.stat().st_uid == uid and process_alive(int(entry.name)):
                    pids.append(int(entry.name))
    return pids


# --- the shared syslog daemon and system paths ------------------------------------------


def syslog_alive() -> bool:
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        probe.connect("/dev/log")
        return True
    except OSError:
        return False
    finally:
        probe.close()


@contextmanager
def _registry_locked() -> Iterator[Path]:
    """REGISTRY, locked; the last holder removes it, so a waiter checks it locked the live one."""
    while True:
        REGISTRY.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(REGISTRY, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(REGISTRY).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                current = False
            if current:
                yield REGISTRY / "state.json"
                return
        finally:
            os.close(fd)


def _load(path: Path) -> dict:
    state = json.loads(path.read_text()) if path.exists() else {"leases": [], "setup": None, "users": []}
    state["leases"] = [lease for lease in state["leases"] if process_identity(int(lease.split(":")[0])) == lease]
    return state


def _save(path: Path, state: dict) -> None:
    if state["leases"] or state["users"]:
        path.write_text(json.dumps(state))
    else:
        path.unlink(missing_ok=True)
        path.parent.rmdir()


def _start_syslog(setup: dict) -> None:
    """A private rsyslogd on /dev/log that writes only auth and authpriv to a file of its own."""
    directory = Path(tempfile.mkdtemp(prefix="sm-syslog-", dir="/tmp"))
    setup["rsyslogd_dir"] = str(directory)
    if not os.path.lexists("/dev/log"):
        setup["created"].append("/dev/log")  # rsyslogd removes it on exit; this covers a SIGKILL
    conf = directory / "rsyslog.conf"
    conf.write_text(
        'module(load="imuxsock")\n'
        '$FileCreateMode 0600\n'
        f"auth,authpriv.* {directory / 'auth.log'}\n"
    )  # fmt: skip
    pidfile = directory / "rsyslogd.pid"
    with open(directory / "rsyslogd.err", "w+") as errors:  # not a pipe: the daemon would hold it open
        argv = ["rsyslogd", "-f", str(conf), "-i", str(pidfile)]
        started = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors)
        errors.seek(0)
        if started.returncode != 0:
            raise RuntimeError(f"rsyslogd failed to start: {errors.read().strip()}")
    pid = int(pidfile.read_text())
    setup["rsyslogd"] = pid
    setup["auth_log"] = str(directory / "auth.log")
    record("rsyslogd", pid)
    deadline = time.monotonic() + STOP_WAIT
    while not syslog_alive():
        if time.monotonic() > deadline:
            raise RuntimeError("rsyslogd does not listen on /dev/log")
        time.sleep(0.02)


def _set_up() -> dict:
    """Provide what is missing, recording each change so that _undo can revert exactly it."""
    setup: dict = {"created": [], "rsyslogd": None, "rsyslogd_dir": None, "auth_log": None}
    try:
        privsep = Path("/run/sshd")  # sshd refuses to start without its privilege-separation directory
        if not privsep.exists():
            privsep.mkdir(mode=0o755)
            setup["created"].append(str(privsep))
        utmp = Path("/var/run/utmp")
        if not utmp.exists():  # a fresh container has none, and sshd then records no session
            setup["created"].append(str(utmp))
            utmp.touch()
            utmp.chmod(0o664)
            with suppress(KeyError):
                import grp

                os.chown(utmp, 0, grp.getgrnam("utmp").gr_gid)
        if not syslog_alive():
            _start_syslog(setup)
    except BaseException:
        _undo(setup)
        raise
    return setup


def _undo(setup: dict) -> None:
    if setup["rsyslogd"] and process_alive(setup["rsyslogd"]):
        cmdline = Path(f"/proc/{setup['rsyslogd']}/cmdline").read_bytes()
        if setup["rsyslogd_dir"].encode() in cmdline:  # ours, not a process that took its pid
            stop_processes([setup["rsyslogd"]])
    if setup["rsyslogd_dir"]:
        shutil.rmtree(setup["rsyslogd_dir"], ignore_errors=True)
    for created in reversed(setup["created"]):
        path = Path(created)
        if path.is_dir() and not path.is_symlink():
            with suppress(OSError):  # left if something else put files in it meanwhile
                path.rmdir()
        else:
            path.unlink(missing_ok=True)


def _remove_stale_users(state: dict) -> None:
    for user in list(state["users"]):
        if process_identity(int(user["owner"].split(":")[0])) != user["owner"]:
            remove_user(user["name"])
            state["users"].remove(user)


def _reclaim(state: dict) -> None:
    """Give back what holders that died without releasing still hold."""
    _remove_stale_users(state)
    if not state["leases"] and state["setup"]:
        _undo(state["setup"])
        state["setup"] = None


def when_idle(look: Callable[[], T]) -> T | None:
    """``look()`` at the machine while no test holds anything of it (so it is as found), else None."""
    with _registry_locked() as path:
        state = _load(path)
        _reclaim(state)
        result = None if state["leases"] or state["users"] else look()
        _save(path, state)
    return result


@contextmanager
def syslog_lease() -> Iterator[dict]:
    """Hold the shared syslog daemon, /run/sshd and utmp for a test; yields the setup record."""
    me = process_identity(os.getpid())
    with _registry_locked() as path:
        state = _load(path)
        _reclaim(state)
        if state["setup"] is None:
            state["setup"] = _set_up()
        state["leases"].append(me)
        _save(path, state)
    try:
        yield state["setup"]
    finally:
        with _registry_locked() as path:
            state = _load(path)
            if me in state["leases"]:
                state["leases"].remove(me)
            if not state["leases"] and state["setup"]:
                _undo(state["setup"])
                state["setup"] = None
            _save(path, state)


# --- temporary users ---------------------------------------------------------------------


def remove_user(name: str) -> None:
    """Remove a temporary user, its home and its login records, ending its processes first."""
    import pwd

    try:
        uid = pwd.getpwnam(name).pw_uid
    except KeyError:
        return
    deadline = time.monotonic() + STOP_WAIT
    while (left := processes_of(uid)) and time.monotonic() < deadline:  # a session still closing
        time.sleep(0.05)
    if left:
        stop_processes(left)
    if shutil.which("lastlog"):  # so a later user given the same uid inherits no last login
        subprocess.run(["lastlog", "--clear", "--user", name], capture_output=True)
    result = subprocess.run(["userdel", "--remove", name], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"userdel {name} failed: {result.stderr.strip()}")
    with suppress(KeyError):
        pwd.getpwnam(name)
        raise RuntimeError(f"user {name} still exists after userdel")


@contextmanager
def temporary_user() -> Iterator[str]:
    """A new local user with a random name, a home and a shell, and no password: only keys log in."""
    name = USER_PREFIX + secrets.token_hex(4)
    me = process_identity(os.getpid())
    with _registry_locked() as path:  # so the next test removes it if this process dies first
        state = _load(path)
        state["users"].append({"name": name, "owner": me})
        _save(path, state)
    created = False
    try:
        # "!" in the password field: no password matches, whatever sshd's PasswordAuthentication.
        subprocess.run(
            ["useradd", "--create-home", "--shell", "/bin/sh", "--password", "!", name],
            check=True,
            capture_output=True,
        )
        created = True
        record("user", name)
        yield name
    finally:
        if created:  # useradd refuses a name that exists: that user is not ours to remove
            remove_user(name)
        with _registry_locked() as path:
            state = _load(path)
            state["users"] = [u for u in state["users"] if u["name"] != name]
            _save(path, state)
