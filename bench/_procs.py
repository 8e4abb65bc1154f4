"""Start real hub and node processes for benchmarks (the same way users start them)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


class Proc:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        for line in self.process.stdout:
            if match := regex.search(line):
                return match
            if time.monotonic() > deadline:
                break
        raise RuntimeError(f"no line matching {pattern!r}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def bench_env(**extra: str) -> tuple[dict[str, str], Path]:
    workdir = Path(tempfile.mkdtemp(prefix="smb-", dir="/tmp"))
    env = dict(os.environ)
    env.update(SECMON_SOCKET=str(workdir / "hub.sock"), BIND_PORT="0", PYTHONUNBUFFERED="1", SECMON_LOG_LEVEL="INFO")
    env.update(extra)
    return env, workdir


def start_hub(env: dict[str, str]) -> tuple[Proc, int]:
    hub = Proc([sys.executable, "-m", "secmon", "hub"], env)
    port = int(hub.wait_for(r"listening for nodes on \S+:(\d+)")[1])
    return hub, port


def start_node(env: dict[str, str], port: int, *monitors: str, hostname: str = "bench") -> Proc:
    node_env = {**env, "HUB_PORT": str(port), "SECMON_HOSTNAME": hostname}
    node = Proc([sys.executable, "-m", "secmon", "node", *monitors], node_env)
    node.wait_for(r"connected to hub")
    return node
