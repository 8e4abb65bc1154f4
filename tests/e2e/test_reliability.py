"""No lost events: faults at random points, restarts, slow subscribers, persistent state."""

from __future__ import annotations

import json
import random
import signal
import socket
import sqlite3
import sys
import threading
import time
from pathlib import Path

import msgpack
from conftest import WAIT, Daemon, free_port, secmon_argv, wait_until
from fakes import ChaosProxy

# A subscriber that never gives up: follow_updates reconnects and resumes by sequence.
FOLLOWER = """
import logging
import anyio
from secmon.client import follow_updates
from secmon.protocol import messages as m

logging.basicConfig(level=logging.INFO)

async def main():
    async with follow_updates(since=0) as updates:
        async for u in updates:
            if type(u) is m.AuthUpdate:
                print("EV", u.hostname, u.event.user, u.event.seq, flush=True)

anyio.run(main)
"""


def follower(cluster) -> Daemon:
    daemon = Daemon([sys.executable, "-c", FOLLOWER], cluster.env, "follower")
    cluster.daemons.append(daemon)
    return daemon


def events_seen(daemon: Daemon) -> list[str]:
    return [line.split()[2] for line in list(daemon.lines) if line.startswith("EV ")]


def line(i: int) -> str:
    return f"2026-11-29T02:09:01+00:00 vm sshd[{1000 + i}]: Invalid user ev{i} from 192.0.2.1 port {1024 + i}\n"


def test_chaos_every_event_exactly_once_in_order(cluster, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    state = workdir / "hub-state"
    port = free_port()
    cluster.start_hub(BIND_PORT=str(port), SECMON_STATE_DIR=str(state))
    proxy = ChaosProxy(port)
    node = cluster.start_node("auth", "--reconnect", hostname="chaos", HUB_PORT=str(proxy.port))
    cluster.wait_auth_ok("chaos")
    sub = follower(cluster)
    sub.wait_for("following the hub's updates", timeout=WAIT)

    total = 400
    done = threading.Event()

    def writer() -> None:
        with log.open("a") as f:
            for i in range(total):
                f.write(line(i))
                f.flush()
                time.sleep(0.02)  # a steady stream: about 50 events a second
        done.set()

    threading.Thread(target=writer, daemon=True).start()
    rng = random.Random(20261129)
    faults = ["cut"] * 6 + ["hub-term", "hub-kill", "stop-node"]
    rng.shuffle(faults)
    for fault in faults:
        time.sleep(rng.uniform(0.2, 0.8))
        if fault == "cut":
            proxy.cut()
        elif fault.startswith("hub"):
            cluster.restart_hub(signal.SIGTERM if fault == "hub-term" else signal.SIGKILL)
        else:
            node.signal(signal.SIGSTOP)
            time.sleep(2.0)  # past three keepalive intervals (0.5 s): the hub must drop it
            node.signal(signal.SIGCONT)
    assert done.wait(60)
    expected = [f"ev{i}" for i in range(total)]
    wait_until(lambda: len(events_seen(sub)) >= total, timeout=60, what="every event to arrive")
    assert events_seen(sub) == expected  # exactly once, in order
    assert proxy.cuts == 6
    proxy.close()


def test_a_restarted_node_with_a_state_dir_delivers_what_it_held(cluster, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    node_state = workdir / "node-state"
    port = free_port()
    env = {"HUB_PORT": str(port), "SECMON_STATE_DIR": str(node_state)}
    # No hub yet: the node collects and keeps events it cannot deliver.
    node = Daemon(secmon_argv("node", "auth", "--reconnect"), {**cluster.env, **env, "SECMON_HOSTNAME": "keeper"}, "n")
    cluster.daemons.append(node)
    node.wait_for("cannot reach the hub")
    wait_until(lambda: (node_state / "node.sqlite3").exists())
    with log.open("a") as f:
        f.writelines(line(i) for i in range(3))

    def journaled() -> int:
        with sqlite3.connect(node_state / "node.sqlite3") as db:
            return db.execute("SELECT count(*) FROM events").fetchone()[0]

    wait_until(lambda: journaled() == 3, what="three events in the node's journal")
    node.signal(signal.SIGKILL)
    node.process.wait(WAIT)
    cluster.start_hub(BIND_PORT=str(port))
    sub = follower(cluster)
    sub.wait_for("following the hub's updates")
    cluster.start_node("auth", "--reconnect", hostname="keeper", **env)
    wait_until(lambda: len(events_seen(sub)) == 3, what="the held events")
    assert events_seen(sub) == ["ev0", "ev1", "ev2"]
    wait_until(lambda: journaled() == 0, what="the journal to empty once acknowledged")


def test_resume_after_a_hub_restart_with_state_is_exact(cluster, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    state = workdir / "hub-state"
    port = free_port()
    cluster.start_hub(BIND_PORT=str(port), SECMON_STATE_DIR=str(state), SECMON_RING_SIZE="5")
    cluster.start_node("auth", "--reconnect", hostname="alpha")
    cluster.wait_auth_ok("alpha")
    first = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "first")
    first.wait_for('"auth": "ok"')
    with log.open("a") as f:
        f.writelines(line(i) for i in range(20))
    first.wait_for('"ev19"')
    first.stop()
    seqs = [json.loads(x)["seq"] for x in first.lines if x.startswith("{")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    cluster.restart_hub()
    # Resuming from just before the end: exactly the two updates that followed, from before the restart.
    late = Daemon(secmon_argv("subscribe", "--since", str(seqs[-3]), "--json"), cluster.env, "late")
    late.wait_for('"ev19"')
    assert [json.loads(x)["seq"] for x in late.lines if x.startswith("{")][:2] == seqs[-2:]
    # Resuming from far back: told exactly how many updates the ring no longer holds.
    old = Daemon(secmon_argv("subscribe", "--since", str(seqs[0]), "--json"), cluster.env, "old")
    missed = int(old.wait_for(r"secmon: (\d+) updates after \d+ are no longer held")[1])
    oldest_held = json.loads(old.wait_for(r"^\{.*")[0])["seq"]
    assert missed == oldest_held - seqs[0] - 1 > 0


def test_a_subscriber_that_stops_reading_is_dropped_and_others_are_not(cluster, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    hub = cluster.start_hub(SECMON_SUBSCRIBER_QUEUE="200")
    cluster.start_node("auth", hostname="alpha")
    cluster.wait_auth_ok("alpha")
    stuck = socket.socket(socket.AF_UNIX)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(hub.socket)
    for message in ({"t": "hello", "version": 1, "role": "client"}, {"t": "subscribe", "request_id": 1}):
        body = msgpack.packb(message)
        stuck.sendall(len(body).to_bytes(4, "big") + body)
    good = follower(cluster)
    good.wait_for("following the hub's updates")
    total = 8000  # enough that what the stuck one is owed outgrows the socket buffers and the queue
    with log.open("a") as f:
        f.writelines(line(i) for i in range(total))
    hub.wait_for(r"dropped: subscriber too slow: more than 200 updates queued; resume with since=\d+")
    wait_until(lambda: len(events_seen(good)) == total, timeout=60, what="the good subscriber to get everything")
    assert events_seen(good) == [f"ev{i}" for i in range(total)]
    status = Path(f"/proc/{hub.pid}/status").read_text().splitlines()
    peak_kb = int(next(x for x in status if x.startswith("VmHWM")).split()[1])
    print(f"hub peak RSS {peak_kb} KiB after {total} events with a stuck subscriber")
    assert peak_kb < 200 * 1024
    stuck.close()
