"""Relay throughput and latency: simulated nodes → hub → subscriber(s).

Flood: ``--nodes N --events M`` (M events per node, as fast as the hub takes
them). Steady: ``--nodes N --rate R --seconds S`` (R events a second per
node, each stamped with the wall clock when sent; the subscriber stamps it
again on arrival). Nodes and subscribers are protocol-level clients in
separate processes (bench/sim.py). Hub CPU comes from /proc/<hub>/stat
before and after; peak RSS from VmHWM.

In the same run the same workload goes through a raw asyncio forwarder that
splits frames by their length header and passes the bytes on without
decoding; ``ratio_to_raw`` is the hub's events/s over the forwarder's.
With ``--c-floor`` the workload also goes through the same forwarder written
in C (bench/c_forwarder.c, built with the system's cc): what waking, reading
and writing cost on this machine before any language or protocol work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import (
    bench_env,
    cpu_seconds,
    median,
    memory_kb,
    percentile,
    result,
    sim,
    start_hub,
    wait_line,
)

from secmon.hub.server import loop_options
from secmon.protocol import encode
from secmon.protocol import messages as m

# --pin: the server under test gets a core to itself and the simulated load the other, so
# the figure is the server's capacity rather than its share of a contended machine.
SERVER_CPUS, LOAD_CPUS = {1}, {0}
WORKERS = 2  # node worker processes; the hub gets what is left of the machine


def node_args(args, port: int, worker: int) -> list[str]:
    per = args.nodes // WORKERS + (1 if worker < args.nodes % WORKERS else 0)
    first = sum(args.nodes // WORKERS + (1 if w < args.nodes % WORKERS else 0) for w in range(worker))
    base = ["nodes", "--port", str(port), "--count", str(per), "--first", str(first)]
    if args.rate:
        return [*base, "--mode", "rate", "--rate", str(args.rate), "--seconds", str(args.seconds)]
    return [*base, "--mode", "flood", "--events", str(args.events), "--batch", str(args.batch)]


def expected(args) -> int:
    if args.rate:
        return int(args.nodes * args.rate * args.seconds)
    return args.nodes * args.events


def run_once(args, server_pid: int, port: int, socket_path: str, raw: bool) -> dict:
    want = expected(args)
    subscriber_flags = ["--latency"] if args.rate else []
    if raw:
        subscriber_flags.append("--raw")
    # steady mode loses a few events to timing at the edges; accept 99 % of the nominal count
    target = want if not args.rate else int(want * 0.99)
    subscribers = [
        sim(
            "subscribe",
            "--socket",
            socket_path,
            "--expect",
            str(target),
            "--timeout",
            str(args.timeout),
            *subscriber_flags,
        )
        for _ in range(args.subscribers)
    ]
    for s in subscribers:
        wait_line(s, "subscribed")
    cpu_before = cpu_seconds(server_pid)
    started = time.monotonic()
    workers = [sim(*node_args(args, port, w)) for w in range(WORKERS)]
    if args.pin:
        for process in (*subscribers, *workers):
            os.sched_setaffinity(process.pid, LOAD_CPUS)
    results = [result(s, args.timeout + 30) for s in subscribers]
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(server_pid) - cpu_before
    for w in workers:
        w.kill()
        w.wait()
    received = min(r["received"] for r in results)
    seconds = max(r["seconds"] for r in results) or elapsed
    latencies = [x for r in results for x in r["latencies_ms"]]
    figures = {
        "events": received,
        "events_per_s": round(received / seconds) if seconds else 0,
        "cpu_us_per_event": round(cpu / max(received, 1) * 1e6, 2),
    }
    if latencies:
        figures.update(p50_ms=round(median(latencies), 3), p99_ms=round(percentile(latencies, 0.99), 3))
    return figures


# --- the raw forwarder ----------------------------------------------------------------


def forwarder_welcome() -> bytes:
    """What both forwarders greet a node with once its first frame is whole: a Welcome as from a hub."""
    return encode(m.Welcome(m.PROTOCOL_VERSION, 1, 0, 10.0))


async def raw_forwarder(port_file: str, socket_path: str) -> None:
    subscribers: list[asyncio.StreamWriter] = []
    welcome = forwarder_welcome()

    async def on_node(reader, writer) -> None:
        buffer = b""
        greeted = False
        while data := await reader.read(256 * 1024):
            buffer += data
            end = 0
            while len(buffer) - end >= 4:
                length = int.from_bytes(buffer[end : end + 4], "big")
                if len(buffer) - end - 4 < length:
                    break
                end += 4 + length
            if not greeted and end:
                writer.write(welcome)
                greeted = True
            if end:
                frames, buffer = buffer[:end], buffer[end:]
                for s in subscribers:
                    if s.is_closing():  # a subscriber that has gone, not yet forgotten
                        continue
                    s.write(frames)
                    if s.transport.get_write_buffer_size() > 8 * 1024 * 1024:
                        await s.drain()

    async def on_client(reader, writer) -> None:
        await reader.read(4096)  # hello and subscribe; answered by nothing but the stream
        subscribers.append(writer)
        await reader.read()
        subscribers.remove(writer)

    tcp = await asyncio.start_server(on_node, "127.0.0.1", 0)
    unix = await asyncio.start_unix_server(on_client, socket_path)
    Path(port_file).write_text(str(tcp.sockets[0].getsockname()[1]))  # noqa: ASYNC240 - once, at start
    async with tcp, unix:
        await asyncio.Event().wait()


def build_c_forwarder(workdir: Path) -> Path:
    """Compile bench/c_forwarder.c with the system's C compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise SystemExit("--c-floor needs a C compiler (apt install gcc)")
    binary = workdir / "c_forwarder"
    subprocess.run([compiler, "-O2", "-o", str(binary), str(Path(__file__).with_name("c_forwarder.c"))], check=True)
    return binary


def start_raw(workdir: Path, c_binary: Path | None = None) -> tuple[subprocess.Popen, int, str]:
    """The Python forwarder, or with ``c_binary`` the C one; its process, port and socket."""
    port_file = workdir / "raw.port"
    socket_path = str(workdir / "raw.sock")
    if c_binary is None:
        argv = [sys.executable, __file__, "--serve-raw", str(port_file), socket_path]
    else:
        argv = [str(c_binary), str(port_file), socket_path, forwarder_welcome().hex()]
    process = subprocess.Popen(argv)
    deadline = time.monotonic() + 10
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError("raw forwarder did not start")
        time.sleep(0.02)
    return process, int(port_file.read_text()), socket_path


def run_forwarder(args, workdir: Path, c_binary: Path | None = None) -> dict:
    raw, raw_port, raw_socket = start_raw(workdir, c_binary)
    if args.pin:
        os.sched_setaffinity(raw.pid, SERVER_CPUS)
    try:
        return run_once(args, raw.pid, raw_port, raw_socket, raw=True)
    finally:
        raw.kill()
        raw.wait()
        Path(raw_socket).unlink(missing_ok=True)
        (workdir / "raw.port").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--events", type=int, default=2000, help="flood: events per node")
    parser.add_argument(
        "--batch", type=int, default=1, help="flood: events per node frame (a real node sends those of one read)"
    )
    parser.add_argument("--rate", type=float, default=0, help="steady: events per second per node")
    parser.add_argument("--seconds", type=float, default=10, help="steady: how long")
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--runs", type=int, default=1, help="repeat and report medians")
    parser.add_argument("--timeout", type=float, default=120)
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the hub (or forwarder) on CPU 1, the simulated nodes and subscribers on CPU 0",
    )
    parser.add_argument(
        "--c-floor", action="store_true", help="also run the workload through the forwarder written in C"
    )
    parser.add_argument("--serve-raw", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_raw:
        # the forwarder runs on the same kind of event loop as the hub
        if loop_options():
            import uvloop

            uvloop.run(raw_forwarder(*args.serve_raw))
        else:
            asyncio.run(raw_forwarder(*args.serve_raw))
        return
    env, workdir = bench_env(SECMON_SUBSCRIBER_QUEUE="10000000")
    c_binary = build_c_forwarder(workdir) if args.c_floor else None
    hub_runs, raw_runs, c_runs, peak = [], [], [], 0
    for _ in range(args.runs):
        hub, port = start_hub(env)
        if args.pin:
            os.sched_setaffinity(hub.process.pid, SERVER_CPUS)
        try:
            hub_runs.append(run_once(args, hub.process.pid, port, env["SECMON_SOCKET"], raw=False))
            peak = max(peak, memory_kb(hub.process.pid, "VmHWM"))
        finally:
            hub.stop()
        raw_runs.append(run_forwarder(args, workdir))
        if c_binary is not None:
            c_runs.append(run_forwarder(args, workdir, c_binary))

    def mid(runs: list[dict], key: str) -> float:
        return median([r[key] for r in runs if key in r]) if any(key in r for r in runs) else None

    figures = {
        "mode": "steady" if args.rate else "flood",
        "batch": 1 if args.rate else args.batch,
        "pinned": args.pin,
        "nodes": args.nodes,
        "subscribers": args.subscribers,
        "runs": args.runs,
        "events_per_s": mid(hub_runs, "events_per_s"),
        "hub_cpu_us_per_event": mid(hub_runs, "cpu_us_per_event"),
        "p50_ms": mid(hub_runs, "p50_ms"),
        "p99_ms": mid(hub_runs, "p99_ms"),
        "hub_peak_rss_kb": peak,
        "raw_events_per_s": mid(raw_runs, "events_per_s"),
        "raw_cpu_us_per_event": mid(raw_runs, "cpu_us_per_event"),
    }
    if c_runs:
        figures.update(c_events_per_s=mid(c_runs, "events_per_s"), c_cpu_us_per_event=mid(c_runs, "cpu_us_per_event"))
    if args.rate:  # the forwarders' latency: what the machine adds before any hub work
        for name, runs in (("raw", raw_runs), ("c", c_runs)):
            if runs:
                figures.update({f"{name}_p50_ms": mid(runs, "p50_ms"), f"{name}_p99_ms": mid(runs, "p99_ms")})
    if figures["events_per_s"] and figures["raw_events_per_s"]:
        figures["ratio_to_raw"] = round(figures["events_per_s"] / figures["raw_events_per_s"], 3)
    print(
        f"{figures['mode']}, {args.nodes} nodes → {args.subscribers} subscriber(s), median of {args.runs}: "
        f"hub {figures['events_per_s']} events/s at {figures['hub_cpu_us_per_event']} µs CPU/event; "
        f"raw forwarder {figures['raw_events_per_s']} events/s at {figures['raw_cpu_us_per_event']} µs; "
        + (
            f"C forwarder {figures['c_events_per_s']} events/s at {figures['c_cpu_us_per_event']} µs; "
            if c_runs
            else ""
        )
        + (f"latency p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms; " if figures["p50_ms"] is not None else "")
        + f"hub peak RSS {peak} KiB"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
