"""Reconnect storm: N simulated nodes reconnecting after a hub restart, until all are listed.

The nodes (bench/sim.py, idle, --reconnect) use the real node's backoff: a
first retry after 0.25–0.5 s, doubling with jitter, so they do not all hit the
new hub in the same millisecond. The figure is the time from the restarted
hub's "listening" line to the moment `list` shows every node connected.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import bench_env, connected_nodes, free_port_for, median, sim, start_hub

WORKERS = 2


def wait_connected(socket_path: str, count: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if connected_nodes(socket_path) >= count:
                return time.monotonic() - started
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"not all {count} nodes reconnected within {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    port = free_port_for()
    env, _ = bench_env(BIND_PORT=str(port), SECMON_MAX_NODES=str(args.nodes + 10))
    hub, _ = start_hub(env)
    per = args.nodes // WORKERS
    counts = [per + (args.nodes % WORKERS if w == 0 else 0) for w in range(WORKERS)]
    workers = [
        sim("nodes", "--port", str(port), "--count", str(n), "--first", str(w * per), "--mode", "idle", "--reconnect")
        for w, n in enumerate(counts)
    ]
    times = []
    try:
        first_connect = wait_connected(env["SECMON_SOCKET"], args.nodes, args.timeout)
        for _ in range(args.runs):
            hub.stop()
            hub, _ = start_hub(env)
            times.append(wait_connected(env["SECMON_SOCKET"], args.nodes, args.timeout))
    finally:
        for w in workers:
            w.kill()
        hub.stop()
    figures = {
        "nodes": args.nodes,
        "runs": args.runs,
        "initial_connect_s": round(first_connect, 2),
        "reconnect_storm_s": round(median(times), 2),
        "reconnect_storm_all_s": [round(t, 2) for t in times],
    }
    print(f"{args.nodes} nodes back after a hub restart in {figures['reconnect_storm_s']} s (median of {args.runs})")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
