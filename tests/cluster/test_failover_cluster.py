"""SIGKILL of one hub of three: its nodes spread over the two left, and every auth event arrives once.

Four nodes with HUB_ADDRS, each listing all three hubs in its own order: two
start on hub b (one lists a next, the other c), one on a, one on c. Hub b is
killed while a burst of its nodes' events is on its way (as the timing falls:
some published to the stream and not yet acknowledged to the node, which
resends them; some not yet read), and more are written while the nodes move.
Subscribers on a and c, open from the start, must each print every event
exactly once, in one and the same order.
"""

from __future__ import annotations

import signal
import time

from conftest import wait_until

from .conftest import HubGroup
from .test_cluster import auth_updates, subscriber, write

BEFORE, BURST, DURING, AFTER = 20, 30, 10, 10  # events per node in each phase
ORDERS = {"on-a": "abc", "b-then-a": "bac", "b-then-c": "bca", "on-c": "cab"}  # node → the hubs it lists, in order


def addresses(group: HubGroup, order: str) -> str:
    return ",".join(f"127.0.0.1:{group.hubs[h].port}" for h in order)


def holders(group: HubGroup, hub: str) -> dict[str, str]:
    """Node → the hub holding it, for the connected nodes hub ``hub`` lists."""
    return {n["hostname"]: n["hub"] for n in group.nodes(hub) if n["connected"]}


def test_sigkill_of_a_hub_spreads_its_nodes_over_the_others_and_each_event_arrives_once(three_hubs):
    group = three_hubs
    nodes = {name: group.start_node(hubs[0], name, HUB_ADDRS=addresses(group, hubs)) for name, hubs in ORDERS.items()}
    for name in ORDERS:
        group.wait_following("a", name)
    on_a = subscriber(group, "a")
    on_c = subscriber(group, "c")
    for name in ORDERS:
        write(group, name, 0, BEFORE)
    wait_until(lambda: len(auth_updates(on_a)) >= 4 * BEFORE, what="the first events on hub a")

    moving = ("b-then-a", "b-then-c")
    for name in moving:  # a burst hub b may read, publish in part, acknowledge in part...
        write(group, name, BEFORE, BURST)
    b = group.hubs["b"]
    b.signal(signal.SIGKILL)  # ...when it dies
    killed = time.monotonic()
    b.process.wait()
    for name in moving:  # written while the nodes move
        write(group, name, BEFORE + BURST, DURING)
    wait_until(
        lambda: holders(group, "a") == {"on-a": "a", "b-then-a": "a", "b-then-c": "c", "on-c": "c"},
        what="hub a to list b's nodes on a and c",
    )
    moved_in = time.monotonic() - killed
    print(f"hub b's two nodes held by a and c {moved_in:.2f} s after the SIGKILL")
    for name, hub in (("b-then-a", "a"), ("b-then-c", "c")):
        nodes[name].wait_for(rf"connected to hub 127\.0\.0\.1:{group.hubs[hub].port} as node \d+ \(moved from the hub")
    assert holders(group, "c") == holders(group, "a")
    assert moved_in < 10

    for name in ORDERS:
        write(group, name, BEFORE + (BURST + DURING if name in moving else 0), AFTER)
    count = {name: BEFORE + AFTER + (BURST + DURING if name in moving else 0) for name in ORDERS}
    total = sum(count.values())
    wait_until(lambda: len(auth_updates(on_a)) >= total, what=f"hub a's subscriber to see all {total} events")
    wait_until(lambda: len(auth_updates(on_c)) >= total, what=f"hub c's subscriber to see all {total} events")
    # Each node's events after the move follow its resends in the stream: nothing resent is still on its way.
    seen = auth_updates(on_a)
    assert len(seen) == total
    for name in ORDERS:  # every event of every node exactly once, in the node's order
        assert [seq for _, host, seq in seen if host == name] == list(range(1, count[name] + 1)), name
    numbers = [seq for seq, _, _ in seen]
    assert numbers == sorted(set(numbers))  # one rising cluster sequence
    assert auth_updates(on_c) == seen  # the same events, numbers and order on hub c
