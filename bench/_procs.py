"""Start real hub and node processes for benchmarks (the same way users start them)."""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path


class Proc:
    """A daemon whose output is drained by a thread (so it never blocks) and can be waited on."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, pattern: str, timeout: float = 20) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if match := regex.search(line):
                    return match
            seen = len(self.lines)
            if self.process.poll() is not None and seen == len(self.lines):
                break
            time.sleep(0.01)
        raise RuntimeError(f"no line matching {pattern!r}: {''.join(self.lines[-5:])}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


def bench_env(**extra: str) -> tuple[dict[str, str], Path]:
    """The environment of a bench's daemons, and their directory (removed when the bench exits)."""
    workdir = Path(tempfile.mkdtemp(prefix="smb-", dir="/tmp"))
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def sim(*args: str) -> subprocess.Popen:
    """A worker of simulated nodes or a subscriber (bench/sim.py) in its own process."""
    here = Path(__file__).resolve().parent
    return subprocess.Popen(
        [sys.executable, str(here / "sim.py"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def result(process: subprocess.Popen, timeout: float = 300) -> dict:
    import json

    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"worker failed: {err[-2000:]}")
    return json.loads(lines[-1])


def wait_line(process: subprocess.Popen, text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for line in process.stderr:
        if text in line:
            return
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"no {text!r} from worker")


def connected_nodes(socket_path: str) -> int:
    import anyio

    from secmon.client import HubClient

    async def count() -> int:
        async with HubClient.connect(socket_path, timeout=30) as hub:
            return sum(n.connected for n in await hub.list_nodes())

    try:
        return anyio.run(count)
    except Exception:  # a hub busy accepting thousands of nodes may not answer in time: count again later
        return -1


def median(values: list[float]) -> float:
    import statistics

    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def free_port_for() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
