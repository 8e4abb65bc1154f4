"""Three hubs joined through a real NATS JetStream server, with real nodes spread over them.

Nodes follow their own auth logs; the test writes lines to them and reads what
subscribers on different hubs print: each subscriber is a small client-library
program that says when its subscription is open, then prints every update in
its JSON form, as ``secmon subscribe --json`` does.
"""

from __future__ import annotations

import json
import sys

from conftest import Daemon, wait_until

from .conftest import HubGroup

SUBSCRIBER = """
import json, sys
import anyio
from secmon.client import HubClient
from secmon.jsonform import update_json

async def main():
    since = None if sys.argv[1] == "-" else int(sys.argv[1])
    async with HubClient.connect() as hub:
        subscription = await hub.subscribe(since)
        print("SUBSCRIBED", subscription.hub_seq, subscription.missed, flush=True)
        async for update in subscription:
            print(json.dumps(update_json(update)), flush=True)

anyio.run(main)
"""


def line(i: int, user: str = "ev") -> str:
    return f"2026-11-30T01:00:00+00:00 vm sshd[{1000 + i}]: Invalid user {user}{i} from 192.0.2.1 port {1024 + i}\n"


def write(group: HubGroup, hostname: str, first: int, count: int) -> None:
    with group.logs[hostname].open("a") as log:
        for i in range(first, first + count):
            log.write(line(i, hostname))


def subscriber(group: HubGroup, hub: str, since: int | None = None) -> Daemon:
    """A subscriber on hub ``hub`` (from now on, or resuming after ``since``), once its subscription is open."""
    argv = [sys.executable, "-c", SUBSCRIBER, "-" if since is None else str(since)]
    daemon = Daemon(argv, group.envs[hub], f"subscriber on {hub}")
    group.daemons.append(daemon)
    daemon.wait_for("^SUBSCRIBED ")
    return daemon


def auth_updates(daemon: Daemon) -> list[tuple[int, str, int]]:
    """(cluster seq, hostname, node's event seq) of every auth update printed, in order."""
    seen = []
    for text in list(daemon.lines):
        if text.startswith("{"):
            update = json.loads(text)
            if update["type"] == "auth":
                seen.append((update["seq"], update["hostname"], update["event"]["seq"]))
    return seen


def status(group: HubGroup, hub: str) -> dict:
    """The cluster link of hub ``hub``, as ``secmon status --json`` gives it."""
    result = group.cli(hub, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["cluster"]


def spread(group: HubGroup) -> None:
    """Nodes n-a on hub a, n-b on b, n-c1 and n-c2 on c, each following its log."""
    for hub, hostname in (("a", "n-a"), ("b", "n-b"), ("c", "n-c1"), ("c", "n-c2")):
        group.start_node(hub, hostname)
    for hostname in ("n-a", "n-b", "n-c1", "n-c2"):
        group.wait_following("a", hostname)


def test_every_hub_lists_every_node_with_its_hub(three_hubs):
    spread(three_hubs)
    expected = {"n-a": "a", "n-b": "b", "n-c1": "c", "n-c2": "c"}
    views = {}
    for hub in ("a", "b", "c"):
        wait_until(lambda hub=hub: len(three_hubs.nodes(hub)) == 4, what=f"hub {hub} to list the four nodes")
        nodes = three_hubs.nodes(hub)
        assert {n["hostname"]: n["hub"] for n in nodes} == expected
        views[hub] = {n["hostname"]: n["serial"] for n in nodes}
    assert views["a"] == views["b"] == views["c"]  # the same serials on every hub
    table = three_hubs.cli("b", "list").stdout
    assert "HUB" in table.splitlines()[0]
    assert any(row.split()[1] == "n-c2" and row.split()[-1] == "c" for row in table.splitlines()[1:])
    one = three_hubs.cli("a", "n-b")
    assert one.returncode == 0 and "hub: b" in one.stdout


def test_subscribers_on_two_hubs_see_every_event_once_in_one_order(three_hubs):
    spread(three_hubs)
    on_a = subscriber(three_hubs, "a")
    on_c = subscriber(three_hubs, "c")
    per_node = 25
    for hostname in ("n-b", "n-c1", "n-c2", "n-a"):
        write(three_hubs, hostname, 0, per_node)
    total = 4 * per_node

    wait_until(lambda: len(auth_updates(on_a)) >= total, what="hub a's subscriber to see every event")
    wait_until(lambda: len(auth_updates(on_c)) >= total, what="hub c's subscriber to see every event")
    seen_a, seen_c = auth_updates(on_a), auth_updates(on_c)
    assert seen_a == seen_c  # the one cluster order, the same numbers
    assert len({(host, seq) for _, host, seq in seen_a}) == total  # each event exactly once
    for hostname in ("n-a", "n-b", "n-c1", "n-c2"):
        assert [seq for _, host, seq in seen_a if host == hostname] == list(range(1, per_node + 1))
    numbers = [seq for seq, _, _ in seen_a]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    for hub in ("a", "b"):  # every hub's history holds the cluster's events, as they were shown
        result = three_hubs.cli(hub, "events", "--json", "--limit", "1000")
        assert result.returncode == 0, result.stderr
        kept = [json.loads(text) for text in result.stdout.splitlines()]
        assert [(u["seq"], u["hostname"], u["event"]["seq"]) for u in kept] == seen_a


def test_a_subscriber_resumes_on_another_hub_without_loss_or_duplicate(three_hubs):
    spread(three_hubs)
    first = subscriber(three_hubs, "b")
    write(three_hubs, "n-a", 0, 10)
    write(three_hubs, "n-c1", 0, 10)
    wait_until(lambda: len(auth_updates(first)) >= 20, what="the first subscriber to see 20 events")
    seen = auth_updates(first)[:13]  # it stops after 13 of them
    first.stop()
    last = seen[-1][0]
    write(three_hubs, "n-b", 0, 10)  # meanwhile, more
    write(three_hubs, "n-c2", 0, 10)
    everything = subscriber(three_hubs, "a", since=0)
    wait_until(lambda: len(auth_updates(everything)) >= 40, what="hub a to hold all 40 events")
    resumed = subscriber(three_hubs, "c", since=last)
    wait_until(lambda: len(auth_updates(resumed)) >= 27, what="the resumed subscriber to get the rest")
    assert seen + auth_updates(resumed)[:27] == auth_updates(everything)[:40]
    assert len(auth_updates(resumed)) == 27


def test_a_nats_restart_loses_nothing(three_hubs):
    spread(three_hubs)
    on_a = subscriber(three_hubs, "a")
    write(three_hubs, "n-b", 0, 5)
    wait_until(lambda: len(auth_updates(on_a)) >= 5, what="the first events")
    three_hubs.nats.stop()
    for hub in three_hubs.hubs.values():
        hub.wait_for("cluster link down")
    write(three_hubs, "n-b", 5, 10)  # while NATS is away: hub b keeps them in its outbox
    write(three_hubs, "n-c1", 0, 10)
    wait_until(lambda: status(three_hubs, "b")["outbox"] >= 10, what="hub b to hold its events in its outbox")
    assert status(three_hubs, "b")["connected"] is False
    text = three_hubs.cli("b", "status").stdout
    assert "cluster link: disconnected since" in text and "hub: b in cluster secmon" in text
    three_hubs.nats.start()
    wait_until(lambda: len(auth_updates(on_a)) >= 25, what="hub a to get what came while NATS was away")
    on_c = subscriber(three_hubs, "c", since=0)
    wait_until(lambda: len(auth_updates(on_c)) >= 25, what="hub c to hold all 25 events")
    wait_until(lambda: status(three_hubs, "b")["connected"], what="hub b's link to say connected")
    assert status(three_hubs, "b")["outbox"] == 0
    same = lambda: status(three_hubs, "b")["applied"] == status(three_hubs, "c")["applied"] > 0  # noqa: E731
    wait_until(same, what="hubs b and c to have applied the same stream")
    seen = auth_updates(on_a)
    assert [s for _, h, s in seen if h == "n-b"] == list(range(1, 16))
    assert [s for _, h, s in seen if h == "n-c1"] == list(range(1, 11))
    assert len(seen) == 25
    # hub c showed its own node's events at once, during the outage, so its order differs for those
    held_by_c = auth_updates(on_c)
    assert sorted((h, s) for _, h, s in held_by_c) == sorted((h, s) for _, h, s in seen)
    assert [s for _, h, s in held_by_c if h == "n-c1"] == list(range(1, 11))


def test_a_hub_started_without_nats_serves_alone_then_catches_up(hub_group):
    hub_group.start_hub("a")
    hub_group.start_node("a", "n-a")
    hub_group.nats.stop()
    hub_group.hubs["a"].wait_for("cluster link down")
    lone = hub_group.start_hub("b")  # NATS is down: b says so in one line and serves at once
    assert lone.count("cluster link down") == 1
    hub_group.start_node("b", "n-b")
    hub_group.wait_following("b", "n-b")
    local = subscriber(hub_group, "b")
    write(hub_group, "n-b", 0, 5)
    wait_until(lambda: len(auth_updates(local)) >= 5, what="hub b's own events to reach its subscriber at once")
    hub_group.nats.start()
    write(hub_group, "n-a", 0, 3)
    wait_until(lambda: len(auth_updates(local)) >= 8, what="hub b to catch up with hub a's events")
    wait_until(lambda: len(hub_group.nodes("b")) == 2 and len(hub_group.nodes("a")) == 2, what="both views")
    assert {n["hostname"]: n["hub"] for n in hub_group.nodes("a")} == {"n-a": "a", "n-b": "b"}
    seen = auth_updates(local)
    assert [s for _, h, s in seen if h == "n-b"] == [1, 2, 3, 4, 5]  # not again after the catch-up
    assert [s for _, h, s in seen if h == "n-a"] == [1, 2, 3]
    numbers = [seq for seq, _, _ in seen]
    assert numbers == sorted(numbers)
    on_a = subscriber(hub_group, "a", since=0)
    wait_until(lambda: len(auth_updates(on_a)) >= 8, what="hub a to hold hub b's outage events")
    assert sorted((h, s) for _, h, s in auth_updates(on_a)) == sorted((h, s) for _, h, s in seen)
