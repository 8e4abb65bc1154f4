"""Fixtures for real components: a hub and nodes started as users start them.

Each test gets its own short socket path and lets the hub pick a free port
(BIND_PORT=0, read back from its log line), so tests run in parallel without
colliding. Daemons are stopped by their own pid; waits are on log lines or
hub state, each with a timeout, never on fixed sleeps.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from machine import descendants, missing_tools, record, stop_processes, syslog_lease, temporary_user

if TYPE_CHECKING:
    from fakes import FakeTelegram

WAIT = 15.0  # seconds any awaited event may take before the test fails


def wait_until(predicate: Callable[[], object], timeout: float = WAIT, what: str = "condition") -> object:
    """Poll ``predicate`` until it is truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class Daemon:
    """A process whose output lines are collected, so tests can wait on them.

    Its stdin is a pipe the test never writes to: it stays open, as a terminal would.
    """

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_for(self, pattern: str, timeout: float = WAIT, start: int = 0) -> re.Match[str]:
        """The first line from index ``start`` on that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    if match := regex.search(line):
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    break
                self._changed.wait(min(left, 0.2))
        raise AssertionError(f"{self.name}: no line matching {pattern!r}; output:\n" + "\n".join(self.lines[-30:]))

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._changed:
            return sum(1 for line in self.lines if regex.search(line))

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 10) -> int:
        if self.process.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_telegram_bot(cluster: Cluster, fake: FakeTelegram, owner: int, *modes: str, **extra: str) -> Daemon:
    """``secmon-tg`` as a user starts it, against the fake Bot API, answering ``owner``: ready
    once it polls (and, started with ``upd``, once it follows the hub)."""
    env = {
        **cluster.env,
        "TELEGRAM_BOT_TOKEN": fake.TOKEN,
        "TELEGRAM_USER_ID": str(owner),
        "TELEGRAM_API_URL": fake.api_url,
        "TIMEZONE": "UTC",
        **extra,
    }
    bot = Daemon([sys.executable, "-m", "secmon_telegram", *modes], env, "secmon-tg")
    cluster.daemons.append(bot)
    bot.wait_for("bot polling for messages")
    if "upd" in modes:
        bot.wait_for("following the hub's updates after seq")
    return bot


def secmon_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "secmon", *args]


class Hub(Daemon):
    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(secmon_argv("hub"), env, "hub")
        match = self.wait_for(r"listening for nodes on (\S+):(\d+)")
        self.host, self.port = match[1], int(match[2])
        self.socket = env["SECMON_SOCKET"]


class Cluster:
    """A test's environment, its hub and its nodes; everything is stopped at the end."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.daemons: list[Daemon] = []
        self.hub: Hub | None = None

    def start_hub(self, **extra: str) -> Hub:
        hub = Hub({**self.env, **extra})
        hub.extra = extra
        self.daemons.append(hub)
        self.hub = hub
        return hub

    def stop_hub(self, signum: int = signal.SIGTERM) -> Hub:
        """Stop the hub by signal and wait for it; returns it (its port and settings stay readable)."""
        hub = self.hub
        hub.signal(signum)
        hub.process.wait(WAIT)
        self.daemons.remove(hub)
        return hub

    def restart_hub(self, signum: int = signal.SIGTERM) -> Hub:
        """A new hub on the same socket and port, with the same settings, after the old one stops."""
        old = self.stop_hub(signum)
        return self.start_hub(**{**old.extra, "BIND_PORT": str(old.port)})

    def start_node(self, *monitors: str, hostname: str = "node-a", wait: bool = True, **extra: str) -> Daemon:
        assert self.hub is not None
        env = {
            **self.env,
            "HUB_IP": self.hub.host,
            "HUB_PORT": str(self.hub.port),
            "SECMON_HOSTNAME": hostname,
            **extra,
        }
        node = Daemon(secmon_argv("node", *monitors), env, f"node {hostname}")
        self.daemons.append(node)
        if wait:
            node.wait_for(r"connected to hub .* as node \d+")
        return node

    def wait_auth_ok(self, hostname: str) -> None:
        """Wait until the node follows its auth log: lines written from now on are seen."""
        import json

        def ready() -> bool:
            result = self.cli(hostname, "--json")
            return result.returncode == 0 and json.loads(result.stdout)["auth"] == "ok"

        wait_until(ready, what=f"{hostname} to follow its auth log")

    def start_http(self, **extra: str) -> Daemon:
        """The HTTP bridge on a free port, with the token it makes by default (kept under the workdir).

        Its base URL is in ``.url``; the dashboard URL it prints, token included, in ``.dashboard_url``;
        the token in ``.token`` (None with HTTP_NO_TOKEN) and the header scripts send in ``.auth``.
        """
        env = {
            **self.env,
            "SERVER_IP": "127.0.0.1",
            "SERVER_PORT": "0",
            "XDG_CONFIG_HOME": str(self.workdir / "config"),
            **extra,
        }
        daemon = Daemon([sys.executable, "-m", "secmon_http"], env, "secmon-http")
        self.daemons.append(daemon)
        daemon.url = daemon.wait_for(r"serving on (http://\S+)")[1]
        daemon.dashboard_url = daemon.wait_for(r"dashboard: (http://\S+)")[1]
        token = re.search(r"[?&]token=([^&\s]+)", daemon.dashboard_url)
        daemon.token = token[1] if token else None
        daemon.auth = {"Authorization": f"Bearer {daemon.token}"} if daemon.token else {}
        return daemon

    def cli(self, *args: str, timeout: float = WAIT, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            secmon_argv(*args), env={**self.env, **extra}, capture_output=True, text=True, timeout=timeout
        )

    def allowlist(self, text: str, mode: int = 0o600) -> Path:
        path = self.workdir / "allowlist"
        path.write_text(text)
        path.chmod(mode)
        return path

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short private directory: Unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECMON_", "HUB_", "BIND_", "COMMAND_"))}
    (workdir / "utmp").touch()  # an empty utmp: nobody logged in (a missing one is an error the node reports)
    env.update(
        SECMON_SOCKET=str(workdir / "hub.sock"),
        BIND_IP="127.0.0.1",
        BIND_PORT="0",
        SECMON_KEEPALIVE_INTERVAL="0.5",
        SECMON_HANDSHAKE_TIMEOUT="2",
        SECMON_RECONNECT_MAX="0.5",
        SECMON_SESSIONS_INTERVAL="0.1",
        SECMON_WG_INTERVAL="0.5",
        SECMON_FOLLOW_INTERVAL="0.02",
        AUTH_LOG=str(workdir / "auth.log"),
        SECMON_UTMP=str(workdir / "utmp"),
        PYTHONUNBUFFERED="1",
        NO_COLOR="1",
    )
    return env


@pytest.fixture
def cluster(workdir: Path, base_env: dict[str, str]) -> Iterator[Cluster]:
    c = Cluster(workdir, base_env)
    yield c
    c.stop()


@pytest.fixture
def hub(cluster: Cluster) -> Hub:
    return cluster.start_hub()


@pytest.fixture
def fake_discord(cluster: Cluster):
    """A local webhook server; it outlives the cluster, so the notifier stops first."""
    from fakes import FakeDiscord

    server = FakeDiscord().start()
    yield server
    cluster.stop()
    server.stop()


@pytest.fixture
def fake_telegram(cluster: Cluster):
    """A local Bot API server; it outlives the cluster, so the bot stops first."""
    from fakes import FakeTelegram

    server = FakeTelegram().start()
    yield server
    cluster.stop()
    server.stop()


# --- real system services: rsyslog and OpenSSH -------------------------------------------
# What these fixtures change on the machine is given back at the end (see machine.py).


def require_tools(*tools: str, root: bool = False) -> None:
    """Skip, naming the package to install, when a system tool is missing (or root when needed).

    CI installs every tool (.ci/run), so there a missing one fails the test instead.
    """
    missing = missing_tools(tools, root)
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide {', '.join(missing)} (see .ci/run)")
        pytest.skip(f"needs {', '.join(missing)}")


def require_root_tools(*tools: str) -> None:
    """require_tools for a test that also needs root."""
    require_tools(*tools, root=True)


AUTH_LOGS = (Path("/var/log/auth.log"), Path("/var/log/secure"))  # where a system syslog puts auth


@pytest.fixture
def rsyslog() -> Iterator[Path]:
    """A syslog daemon on /dev/log for this test; yields the file it writes auth messages to.

    The machine's own daemon if it runs one; otherwise a private rsyslogd shared with the
    tests running beside this one and stopped after the last of them.
    """
    require_root_tools("rsyslogd", "logger")
    with syslog_lease() as setup:
        candidates = [Path(setup["auth_log"])] if setup["auth_log"] else list(AUTH_LOGS)
        sizes = {path: path.stat().st_size if path.exists() else 0 for path in candidates}
        marker = f"secmon-test-marker-{os.getpid()}-{time.time()}"
        subprocess.run(["logger", "-p", "auth.info", marker], check=True)

        def written() -> Path | None:
            for path in candidates:
                if path.exists():
                    with path.open("rb") as f:
                        f.seek(sizes[path] if path.stat().st_size >= sizes[path] else 0)
                        if marker.encode() in f.read():
                            return path
            return None

        auth_log = wait_until(written, what=f"syslog to write auth messages to one of {candidates}")
        record("auth_log", str(auth_log))
        yield auth_log


@pytest.fixture
def test_user() -> Iterator[str]:
    """A temporary local user for real ssh logins: random name, no password, removed at the end."""
    require_root_tools("useradd", "userdel")
    with temporary_user() as name:
        yield name


def free_port() -> int:
    import socket as _socket

    with _socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(workdir: Path, rsyslog: Path, test_user: str) -> Iterator[int]:
    """A real OpenSSH server on a free loopback port, logging through rsyslog; yields the port.

    Its configuration and host key are its own (the machine's sshd_config may forbid
    what the tests do), and it lets in only the test's user. Stopping it also ends
    the session processes it forked.
    """
    require_root_tools("/usr/sbin/sshd", "ssh", "ssh-keygen")
    host_key = workdir / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
    port = free_port()
    config = workdir / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {workdir / 'sshd.pid'}\n"
        "UsePAM yes\n"
        "PasswordAuthentication yes\n"
        "KbdInteractiveAuthentication no\n"
        "PermitRootLogin no\n"
        f"AllowUsers {test_user}\n"
        "LogLevel VERBOSE\n"  # as hardening guides advise: refused keys are logged with their fingerprint
    )
    daemon = Daemon(["/usr/sbin/sshd", "-D", "-f", str(config)], {"PATH": os.environ["PATH"]}, "sshd")
    record("sshd", daemon.pid)
    try:
        import socket as _socket

        def listening() -> bool:
            if daemon.process.poll() is not None:
                raise AssertionError("sshd exited:\n" + "\n".join(daemon.lines))
            try:
                _socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return True
            except OSError:
                return False

        wait_until(listening, what="sshd to listen")
        yield port
    finally:
        sessions = descendants(daemon.pid)
        daemon.stop()
        stop_processes(sessions)


# --- certificates for TLS tests ---------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


EC_KEY = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")


def _make_ca(directory: Path, name: str) -> None:
    _openssl("req", "-x509", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}", cwd=directory)  # fmt: skip


def _make_cert(directory: Path, name: str, ca: str, san: str) -> None:
    _openssl("req", *EC_KEY, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
             cwd=directory)  # fmt: skip
    (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext", cwd=directory)  # fmt: skip


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> Path:
    """A CA with a hub and a node certificate, and a second CA with a rogue node certificate."""
    require_tools("openssl")
    directory = tmp_path_factory.mktemp("pki")
    _make_ca(directory, "ca")
    _make_ca(directory, "other-ca")
    _make_cert(directory, "hub", "ca", "IP:127.0.0.1")
    _make_cert(directory, "node", "ca", "DNS:node-a")
    _make_cert(directory, "rogue", "other-ca", "DNS:rogue")
    return directory
