"""Detection latency: from an auth line reaching the log file to a hub subscriber.

Method: a real hub and a real node (`secmon node auth`, following a log file,
AUTH_LOG) run as processes; this script subscribes through the client library,
then appends one sshd line at a time, stamping time.time() right after the
write is flushed, and stamps time.time() again when the matching AuthUpdate
arrives. Both stamps come from the same clock on this machine. The next line
is written only after the previous one arrived, so samples do not queue, and
after a random pause of up to one follow interval, so writes land at every
phase of the follower's polling instead of right after it looked.

With inotify (Linux) the node is woken when the file is written, so the
latency is the node's and hub's own work; where inotify is unavailable the
follower looks every SECMON_FOLLOW_INTERVAL seconds (default 0.1), which bounds
the median from below at about half of that.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time

import anyio

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _procs import bench_env, start_hub, start_node

from secmon.client import HubClient
from secmon.protocol import messages as m


async def measure(socket: str, log_path, samples: int, interval: float) -> list[float]:
    latencies = []
    async with HubClient.connect(socket) as hub:
        subscription = await hub.subscribe()
        with log_path.open("a") as log:
            for i in range(samples):
                await anyio.sleep(random.uniform(0, interval))
                user = f"bench{i}"
                line = f"2026-11-29T02:09:01.000000+00:00 vm sshd[100]: Invalid user {user} from 192.0.2.1 port 22\n"
                log.write(line)
                log.flush()
                written = time.time()
                with anyio.fail_after(10):
                    async for update in subscription:
                        if type(update) is m.AuthUpdate and update.event.user == user:
                            latencies.append((time.time() - written) * 1000)
                            break
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--follow-interval", type=float, default=None, help="SECMON_FOLLOW_INTERVAL (default: node's)")
    args = parser.parse_args()
    extra = {} if args.follow_interval is None else {"SECMON_FOLLOW_INTERVAL": str(args.follow_interval)}
    env, workdir = bench_env(**extra)
    log_path = workdir / "auth.log"
    log_path.write_text("")
    env["AUTH_LOG"] = str(log_path)
    hub, port = start_hub(env)
    try:
        node = start_node(env, port, "auth")
        try:
            time.sleep(0.5)  # let the follower reach the end of the (empty) file
            interval = float(extra.get("SECMON_FOLLOW_INTERVAL", 0.1))
            latencies = anyio.run(measure, env["SECMON_SOCKET"], log_path, args.samples, interval)
        finally:
            node.stop()
    finally:
        hub.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    figures = {
        "samples": len(latencies),
        "median_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(p99, 2),
        "max_ms": round(latencies[-1], 2),
        "follow_interval_s": float(extra.get("SECMON_FOLLOW_INTERVAL", 0.1)),
    }
    print(
        f"detection latency over {len(latencies)} lines: median {figures['median_ms']} ms, p99 {figures['p99_ms']} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
