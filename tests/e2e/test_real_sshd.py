"""The collectors against a real OpenSSH server, rsyslog, su and sudo.

A real hub and a real node follow /var/log/auth.log and utmp; the test logs in
with a key and with a wrong password, runs su and sudo, and checks what a
subscriber of the hub receives.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest
from conftest import WAIT, Daemon, require_root_tools, secmon_argv, wait_until

pytestmark = pytest.mark.sshd


@pytest.fixture(autouse=True)
def _tools() -> None:
    """Every tool the test and its fixtures run, checked before any fixture changes the machine."""
    require_root_tools("/usr/sbin/sshd", "ssh", "ssh-keygen", "rsyslogd", "logger", "useradd", "userdel", "su", "sudo")


def ssh_argv(port: int, key: Path, *extra: str) -> list[str]:
    return [
        "ssh", "-p", str(port),
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR", "-i", str(key), *extra,
    ]  # fmt: skip


class Events:
    """The JSON lines of a `secmon subscribe --json` process."""

    def __init__(self, cluster) -> None:
        self.process = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "subscribe")

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.process.lines if line.startswith("{")]

    def auth(self, **match) -> dict:
        def find():
            for update in self.all():
                event = update.get("event")
                if update["type"] == "auth" and all(event.get(k) == v for k, v in match.items()):
                    return update
            return None

        return wait_until(find, what=f"auth event {match}")

    def sessions(self, predicate) -> list:
        def find():
            for update in reversed(self.all()):
                if update["type"] == "node" and isinstance(update["node"]["sessions"], list):
                    sessions = update["node"]["sessions"]
                    return (sessions,) if predicate(sessions) else None  # a tuple: [] is a valid answer
            return None

        return wait_until(find, what="sessions to match")[0]


def test_logins_su_and_sudo_reach_a_subscriber(cluster, workdir, sshd, rsyslog, test_user):
    home = Path(pwd.getpwnam(test_user).pw_dir)
    key = workdir / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    user = pwd.getpwnam(test_user)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, user.pw_uid, user.pw_gid)
    gate = home / "gate"
    gate.unlink(missing_ok=True)

    cluster.start_hub()
    cluster.start_node("who", "auth", hostname="real", AUTH_LOG=str(rsyslog), SECMON_UTMP="/var/run/utmp")
    events = Events(cluster)
    events.process.wait_for(r'"auth": "ok"')

    # 1. A key login with a terminal, held open until we have seen its session.
    session = Daemon(
        ssh_argv(
            sshd,
            key,
            "-tt",
            f"{test_user}@127.0.0.1",
            f"echo client=$SSH_CLIENT; while [ ! -e {gate} ]; do sleep 0.05; done",
        ),
        {"PATH": os.environ["PATH"]},
        "ssh",
    )
    client_port = int(session.wait_for(r"client=127\.0\.0\.1 (\d+) ")[1])
    accepted = events.auth(kind="ssh_accepted", user=test_user, port=client_port)
    assert accepted["event"]["host"] == "127.0.0.1"
    assert accepted["event"]["method"] == "publickey"
    assert accepted["event"]["process"] in ("sshd", "sshd-session")
    assert isinstance(accepted["event"]["pid"], int)
    assert accepted["hostname"] == "real"
    open_sessions = events.sessions(lambda s: any(x["user"] == test_user and x["host"] == "127.0.0.1" for x in s))
    assert any(x["tty"].startswith("pts/") for x in open_sessions if x["user"] == test_user)
    gate.touch()
    assert session.process.wait(WAIT) == 0
    events.sessions(lambda s: not any(x["user"] == test_user for x in s))
    events.auth(kind="ssh_disconnected", user=test_user, port=client_port)

    # 2. A wrong password, typed by SSH_ASKPASS so no terminal is needed.
    askpass = workdir / "askpass"
    askpass.write_text("#!/bin/sh\necho wrong-password\n")
    askpass.chmod(0o755)
    wrong = subprocess.run(
        ssh_argv(
            sshd,
            key,
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "NumberOfPasswordPrompts=1",
            f"{test_user}@127.0.0.1",
            "true",
        ),
        env={"PATH": os.environ["PATH"], "SSH_ASKPASS": str(askpass), "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=WAIT,
    )
    assert wrong.returncode == 255
    failed = events.auth(kind="ssh_failed_password", user=test_user)
    assert failed["event"]["host"] == "127.0.0.1" and failed["event"]["failure"] is True

    # 3. su and sudo, run by root without a terminal.
    subprocess.run(["su", "-s", "/bin/sh", "-c", "true", "nobody"], check=True, timeout=WAIT)
    opened = events.auth(kind="su_opened", target_user="nobody")
    assert opened["event"]["process"] == "su"
    events.auth(kind="su_closed", target_user="nobody")
    subprocess.run(["sudo", "-u", "nobody", "/usr/bin/true"], check=True, timeout=WAIT)
    sudo = events.auth(kind="sudo_command", user="root", target_user="nobody")
    assert sudo["event"]["command"] == "/usr/bin/true"
    events.process.stop()


def attempt(port: int, key: Path, user: str, *extra: str) -> subprocess.CompletedProcess:
    """One ssh login that must fail: no terminal, no password prompt, only the keys given."""
    argv = ssh_argv(port, key, "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", *extra, f"{user}@127.0.0.1", "true")
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT)
    assert result.returncode == 255, result.stderr
    return result


def test_what_an_attacker_leaves_reaches_a_subscriber_with_the_host(cluster, workdir, sshd, rsyslog, test_user):
    """An invalid user, an AllowUsers refusal, a refused key, a pre-auth close and MaxAuthTries."""
    keys = []
    for n in range(7):  # none of them authorised: sshd's MaxAuthTries (6) runs out on the last
        key = workdir / f"stranger_{n}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        keys.append(key)
    cluster.start_hub()
    cluster.start_node("auth", hostname="real", AUTH_LOG=str(rsyslog))
    events = Events(cluster)
    events.process.wait_for(r'"auth": "ok"')

    attempt(sshd, keys[0], "no-such-user-x")
    invalid = events.auth(kind="ssh_invalid_user", user="no-such-user-x")
    assert (invalid["event"]["host"], invalid["event"]["failure"]) == ("127.0.0.1", True)

    attempt(sshd, keys[0], "nobody")  # exists, but the server's AllowUsers lists only the test's user
    refused = events.auth(kind="ssh_user_refused", user="nobody")
    assert refused["event"]["host"] == "127.0.0.1"

    # One stranger's key offered, then the client gives up: sshd logs the close before login.
    attempt(sshd, keys[0], test_user)
    closed = events.auth(kind="ssh_closed_preauth", user=test_user)
    assert closed["event"]["host"] == "127.0.0.1" and isinstance(closed["event"]["port"], int)

    # Seven strangers' keys in one connection: refused keys (logged at VERBOSE, as the fixture's
    # sshd runs), then too many failures.
    many = [arg for key in keys for arg in ("-i", str(key))]
    attempt(sshd, keys[0], test_user, *many)
    too_many = events.auth(kind="ssh_too_many_failures", user=test_user)
    assert too_many["event"]["host"] == "127.0.0.1"
    key_refused = events.auth(kind="ssh_failed_publickey", user=test_user, port=too_many["event"]["port"])
    assert key_refused["event"]["host"] == "127.0.0.1" and key_refused["event"]["failure"] is True
    events.process.stop()
