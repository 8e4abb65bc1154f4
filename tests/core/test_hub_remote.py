"""Commands across hubs in a hub's state, without NATS: what each side queues, and when it gives up.

The hub is the single hub's Hub with the few things a cluster hub adds; node and
client links record what they are given; what would go to NATS stays in the
publisher's queue, where the test reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio

from secmon.config import HubSettings
from secmon.hub.hub import Hub, Relay
from secmon.hub.registry import NodeEntry
from secmon.hub.remote import CHANNEL_LIMIT, KEEPALIVE_MISSES, Envelope, RemoteCommands
from secmon.protocol import messages as m
from secmon.protocol.remote import (
    RemoteAlive,
    RemoteBeat,
    RemoteCancel,
    RemoteOutput,
    RemoteResult,
    RemoteRun,
    RemoteStarted,
    decode_request,
    encode_remote,
)


@dataclass(eq=False)
class RecordingLink:
    sent: list[m.Message] = field(default_factory=list)
    peer: str = "127.0.0.1"

    def send(self, message: m.Message) -> bool:
        self.sent.append(message)
        return True

    def close(self, reason: str, final: m.Message | None = None) -> None:
        pass

    def tick(self, now: float) -> None:
        pass


@dataclass(eq=False)
class Peer:
    link: RecordingLink
    entry: NodeEntry
    relays: set[Relay] = field(default_factory=set)

    def acknowledge(self) -> None:
        pass

    def fail_relays(self, why: str) -> None:
        pass


class View:
    def holder(self, entry: NodeEntry) -> str:
        return entry.hub


@dataclass
class Connected:
    nc: Any = None

    async def connected(self) -> Any:
        return self.nc


@dataclass
class Nats:
    is_connected: bool = True


def cluster_hub(name: str) -> Any:
    """A Hub with what a cluster hub adds for commands: its name and run, the view, its node links by id."""
    env = {"SECMON_SOCKET": "/nonexistent/hub.sock", "SECMON_NATS_URL": "nats://127.0.0.1:4222"}
    hub: Any = Hub(HubSettings.from_env(env))
    hub.name, hub.run = name, f"run-{name}"
    hub.nats_settings = hub.settings.nats
    hub.view, hub.link, hub.by_node_id = View(), Connected(), {}
    hub.commands = RemoteCommands(hub, lambda name: name, str)
    hub.commands.nc, hub.commands.inbox = Nats(), "_INBOX.test"
    return hub


def queued(commands: RemoteCommands) -> list[Any]:
    """What waits for NATS: requests decoded, reply channels' replies taken."""
    out: list[Any] = []
    while commands.queue:
        item = commands.queue.popleft()
        if isinstance(item, Envelope):
            out.append(decode_request(item.payload))
        else:
            item.scheduled = False
            out.extend(item.take())
    return out


def ask(hub: Any) -> tuple[Peer, Relay]:
    """A client's command, on hub ``hub``, for node 4 that hub c holds."""
    entry = NodeEntry(4, "far", "192.0.2.4", "far-id", [], hub="c")
    node = hub.commands.node(entry)
    client = Peer(RecordingLink(), NodeEntry(0, "", "", "", []))
    relay = hub.start_relay(client, m.Execute(9, "far", "uptime"), node)
    return client, relay


def reply(hub: Any, relay: Relay, message: Any, now: float) -> None:
    hub.commands.on_reply(f"_INBOX.test.{relay.hub_id}", encode_remote(message), None, now)


async def test_a_command_for_another_hubs_node_goes_there_and_its_answers_come_back_with_its_serial():
    hub = cluster_hub("a")
    client, relay = ask(hub)
    [run] = queued(hub.commands)
    assert run == RemoteRun("a", "run-a", relay.hub_id, "far-id", "uptime", True, 4, hub.settings.link.keepalive)
    now = anyio.current_time()
    reply(hub, relay, RemoteStarted(1, 4), now)
    reply(hub, relay, RemoteOutput(2, ["one", "two"]), now)
    reply(hub, relay, RemoteResult(3, m.SUCCESS, 0), now)
    assert client.link.sent == [
        m.CommandOutput(9, "one", 4),
        m.CommandOutput(9, "two", 4),
        m.CommandResult(9, m.SUCCESS, 0, serial=4),
    ]
    assert not hub.relays and not hub.commands.asked


async def test_a_gap_in_the_replies_ends_the_command_with_an_error_and_cancels_it_there():
    hub = cluster_hub("a")
    client, relay = ask(hub)
    queued(hub.commands)
    now = anyio.current_time()
    reply(hub, relay, RemoteStarted(1, 4), now)
    reply(hub, relay, RemoteOutput(3, ["after a lost one"]), now)
    [result] = client.link.sent
    assert result.status == m.ERROR and "lost on the way" in result.message and result.serial == 4
    assert queued(hub.commands) == [RemoteCancel("a", "run-a", relay.hub_id)]


async def test_the_asker_says_it_waits_once_an_interval_and_gives_up_on_a_silent_holder():
    hub = cluster_hub("a")
    client, relay = ask(hub)
    queued(hub.commands)
    keepalive = hub.settings.link.keepalive
    start = anyio.current_time()
    hub.commands.sweep(start + keepalive)
    assert queued(hub.commands) == [RemoteAlive("a", "run-a", [relay.hub_id])]
    hub.commands.sweep(start + keepalive + 0.1)
    assert queued(hub.commands) == []  # not again within the interval
    assert client.link.sent == []
    hub.commands.sweep(start + KEEPALIVE_MISSES * keepalive + 0.1)
    [result] = client.link.sent
    assert result.status == m.ERROR and "hub c, which holds node 4, went silent" in result.message


def holding_hub() -> tuple[Any, Peer]:
    hub = cluster_hub("c")
    node = Peer(RecordingLink(), NodeEntry(4, "far", "192.0.2.4", "far-id", [], hub="c"))
    hub.nodes[4] = node
    hub.by_node_id["far-id"] = node
    return hub, node


async def test_a_request_from_another_hub_runs_on_the_node_and_answers_in_order():
    hub, node = holding_hub()
    now = anyio.current_time()
    request = RemoteRun("a", "r", 17, "far-id", "uptime", True, 4, 1.0)
    hub.commands.on_request(encode_remote(request), "_INBOX.x.17", now)
    [run] = node.link.sent
    assert type(run) is m.RunCommand and run.label == "uptime"
    relay = hub.relays[run.request_id]
    relay.client.link.send(m.CommandOutput(17, "line", 4))
    hub.finish_relay(relay, m.CommandResult(17, m.FAILURE, 3, serial=4))
    assert queued(hub.commands) == [RemoteStarted(1, 4), RemoteOutput(2, ["line"]), RemoteResult(3, m.FAILURE, 3)]
    assert not hub.commands.served


async def test_a_request_for_a_node_not_held_here_is_answered_with_an_error():
    hub, node = holding_hub()
    request = RemoteRun("a", "r", 17, "elsewhere-id", "uptime", True, 8, 1.0)
    hub.commands.on_request(encode_remote(request), "_INBOX.x.17", anyio.current_time())
    [answer] = queued(hub.commands)
    assert type(answer) is RemoteResult and answer.status == m.ERROR
    assert "node 8 is not connected to hub c" in answer.message
    assert node.link.sent == []


async def test_the_holder_beats_while_quiet_and_cancels_when_the_asker_goes_silent():
    hub, node = holding_hub()
    start = anyio.current_time()
    request = RemoteRun("a", "r", 17, "far-id", "sleep", True, 4, 1.0)
    hub.commands.on_request(encode_remote(request), "_INBOX.x.17", start)
    queued(hub.commands)
    hub.commands.sweep(start + 1.05)  # quiet for an interval
    assert queued(hub.commands) == [RemoteBeat(2)]
    hub.commands.on_request(encode_remote(RemoteAlive("a", "r", [17])), "", start + 2.5)
    hub.commands.sweep(start + 3.2)
    assert type(node.link.sent[-1]) is m.RunCommand  # heard from at 2.5: still running
    hub.commands.sweep(start + 2.5 + KEEPALIVE_MISSES + 0.1)
    assert type(node.link.sent[-1]) is m.CancelCommand
    *_, result = queued(hub.commands)
    assert (
        type(result) is RemoteResult
        and result.status == m.CANCELLED
        and "hub a, which asked, went silent" in (result.message)
    )


async def test_output_that_outruns_nats_cancels_the_command_instead_of_growing():
    hub, node = holding_hub()
    now = anyio.current_time()
    request = RemoteRun("a", "r", 17, "far-id", "flood", True, 4, 1.0)
    hub.commands.on_request(encode_remote(request), "_INBOX.x.17", now)
    relay = hub.relays[node.link.sent[0].request_id]
    line = "x" * 16_384
    for _ in range(CHANNEL_LIMIT // len(line) + 1):
        relay.client.link.send(m.CommandOutput(17, line, 4))
    assert type(node.link.sent[-1]) is m.CancelCommand
    replies = queued(hub.commands)
    assert [type(r) for r in replies] == [RemoteStarted, RemoteResult]  # the held output was dropped, not sent
    assert "output outran the cluster link" in replies[-1].message
