"""The hub's per-event cost on the flood path, in one process, without sockets.

Recorded node frames (``--batch`` auth events each, default one; 500 events to
a read, as the relay bench sends them) go through a real node link's read
callback into the real hub, which numbers, stores in its ring and hands the
updates to one subscriber link whose transport only counts bytes. Two figures:

- ``us_per_event``: CPU time per event, best of ``--runs`` (noisy: the machine's
  speed varies);
- ``instructions_per_event`` (with ``--callgrind``): the same path counted by
  valgrind, which is repeatable to a few instructions whatever else the machine
  does; it is (a run relaying N events - the same run without relaying) / N.

``--steady`` is the path at a steady rate instead (``relay.py --rate``): every
read brings one node frame of one event, from 20 nodes in turn, with a turn of
the event loop every 3 reads (what strace shows at 2,000 events/s), so the
per-read costs that a flood spreads over 500 events fall on each one.

The hub judges the events' context as ``secmon hub`` does, from the environment
(SECMON_FLEET_*, GEOIP_*; no state dir): the recorded events are failures from
one source on every node, so past SECMON_FLEET_FAILURES (20) it is *failing*
and every event carries a context; ``SECMON_FLEET_FAILURES=0`` turns the watch
off.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time

from sim import event_frame  # the relay bench's node frames

READ = 500  # events per read
STEADY_NODES = 20  # as in relay.py --nodes 20 --rate 100
READS_PER_TURN = 3  # reads per wake-up of the hub's loop at 2,000 events/s (strace)


class CountingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def get_extra_info(self, name: str, default=None):
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:  # a link still open when its run() is cancelled aborts its transport
        pass


def node_reads(events: int, batch: int) -> list[bytes]:
    """``events`` events, ``batch`` to a node frame, READ events to a read."""
    frames = [event_frame(first, "flood", min(batch, events + 1 - first)) for first in range(1, events + 1, batch)]
    per_read = max(1, READ // batch)
    return [b"".join(frames[i : i + per_read]) for i in range(0, len(frames), per_read)]


async def run(events: int, runs: int, frames_only: bool, batch: int = 1, steady: bool = False) -> list[float]:
    from secmon.config import HubSettings
    from secmon.hub.clients import ClientConnection
    from secmon.hub.context import build_judge
    from secmon.hub.hub import Hub
    from secmon.hub.nodes import NodeConnection
    from secmon.hub.wire import HubLink
    from secmon.protocol import Connection, Role, encode
    from secmon.protocol import messages as m
    from secmon.protocol.batches import EventRunDecoder

    def welcomed(peer: Role, max_queue: int) -> HubLink:
        """A hub-side link past its handshake, as a real one is when it starts relaying."""
        decoder = EventRunDecoder() if peer is Role.NODE else None
        connection = Connection(Role.HUB, peer, keepalive=10, handshake_timeout=10, now=0, decoder=decoder)
        connection.receive_data(encode(m.Hello(m.PROTOCOL_VERSION, peer.value, "bench-node")))
        connection.send(m.Welcome(m.PROTOCOL_VERSION))
        return HubLink(lambda link: None, set(), connection, max_queue=max_queue)

    if steady:
        reads = [event_frame(i // STEADY_NODES + 1, "steady") for i in range(events)]
    else:
        reads = node_reads(events, batch)
    settings = HubSettings.from_env({**os.environ, "SECMON_SOCKET": "/nonexistent/hub.sock"})
    timings = []
    for _ in range(runs):
        hub = Hub(settings, judge=build_judge(settings.context, None, time.monotonic()))
        subscriber = welcomed(Role.CLIENT, 10**9)
        subscriber.connection_made(CountingTransport())
        hub.subscribers.add(ClientConnection(hub, subscriber, None, "bench", m.Requester(0, "bench")))
        nodes, serving = [], []
        for n in range(STEADY_NODES if steady else 1):
            node = welcomed(Role.NODE, 1000)
            node.connection_made(CountingTransport())
            entry = hub.registry.connect(f"bench-node-{n}", "127.0.0.1", f"id{n}", ["auth"], 0)
            conn = NodeConnection(hub, node, entry)
            serving.append(asyncio.create_task(node.run(conn.on_messages, conn.on_event_run)))  # as serve_node runs it
            nodes.append(node)
        await asyncio.sleep(0)  # run() has taken the links: what they read now goes to the node connections
        if frames_only:  # the baseline of --callgrind: everything but the relaying
            for task in serving:
                task.cancel()
            continue
        started = time.process_time()
        if steady:
            for i, data in enumerate(reads):
                nodes[i % STEADY_NODES].data_received(data)
                if i % READS_PER_TURN == READS_PER_TURN - 1:
                    await asyncio.sleep(0)  # the loop's turn: the writes of these reads go out
        else:
            for data in reads:
                nodes[0].data_received(data)
        timings.append((time.process_time() - started) / events * 1e6)
        for task in serving:
            task.cancel()
        if hub.ring.seq - hub.ring.start + 1 < events:  # (a source_failing notice adds one)
            raise RuntimeError("not every event was relayed")
    return timings


def callgrind(events: int, batch: int, steady: bool = False, uvloop: bool = False) -> int:
    """Instructions per event: a run with the hub's work minus a run that only builds the frames."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--callgrind needs valgrind (apt install valgrind)")
    counts = []
    for frames_only in (False, True):
        argv = [sys.executable, __file__, "--events", str(events), "--batch", str(batch), "--runs", "1", "--inner"]
        argv += ["--frames-only"] if frames_only else []
        argv += ["--steady"] if steady else []
        argv += ["--uvloop"] if uvloop else []
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv], capture_output=True, text=True
        )
        match = re.search(r"Collected : (\d+)", result.stderr)
        if match is None:
            raise RuntimeError(result.stderr[-2000:])
        counts.append(int(match[1]))
    return round((counts[0] - counts[1]) / events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1, help="events per node frame (a node sends those of one read)")
    parser.add_argument("--callgrind", action="store_true", help="also count instructions (slow: use --events 3000)")
    parser.add_argument("--steady", action="store_true", help="one event per read, from 20 nodes in turn")
    parser.add_argument("--uvloop", action="store_true", help="on uvloop, as the hub runs (default: asyncio's)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--frames-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    coroutine = run(args.events, args.runs, args.frames_only, args.batch, args.steady)
    if args.uvloop:
        import uvloop

        timings = uvloop.run(coroutine)
    else:
        timings = asyncio.run(coroutine)
    if args.inner:
        return
    figures = {"events": args.events, "batch": args.batch, "steady": args.steady, "uvloop": args.uvloop}
    figures["us_per_event"] = round(min(timings), 2)
    figures["runs_us"] = [round(t, 2) for t in timings]
    if args.callgrind:
        figures["instructions_per_event"] = callgrind(min(args.events, 3000), args.batch, args.steady, args.uvloop)
    print(
        f"hub {'steady' if args.steady else 'flood'} path in-process: "
        f"{figures['us_per_event']} µs CPU per event (best of {args.runs})"
        + (f", {figures['instructions_per_event']} instructions per event" if args.callgrind else "")
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    os.environ.setdefault("SECMON_LOG_LEVEL", "WARNING")
    main()
