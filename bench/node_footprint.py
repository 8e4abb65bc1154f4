"""A real node's footprint with every collector on, beside the cost of spawning `who` each second.

`secmon node who wg auth` runs for --seconds (default 60) against this
machine's utmp, a stand-in `wg` on PATH (a shell script printing a dump of two
peers, so the WireGuard path runs without a kernel module), and an auth log
file. Its CPU comes from /proc before and after, its RSS at the end. In the
same run, the original design's cost is measured: spawning `who` once a
second for the same time, CPU of the children from getrusage.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import Proc, bench_env, cpu_seconds, memory_kb, start_hub

FAKE_WG = """#!/bin/sh
printf 'wg0\\tcHJpdmF0ZQ==\\tcHVibGlj\\t51820\\toff\\n'
printf 'wg0\\tcGVlcjE=\\t(none)\\t203.0.113.5:51820\\t10.9.0.2/32\\t1764382000\\t1\\t2\\t25\\n'
printf 'wg0\\tcGVlcjI=\\t(none)\\t(none)\\t10.9.0.3/32\\t0\\t0\\t0\\toff\\n'
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    env, workdir = bench_env()
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    (bin_dir / "wg").write_text(FAKE_WG)
    (bin_dir / "wg").chmod(0o755)
    log = workdir / "auth.log"
    log.write_text("")
    env.update(PATH=f"{bin_dir}:{os.environ['PATH']}", AUTH_LOG=str(log))
    hub, port = start_hub(env)
    try:
        node = Proc([sys.executable, "-m", "secmon", "node", "who", "wg", "auth"], {**env, "HUB_PORT": str(port)})
        node.wait_for("connected to hub")
        time.sleep(2)  # past start-up: imports and the first polls are not the steady state
        pid = node.process.pid
        cpu_before = cpu_seconds(pid)
        time.sleep(args.seconds)
        node_cpu = cpu_seconds(pid) - cpu_before
        rss = memory_kb(pid)
        node.stop()
    finally:
        hub.stop()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    runs = 0
    while time.monotonic() - started < args.seconds:
        subprocess.run(["who"], stdout=subprocess.DEVNULL, check=False)
        runs += 1
        time.sleep(max(0.0, started + runs - time.monotonic()))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    who_cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
    figures = {
        "seconds": args.seconds,
        "cpu_pct": round(node_cpu / args.seconds * 100, 3),
        "rss_kb": rss,
        "who_spawn_cpu_pct": round(who_cpu / args.seconds * 100, 3),
        "who_spawns": runs,
    }
    print(
        f"node with who, wg and auth for {args.seconds:g} s: {figures['cpu_pct']} % of a core, RSS {rss} KiB; "
        f"spawning `who` once a second costs {figures['who_spawn_cpu_pct']} % by itself"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
