"""The publisher against a real JetStream server: a window of messages in flight, and a lost acknowledgement in it.

The hub runs in the test's event loop, so the test can hand its link a JetStream
context that loses one acknowledgement (the message itself reaches the stream,
as when an ack is lost on the way back); everything else is the real nats-py
client and a real nats-server.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anyio
import nats

from secmon.config import HubSettings
from secmon.hub.cluster import MSG_ID, PUBLISH_WINDOW, ClusterHub
from secmon.hub.outbox import Outbox
from secmon.protocol.batches import UpdateFrame
from secmon.protocol.cluster import NodeAuthEvent, NodeJoined

from .conftest import NatsServer

EVENTS = 3 * PUBLISH_WINDOW // 2  # more than one window, so the window refills after the failure


class LosingOneAck:
    """A JetStream context whose ``lose``-th publish is sent, but whose acknowledgement never comes."""

    def __init__(self, js: Any, lose: int) -> None:
        self.js = js
        self.lose = lose
        self.sent: list[str] = []

    async def publish_async(self, subject: str, payload: bytes, **options: Any) -> asyncio.Future[Any]:
        future = await self.js.publish_async(subject, payload, **options)
        self.sent.append(options["headers"][MSG_ID])
        if len(self.sent) == self.lose:
            return asyncio.get_running_loop().create_future()  # the real ack is dropped on the floor
        return future


class RecordingHub(ClusterHub):
    """The cluster hub, keeping every update it broadcasts."""

    def __init__(self, settings: HubSettings, outbox: Outbox) -> None:
        super().__init__(settings, outbox)
        self.frames: list[UpdateFrame] = []

    def publish(self, frames: list[UpdateFrame], node: Any = None) -> None:
        self.frames += frames
        super().publish(frames, node)


async def wait_for(predicate: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await anyio.sleep(0.02)


async def test_a_lost_ack_mid_window_sends_everything_unacknowledged_again_in_order(
    nats_server: NatsServer, workdir: Path
):
    env = {
        "SECMON_NATS_URL": nats_server.url,
        "SECMON_NATS_TIMEOUT": "1",
        "SECMON_HUB_NAME": "a",
        "SECMON_SOCKET": str(workdir / "a.sock"),
        "BIND_PORT": "0",
    }
    hub = RecordingHub(HubSettings.from_env(env), Outbox(10_000))
    async with anyio.create_task_group() as tg:
        await hub.link.start(tg)
        join = NodeJoined("a", hub.run, "n1", "web1", "10.0.0.1", time.time(), ["auth"], 0, 1)
        hub.send(join)
        await wait_for(lambda: hub.view.applied >= 1, "the join to come back from the stream")
        losing = LosingOneAck(hub.link.js, lose=PUBLISH_WINDOW // 2)
        hub.link.js = losing
        for seq in range(1, EVENTS + 1):
            event = {"seq": seq, "time": 1.0, "kind": "ssh_invalid_user", "process": "sshd", "user": f"u{seq}"}
            assert hub.send(NodeAuthEvent("a", "n1", "web1", "10.0.0.1", event, 1), f"n1:{seq}", "n1", seq)
        await wait_for(lambda: len(hub.outbox) == 0 and bool(hub.link_up), "the outbox to drain")
        await wait_for(lambda: hub.view.applied >= EVENTS + 1, "every event to come back from the stream")
        tg.cancel_scope.cancel()
    await hub.link.nc.close()

    ids = [f"n1:{seq}" for seq in range(1, EVENTS + 1)]
    lost = losing.lose - 1  # the index of the message whose ack was lost
    again = len(losing.sent) - losing.sent[::-1].index(ids[lost]) - 1
    assert again > losing.lose  # the window went on past it before the ack was missed
    assert losing.sent[:again] == ids[:again]  # first, everything once, in order
    assert losing.sent[again:] == ids[lost:]  # then again from the unacknowledged one, in order, to the end

    reader = await nats.connect(nats_server.url)
    try:
        js = reader.jetstream()
        assert (await js.stream_info("secmon_UPDATES")).state.last_seq == EVENTS + 1
        stream = [await js.get_msg("secmon_UPDATES", seq) for seq in range(1, EVENTS + 2)]
    finally:
        await reader.close()
    assert [m.headers[MSG_ID] for m in stream[1 : EVENTS + 1]] == ids  # each once, in order
    assert hub.view.applied == EVENTS + 1  # the join and the events: nothing more in the stream
    assert hub.registry.by_node_id("n1").last_event_seq == EVENTS
    # one update for the join, one per event: none lost, none applied twice (here or provisionally)
    assert sum(frame.count for frame in hub.frames) == 1 + EVENTS
