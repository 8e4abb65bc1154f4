"""A node given several hubs (HUB_ADDRS) moves to the next when its hub dies, and loses nothing.

Two independent hubs (no cluster between them) on free loopback ports, each with its own
socket; the node and the subscribers are real processes. Waits are on a hub's `list` or a
process's output, never on fixed sleeps.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import WAIT, Daemon, free_port, secmon_argv, wait_until

LOG_TIME = "%Y-%m-%d %H:%M:%S,%f"  # logging's asctime, as the daemons log it

# Prints every auth event the hub on SECMON_SOCKET broadcasts, from its first.
SUBSCRIBER = """
import logging
import anyio
from secmon.client import follow_updates
from secmon.protocol import messages as m

logging.basicConfig(level=logging.INFO)  # says "following the hub's updates" once subscribed

async def main():
    async with follow_updates(since=0) as updates:
        async for u in updates:
            if type(u) is m.AuthUpdate:
                print("EV", u.hostname, u.event.user, flush=True)

anyio.run(main)
"""


def line(i: int) -> str:
    return f"2026-11-30T00:20:01+00:00 vm sshd[{1000 + i}]: Invalid user ev{i} from 192.0.2.1 port {1024 + i}\n"


def write_events(log: Path, numbers: range) -> None:
    with log.open("a") as f:
        f.writelines(line(i) for i in numbers)


def subscriber(cluster, socket: str, name: str) -> Daemon:
    daemon = Daemon([sys.executable, "-c", SUBSCRIBER], {**cluster.env, "SECMON_SOCKET": socket}, name)
    cluster.daemons.append(daemon)
    daemon.wait_for("following the hub's updates")
    return daemon


def events_seen(daemon: Daemon) -> list[str]:
    return [x.split()[2] for x in list(daemon.lines) if x.startswith("EV ")]


def connected_on(cluster, hub) -> list[str]:
    """Hostnames the hub lists as connected."""
    result = cluster.cli("list", "--json", SECMON_SOCKET=hub.socket)
    return [n["hostname"] for n in json.loads(result.stdout) if n["connected"]] if result.returncode == 0 else []


def two_hubs(cluster, workdir: Path, **extra: str):
    """Hub A on the cluster's socket (so `cluster.cli` asks it), hub B on a socket of its own."""
    a = cluster.start_hub(**extra)
    b = cluster.start_hub(SECMON_SOCKET=str(workdir / "b.sock"), **extra)
    cluster.hub = a
    return a, b


def addrs(*hubs) -> str:
    return ",".join(f"127.0.0.1:{hub.port}" for hub in hubs)


def test_a_node_moves_to_the_next_hub_and_resends_what_its_hub_did_not_acknowledge(cluster, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    a, b = two_hubs(cluster, workdir)
    state = workdir / "node-state"
    node = cluster.start_node(
        "auth", "--reconnect", hostname="mover", wait=False, HUB_ADDRS=addrs(a, b), SECMON_STATE_DIR=str(state)
    )
    node.wait_for(rf"connected to hub 127\.0\.0\.1:{a.port} as node \d+")
    # start_node also sets HUB_IP and HUB_PORT (to A): HUB_ADDRS wins, and the node says so once.
    node.wait_for("HUB_IP and HUB_PORT ignored: HUB_ADDRS is set")
    cluster.wait_auth_ok("mover")
    on_b = subscriber(cluster, b.socket, "subscriber on B")

    def unacknowledged() -> int:
        with sqlite3.connect(state / "node.sqlite3") as db:
            return db.execute("SELECT count(*) FROM events").fetchone()[0]

    on_a = subscriber(cluster, a.socket, "subscriber on A")
    write_events(log, range(5))
    wait_until(lambda: "ev4" in events_seen(on_a), what="the first events on hub A")
    wait_until(lambda: unacknowledged() == 0, what="hub A to acknowledge them")

    # Freeze the node, kill its hub and log while it cannot notice: these events are written while it moves.
    node.signal(signal.SIGSTOP)
    try:
        a.signal(signal.SIGKILL)
        a.process.wait(WAIT)
        write_events(log, range(5, 10))
    finally:
        node.signal(signal.SIGCONT)
    started = time.monotonic()
    wait_until(lambda: connected_on(cluster, b) == ["mover"], what="the node on hub B")
    moved_in = time.monotonic() - started
    write_events(log, range(10, 12))
    wait_until(lambda: "ev11" in events_seen(on_b), what="the events on hub B")
    assert events_seen(on_b) == [f"ev{i}" for i in range(5, 12)]  # exactly once each, in order; none of A's
    wait_until(lambda: unacknowledged() == 0, what="hub B to acknowledge them")
    assert moved_in < 5
    down = node.wait_for(
        rf"^(\S+ \S+) .*hub link down: lost the hub at 127\.0\.0\.1:{a.port} after [\d.]+ s: .*; "
        rf"trying the hub at 127\.0\.0\.1:{b.port} now"
    )
    up = node.wait_for(
        rf"^(\S+ \S+) .*connected to hub 127\.0\.0\.1:{b.port} as node \d+ "
        rf"\(moved from the hub at 127\.0\.0\.1:{a.port}\)"
    )
    logged = (datetime.strptime(up[1], LOG_TIME) - datetime.strptime(down[1], LOG_TIME)).total_seconds()
    print(f"node: welcomed by hub B {logged:.3f} s after it logged the loss of A; on B's list {moved_in:.2f} s after")


def test_an_unreachable_first_hub_is_skipped_at_once(cluster, workdir):
    b = cluster.start_hub(BIND_IP="::1")  # the second, on IPv6: written in brackets
    nobody = free_port()  # nothing listens there
    started = time.monotonic()
    node = cluster.start_node(hostname="skipper", wait=False, HUB_ADDRS=f"127.0.0.1:{nobody},[::1]:{b.port}")
    node.wait_for(rf"connected to hub \[::1\]:{b.port} as node \d+")
    took = time.monotonic() - started  # mostly the interpreter starting
    print(f"connected to the second hub {took:.2f} s after start")
    assert took < 5
    refusal = node.wait_for(rf"cannot reach the hub at 127\.0\.0\.1:{nobody}: connection refused \((.*)\); (.*)")
    assert "HUB_ADDRS" in refusal[1] and refusal[2] == f"trying the hub at [::1]:{b.port} now"
    assert node.count("retrying with backoff") == 0  # no wait between two different hubs
    assert connected_on(cluster, b) == ["skipper"]


def test_without_reconnect_a_node_tries_each_hub_once_and_exits_with_one_line(cluster, workdir):
    a, b = two_hubs(cluster, workdir)
    node = cluster.start_node(hostname="once", wait=False, HUB_ADDRS=addrs(a, b))
    node.wait_for(rf"connected to hub 127\.0\.0\.1:{a.port} as node")
    a.signal(signal.SIGKILL)
    a.process.wait(WAIT)
    wait_until(lambda: connected_on(cluster, b) == ["once"], what="the node on hub B")  # moved, not exited
    assert node.process.poll() is None
    b.signal(signal.SIGKILL)
    b.process.wait(WAIT)
    assert node.process.wait(WAIT) == 1
    last = [x for x in node.lines if x.startswith("secmon: ")]
    assert len(last) == 1 and "Traceback" not in "\n".join(node.lines)
    # The round after B's loss: B's own loss, then A, which is gone: each hub tried once.
    assert last[0].startswith(f"secmon: no hub kept us, each tried once: lost the hub at 127.0.0.1:{b.port} after ")
    assert f"; cannot reach the hub at 127.0.0.1:{a.port}: connection refused" in last[0]


def test_tls_checks_each_hub_by_the_host_its_address_names(cluster, workdir, certificates):
    tls = {"SECMON_TLS_CERT": str(certificates / "hub.pem"), "SECMON_TLS_KEY": str(certificates / "hub.key")}
    a, b = two_hubs(cluster, workdir, **tls)
    # The hubs' certificate names IP 127.0.0.1 only: dialled as "localhost", hub A must be refused.
    node = cluster.start_node(
        hostname="strict",
        wait=False,
        HUB_ADDRS=f"localhost:{a.port},127.0.0.1:{b.port}",
        SECMON_TLS_CA=str(certificates / "ca.pem"),
    )
    node.wait_for(rf"connected to hub 127\.0\.0\.1:{b.port} as node \d+")
    refusal = rf"TLS with the hub at localhost:{a.port}: the hub's certificate is not trusted \((.*?)\)"
    untrusted = node.wait_for(refusal)
    assert "localhost" in untrusted[1]
    assert connected_on(cluster, b) == ["strict"] and connected_on(cluster, a) == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("127.0.0.1:9992,,127.0.0.1:9993", "HUB_ADDRS: item 2 of 3 is empty"),
        ("127.0.0.1:9992,127.0.0.1:99999", "HUB_ADDRS: '127.0.0.1:99999' has no valid port"),
        ("127.0.0.1:9992,127.0.0.1:9992", "HUB_ADDRS: '127.0.0.1:9992' is listed twice"),
        ("::1:9992", "HUB_ADDRS: '::1:9992' looks like an IPv6 address: put it in brackets"),
    ],
)
def test_a_bad_hub_addrs_stops_the_node_and_check_with_one_line(cluster, value, words):
    Path(cluster.env["AUTH_LOG"]).write_text("")
    node = Daemon(secmon_argv("node", "--reconnect"), {**cluster.env, "HUB_ADDRS": value}, "node")
    assert node.process.wait(WAIT) == 2
    assert len(node.lines) == 1 and node.lines[0].startswith(f"secmon: {words}")
    check = cluster.cli("check", "node", HUB_ADDRS=value)
    assert check.returncode == 2 and check.stderr.splitlines() == [node.lines[0].replace("secmon:", "secmon check:")]


def test_check_says_hub_ip_and_hub_port_are_ignored(cluster):
    Path(cluster.env["AUTH_LOG"]).write_text("")
    assert cluster.cli("check", "node", HUB_ADDRS="127.0.0.1:9992,[::1]:9992").returncode == 0
    both = cluster.cli("check", "node", HUB_ADDRS="127.0.0.1:9992", HUB_IP="10.0.0.1")
    assert both.returncode == 0  # it works as it is: worth a note, not a problem
    assert both.stderr == "secmon check: note: HUB_IP ignored: HUB_ADDRS is set and lists the hubs to use\n"
