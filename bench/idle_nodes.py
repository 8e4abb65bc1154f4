"""Memory and CPU of the hub with N idle nodes connected (default 10,000).

Raises the file limit for the hub and the simulated nodes itself. Reports the
hub's RSS growth per connected node (RSS with all nodes minus RSS before
any), the time for all to connect, and the hub's CPU while they sit idle
exchanging keepalives (one hub process, no threads per node).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import bench_env, connected_nodes, cpu_seconds, memory_kb, sim, start_hub

WORKERS = 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--idle-seconds", type=float, default=10)
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the hub and the workers
    if hard < args.nodes + 100:
        raise SystemExit(f"the file limit ({hard}) is below {args.nodes} nodes")
    env, _ = bench_env(SECMON_MAX_NODES=str(args.nodes + 10), SECMON_LOG_LEVEL="WARNING")
    hub, port = start_hub({**env, "SECMON_LOG_LEVEL": "INFO"})
    pid = hub.process.pid
    try:
        connected_nodes(env["SECMON_SOCKET"])  # warm: the first client connection allocates a little
        before = memory_kb(pid)
        started = time.monotonic()
        per = args.nodes // WORKERS
        workers = [
            sim(
                "nodes",
                "--port",
                str(port),
                "--count",
                str(per + (args.nodes % WORKERS if w == 0 else 0)),
                "--first",
                str(w * per),
                "--mode",
                "idle",
                "--reconnect",
            )
            for w in range(WORKERS)
        ]
        while connected_nodes(env["SECMON_SOCKET"]) < args.nodes:
            if time.monotonic() - started > 300:
                raise RuntimeError("nodes did not all connect")
            time.sleep(0.2)
        connect_s = time.monotonic() - started
        after = memory_kb(pid)
        cpu_before = cpu_seconds(pid)
        time.sleep(args.idle_seconds)
        idle_cpu = (cpu_seconds(pid) - cpu_before) / args.idle_seconds * 100
        for w in workers:
            w.kill()
    finally:
        hub.stop()
    figures = {
        "nodes": args.nodes,
        "rss_kb_per_node": round((after - before) / args.nodes, 2),
        "hub_rss_kb": after,
        "connect_s": round(connect_s, 2),
        "idle_cpu_pct": round(idle_cpu, 2),
        "keepalive_s": 10,
    }
    print(
        f"{args.nodes} idle nodes: {figures['rss_kb_per_node']} KiB each, connected in {figures['connect_s']} s, "
        f"hub idle CPU {figures['idle_cpu_pct']} % of a core"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
