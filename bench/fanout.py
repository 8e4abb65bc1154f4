"""Fan-out: one allowed command on 1, 10 and 100 nodes through the CLI (`secmon - LABEL`).

The nodes are protocol-level simulations (bench/sim.py, command mode) that run
the real command (``sleep 0.5`` by default) as a subprocess for each request,
as a node does. Each size is timed over several runs of the real `secmon`
CLI process; ``time_ratio_100_to_1`` is the median at the largest size over the
median at one node. A serial relay would make it about 100.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import bench_env, connected_nodes, median, sim, start_hub


def wait_for_nodes(socket_path: str, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while connected_nodes(socket_path) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} nodes did not connect")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--command", default="sleep 0.5")
    args = parser.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    env, _ = bench_env(SECMON_LOG_LEVEL="WARNING")
    hub, port = start_hub({**env, "SECMON_LOG_LEVEL": "INFO"})
    timings: dict[int, list[float]] = {}
    workers = []
    try:
        connected = 0
        for size in sizes:
            workers.append(
                sim(
                    "nodes",
                    "--port",
                    str(port),
                    "--count",
                    str(size - connected),
                    "--first",
                    str(connected),
                    "--mode",
                    "command",
                    "--command",
                    args.command,
                )
            )
            connected = size
            wait_for_nodes(env["SECMON_SOCKET"], size)
            timings[size] = []
            for _ in range(args.runs):
                started = time.monotonic()
                run = subprocess.run(
                    [sys.executable, "-m", "secmon", "-", "fanout"], env=env, capture_output=True, text=True
                )
                timings[size].append(time.monotonic() - started)
                if run.returncode != 0 or f"{size} node" not in run.stdout:
                    raise RuntimeError(f"fan-out on {size} failed: {run.stdout[-300:]} {run.stderr[-300:]}")
    finally:
        for w in workers:
            w.kill()
        hub.stop()
    medians = {size: round(median(t), 3) for size, t in timings.items()}
    figures = {"command": args.command, "runs": args.runs, "seconds": medians}
    figures["time_ratio_100_to_1"] = round(medians[sizes[-1]] / medians[sizes[0]], 3)
    summary = ", ".join(f"{size} nodes {seconds} s" for size, seconds in medians.items())
    print(f"`secmon - fanout` running {args.command!r}: {summary}; ratio {figures['time_ratio_100_to_1']}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
