"""Simulated nodes and subscribers that speak the wire protocol, for benchmarks.

They use the same sans-IO codec as the daemons over plain asyncio streams,
and run in worker processes of their own, so the hub under test has the
machine's other core to itself as far as possible. Each worker prints one
JSON line of results on stdout when it is done.

    python bench/sim.py nodes --port P --count 250 --mode idle|flood|rate ...
    python bench/sim.py subscribe --socket S --expect N
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import uuid

import msgpack

from secmon.protocol import FrameDecoder, encode
from secmon.protocol import messages as m

READ = 256 * 1024


async def hello(reader, writer, hostname: str, node_id: str) -> m.Welcome:
    writer.write(encode(m.Hello(m.PROTOCOL_VERSION, m.ROLE_NODE, hostname, node_id, ["auth"])))
    await writer.drain()
    decoder = FrameDecoder()
    while True:
        data = await reader.read(READ)
        if not data:
            raise ConnectionError("hub closed the connection during hello")
        for message in decoder.feed(data):
            if type(message) is m.Welcome:
                return message
            if type(message) is m.Error:
                raise ConnectionError(message.message)


async def drain_acks(reader) -> None:
    """Read (and ignore) acks and keepalives, so the hub never blocks on us."""
    while await reader.read(READ):
        pass


async def node(args, index: int, stats: dict) -> None:
    hostname = f"{args.prefix}{index}"
    node_id = uuid.uuid4().hex
    delay = 0.5
    while True:
        try:
            reader, writer = await asyncio.open_connection(args.host, args.port)
            welcome = await hello(reader, writer, hostname, node_id)
        except (OSError, ConnectionError):
            if not args.reconnect:
                stats["failed"] += 1
                return
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # the same backoff as the real node
            delay = min(delay * 2, 30)
            continue
        delay = 0.5
        stats["connected"] += 1
        writer.write(encode(m.StateUpdate(sessions=[], wg_peers=m.NOT_MONITORED, auth=m.AUTH_OK)))
        acks = asyncio.ensure_future(drain_acks(reader))
        if args.mode == "flood":
            await flood(writer, args, stats)
        elif args.mode == "rate":
            await steady(writer, args, stats)
        elif args.mode == "command":
            acks.cancel()
            acks = asyncio.ensure_future(answer_commands(reader, writer, args.command.split()))
        keepalive = encode(m.Keepalive())
        while not acks.done():  # stay connected until the hub (or the bench) ends us
            writer.write(keepalive)
            await asyncio.wait([acks], timeout=welcome.keepalive)  # as often as a real node: once a quiet interval
        writer.close()
        if not args.reconnect or args.mode != "idle":
            return


def event_frame(seq: int, user: str, count: int = 1) -> bytes:
    """One AuthEvents frame of ``count`` events from ``seq``, packed straight from maps (the bench client
    must not be the bottleneck)."""
    now = time.time()
    events = [{"seq": s, "time": now, "kind": "ssh_failed_password", "process": "sshd", "pid": 1,
               "user": user, "host": "192.0.2.1", "port": 22} for s in range(seq, seq + count)]  # fmt: skip
    body = msgpack.packb({"t": "auth_events", "events": events})
    return len(body).to_bytes(4, "big") + body


async def flood(writer, args, stats: dict) -> None:
    """Send ``--events`` events as fast as the hub takes them, ``--batch`` to a frame, 200 to a write."""
    seq = 0
    chunk = 200
    while seq < args.events:
        frames = []
        for first in range(seq + 1, min(seq + chunk, args.events) + 1, args.batch):
            count = min(args.batch, args.events - first + 1)
            frames.append(event_frame(first, "flood", count))
            seq = first + count - 1
        writer.write(b"".join(frames))
        await writer.drain()
    stats["sent"] += seq


async def steady(writer, args, stats: dict) -> None:
    """Send ``--rate`` events a second for ``--seconds``, each stamped when sent."""
    interval = 1.0 / args.rate
    start = time.monotonic() + random.uniform(0, interval)
    seq = 0
    while time.monotonic() - start < args.seconds:
        seq += 1
        writer.write(event_frame(seq, "steady"))
        stats["sent"] += 1
        await asyncio.sleep(max(0.0, start + seq * interval - time.monotonic()))


async def answer_commands(reader, writer, argv: list[str]) -> None:
    """Run ``argv`` for every RunCommand, as a node whose allowlist maps every label to it."""
    decoder = FrameDecoder()

    async def run(request: m.RunCommand) -> None:
        process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        output, _ = await process.communicate()
        status = m.SUCCESS if process.returncode == 0 else m.FAILURE
        writer.write(encode(m.CommandResult(request.request_id, status, process.returncode, output.decode())))

    running = set()
    while data := await reader.read(READ):
        for message in decoder.feed(data):
            if type(message) is m.RunCommand:
                task = asyncio.ensure_future(run(message))
                running.add(task)
                task.add_done_callback(running.discard)


async def run_nodes(args) -> dict:
    stats = {"connected": 0, "failed": 0, "sent": 0}
    tasks = [asyncio.ensure_future(node(args, args.first + i, stats)) for i in range(args.count)]
    if args.mode in ("idle", "command"):
        await asyncio.sleep(args.hold)
        for t in tasks:
            t.cancel()
    else:
        await asyncio.gather(*tasks, return_exceptions=True)
    return stats


async def run_subscriber(args) -> dict:
    reader, writer = await asyncio.open_unix_connection(args.socket)
    writer.write(encode(m.Hello(m.PROTOCOL_VERSION, m.ROLE_CLIENT)) + encode(m.Subscribe(1, None)))
    await writer.drain()
    buffer = b""
    received = 0
    latencies = []
    first = last = None
    print("subscribed", file=sys.stderr, flush=True)
    deadline = time.monotonic() + args.timeout
    want = ("auth_events",) if args.raw else ("auth_update", "auth_updates")
    while received < args.expect and time.monotonic() < deadline:
        try:
            data = await asyncio.wait_for(reader.read(READ), timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            break
        if not data:
            break
        now = time.time()
        buffer += data
        offset = 0
        # Frames are split by their headers and unpacked without validation: counting, not checking.
        while len(buffer) - offset >= 4:
            length = int.from_bytes(buffer[offset : offset + 4], "big")
            if len(buffer) - offset - 4 < length:
                break
            message = msgpack.unpackb(buffer[offset + 4 : offset + 4 + length])
            offset += 4 + length
            if message.get("t") not in want:
                continue
            events = message["events"] if "events" in message else [message["event"]]
            received += len(events)
            last = time.monotonic()
            first = first or last
            if args.latency:
                latencies.extend((now - e["time"]) * 1000 for e in events)
        buffer = buffer[offset:]
    writer.close()
    return {"received": received, "seconds": (last - first) if first and last else 0.0, "latencies_ms": latencies}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what", required=True)
    nodes = sub.add_parser("nodes")
    nodes.add_argument("--host", default="127.0.0.1")
    nodes.add_argument("--port", type=int, required=True)
    nodes.add_argument("--count", type=int, default=1)
    nodes.add_argument("--first", type=int, default=0)
    nodes.add_argument("--prefix", default="sim-")
    nodes.add_argument("--mode", choices=["idle", "flood", "rate", "command"], default="idle")
    nodes.add_argument("--command", default="true", help="command mode: what every label runs")
    nodes.add_argument("--events", type=int, default=0)
    nodes.add_argument("--batch", type=int, default=1, help="flood: events per frame")
    nodes.add_argument("--rate", type=float, default=0)
    nodes.add_argument("--seconds", type=float, default=0)
    nodes.add_argument("--hold", type=float, default=3600)
    nodes.add_argument("--reconnect", action="store_true")
    subscriber = sub.add_parser("subscribe")
    subscriber.add_argument("--socket", required=True)
    subscriber.add_argument("--expect", type=int, required=True)
    subscriber.add_argument("--timeout", type=float, default=120)
    subscriber.add_argument("--latency", action="store_true")
    subscriber.add_argument("--raw", action="store_true", help="count events in node frames (raw forwarder)")
    args = parser.parse_args()
    try:
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    result = asyncio.run(run_nodes(args) if args.what == "nodes" else run_subscriber(args))
    print(json.dumps({"pid": os.getpid(), **result}), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
