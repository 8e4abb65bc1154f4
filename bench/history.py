"""The hub's event history: what keeping an event costs, and how fast a month of a busy fleet answers.

Fills a history (SQLite in a temporary state directory, as a hub with
SECMON_STATE_DIR keeps it) with ``--events`` auth events spread over
``--days``, from ``--nodes`` nodes, written as the hub writes them: runs of
events added one per node read, flushed in batches of ``--batch``. Then times
the queries an operator and the dashboard make, each the median of
``--runs``:

- ``events``: the latest 100 events, the latest 100 failures of one user, the
  latest 100 from one /16 network, the latest 100 of one node
- ``stats``: failures and successes per hour over the whole range, per day
  grouped by node, and the top 10 sources and users

Insertion cost is process CPU time (µs per event) of the writes alone: rows
built, inserted with ``executemany`` and committed, retention included.
``--memory`` fills a history without a state dir instead (try ``--events
100000``, its default bound): the cost is then the adds themselves, and every
query reads the events held.
The last line is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "core" / "src"))

from secmon.hub.history import EventHistory, Retention
from secmon.protocol import messages as m
from secmon.protocol.batches import EventOrigin

KINDS = [("ssh_failed_password", 60), ("ssh_invalid_user", 20), ("ssh_closed_preauth", 8), ("ssh_accepted", 5),
         ("ssh_disconnected", 4), ("sudo_command", 2), ("su_opened", 1)]  # fmt: skip


def fleet_events(count: int, days: float, nodes: int, seed: int = 7, uniform: bool = False) -> list[tuple[int, dict]]:
    """``count`` events (node index, event map) in time order over the last ``days``.

    Sources and users are skewed as brute-force traffic is (a few sources make most
    attempts, at a few common user names): the weight of the i-th is 1/(i+1). With
    ``uniform``, every source and user is as likely as any other: the worst case for
    the rollups, which then hold about as many rows as there are events.
    """
    rng = random.Random(seed)
    kinds = [k for k, weight in KINDS for _ in range(weight)]
    sources = [f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
               for _ in range(5000)] + [f"2001:db8:{i:x}::{i % 97 + 1:x}" for i in range(500)]  # fmt: skip
    users = ["root", "admin", "ubuntu", "test", "oracle", "postgres", "git", "deploy"] + [
        f"user{i}" for i in range(200)
    ]
    source_weights = None if uniform else [1 / (i + 1) for i in range(len(sources))]
    user_weights = None if uniform else [1 / (i + 1) for i in range(len(users))]
    picked_sources = rng.choices(sources, source_weights, k=count)
    picked_users = rng.choices(users, user_weights, k=count)
    start = time.time() - days * 86_400
    step = days * 86_400 / count
    out = []
    for i in range(count):
        kind = rng.choice(kinds)
        pid = rng.randrange(1000, 99999)
        event = {"seq": i + 1, "time": start + i * step, "kind": kind, "process": "sshd", "pid": pid,
                 "user": picked_users[i], "host": picked_sources[i], "port": rng.randrange(1024, 65535)}  # fmt: skip
        if kind == "ssh_accepted":
            event["method"] = "publickey"
        out.append((rng.randrange(nodes), event))
    return out


def fill(history: EventHistory, events: list[tuple[int, dict]], nodes: int, batch: int) -> tuple[float, int]:
    """Write the events as the hub does: one run per event (a node's read), flushed every ``batch``.

    Returns CPU seconds spent writing (in memory: adding, loop included), and the last sequence.
    """
    origins = [EventOrigin(n + 1, f"node-{n + 1:03d}", f"10.0.{n // 250}.{n % 250 + 1}") for n in range(nodes)]
    seq = 1_000_000
    cpu = 0.0
    in_memory = history.path is None
    for offset in range(0, len(events), batch):
        started = time.process_time()
        for node, event in events[offset : offset + batch]:
            history.add(seq, origins[node], f"id-{node}", [event])
            seq += 1
        if not in_memory:  # on disk the relay's part is an append: the write is the cost
            started = time.process_time()
        history._write(history._take())
        cpu += time.process_time() - started
    return cpu, seq - 1


def timed(runs: int, call) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument(
        "--batch", type=int, default=2000, help="events per write (2,000 events/s, flushed once a second)"
    )
    parser.add_argument("--uniform", action="store_true", help="sources and users all equally likely (the worst case)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="fill the history in this (new) directory and leave it there")
    parser.add_argument("--memory", action="store_true", help="the history in memory (no state dir): try 100000")
    args = parser.parse_args()

    events = fleet_events(args.events, args.days, args.nodes, uniform=args.uniform)
    with tempfile.TemporaryDirectory(prefix="sm-history-") as scratch:
        directory = str(args.keep or scratch)
        where = None if args.memory else Path(directory)
        history = EventHistory(where, Retention(days=args.days + 1, max_events=args.events))
        cpu, last = fill(history, events, args.nodes, args.batch)
        insert_us = cpu / len(events) * 1e6
        size = sum(p.stat().st_size for p in Path(directory).iterdir())
        print(f"inserted {len(events):,} events {'in memory' if args.memory else f'in batches of {args.batch}'}: "
              f"{insert_us:.2f} µs CPU per event; {size / len(events):.0f} bytes per event on disk")  # fmt: skip

        now = time.time()
        user = events[-1][1]["user"]
        network = (
            ".".join(events[-1][1]["host"].split(".")[:2]) + ".0.0/16" if "." in events[-1][1]["host"] else "10.0.0.0/8"
        )
        queries = {
            "events_latest": m.EventFilter(),
            "events_user_failures": m.EventFilter(user=user, failures=True),
            "events_network": m.EventFilter(source=network),
            "events_node": m.EventFilter(nodes=["node-007"]),
            "events_rare_kind_7d": m.EventFilter(kinds=["su_opened"], since_time=now - 7 * 86_400),
        }
        figures: dict[str, float] = {"events": len(events), "insert_cpu_us_per_event": round(insert_us, 2),
                                     "bytes_per_event": round(size / len(events))}  # fmt: skip
        for name, query in queries.items():
            ms, (found, more) = timed(args.runs, lambda q=query: history.select_events(q, 100, last))
            figures[f"{name}_ms"] = round(ms, 2)
            print(f"{name}: {ms:.1f} ms ({len(found)} events{', more' if more else ''})")
        since = now - args.days * 86_400
        stats = {
            "stats_time_hourly": m.QueryStats(1, m.EventFilter(since_time=since), bucket=3600),
            "stats_time_daily_by_node": m.QueryStats(1, m.EventFilter(since_time=since), bucket=86_400, group="node"),
            "stats_time_hourly_failures_24h": m.QueryStats(
                1, m.EventFilter(since_time=now - 86_400, failures=True), bucket=3600
            ),
            "stats_source": m.QueryStats(1, m.EventFilter(since_time=since), by="source"),
            "stats_source_24h": m.QueryStats(1, m.EventFilter(since_time=now - 86_400), by="source"),
            "stats_user": m.QueryStats(1, m.EventFilter(since_time=since), by="user"),
        }  # fmt: skip
        for name, request in stats.items():
            ms, answer = timed(args.runs, lambda r=request: history.select_stats(r, last, now))
            figures[f"{name}_ms"] = round(ms, 2)
            assert isinstance(answer, m.EventStats)
            size = sum(len(s.failures) for s in answer.series) or len(answer.rows)
            print(f"{name}: {ms:.1f} ms ({len(answer.series)} series, {size} points or rows)")
        history.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
