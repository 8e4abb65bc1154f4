"""A hub of the cluster is killed: its nodes move to another hub (HUB_ADDRS) and nothing is lost or doubled.

The moved node is welcomed with what the cluster holds from it, so it resends
exactly what the cluster lacks; the cluster's own check drops anything resent
twice all the same.
"""

from __future__ import annotations

import signal
import threading
import time

from conftest import wait_until

from .test_cluster import auth_updates, line, subscriber


def test_sigkill_of_a_hub_moves_its_nodes_and_loses_no_event(three_hubs):
    group = three_hubs
    a, b = group.hubs["a"], group.hubs["b"]
    addresses = f"127.0.0.1:{b.port},127.0.0.1:{a.port}"  # b first, then a
    node = group.start_node("b", "moving", HUB_ADDRS=addresses)
    group.start_node("c", "steady")
    for hostname in ("moving", "steady"):
        group.wait_following("a", hostname)
    on_a = subscriber(group, "a")
    on_c = subscriber(group, "c")

    total = 150
    log = group.logs["moving"]

    def writer() -> None:  # about 60 events a second, before, during and after the kill
        with log.open("a") as f:
            for i in range(total):
                f.write(line(i, "moving"))
                f.flush()
                time.sleep(1 / 60)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    wait_until(lambda: len(auth_updates(on_a)) >= 40, what="the first events through hub b")
    b.signal(signal.SIGKILL)
    killed = time.monotonic()
    b.process.wait()
    node.wait_for(rf"connected to hub 127\.0\.0\.1:{a.port} ")
    moved = time.monotonic() - killed
    with group.logs["steady"].open("a") as f:
        f.write(line(0, "steady"))
    thread.join()

    wait_until(lambda: len(auth_updates(on_a)) >= total + 1, what="hub a's subscriber to see every event")
    wait_until(lambda: len(auth_updates(on_c)) >= total + 1, what="hub c's subscriber to see every event")
    seen = auth_updates(on_a)
    assert [s for _, h, s in seen if h == "moving"] == list(range(1, total + 1))  # each once, in order
    assert seen == auth_updates(on_c)
    assert moved < 10
    nodes = {n["hostname"]: n for n in group.nodes("c")}
    assert nodes["moving"]["hub"] == "a" and nodes["moving"]["connected"]
    assert nodes["steady"]["hub"] == "c"


def test_a_hub_gone_for_good_has_its_nodes_shown_disconnected_then_forgotten(hub_group):
    group = hub_group
    for name in ("a", "b"):
        group.start_hub(name, DISCONNECT_GRACE_PERIOD="3")
    group.start_node("b", "stranded")  # it knows only hub b
    group.wait_following("a", "stranded")
    group.hubs["b"].signal(signal.SIGKILL)
    group.hubs["b"].process.wait()

    def shown_disconnected() -> bool:
        return [(n["hostname"], n["hub"], n["connected"]) for n in group.nodes("a")] == [("stranded", "b", False)]

    wait_until(shown_disconnected, what="hub a to show hub b's node disconnected")
    group.hubs["a"].wait_for("hub b is silent")
    wait_until(lambda: group.nodes("a") == [], what="hub a to forget it after the grace period")
