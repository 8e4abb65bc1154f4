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

import pytest

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
    """A process whose stderr lines are collected, so tests can wait on them."""

    def __init__(self, argv: list[str], env: dict[str, str], name: str) -> None:
        self.name = name
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
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
        self.daemons.append(hub)
        self.hub = hub
        return hub

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


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short private directory: Unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sm-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def base_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECMON_", "HUB_", "BIND_", "COMMAND_"))}
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
