"""A resuming subscriber is replayed at its own pace; one slower than the ring is told so, never skipped.

In process: the real Hub, ClientConnection and HubLink, over a transport that
records what is written and whose flow control the test drives.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest

from secmon.config import HubSettings
from secmon.hub.clients import ClientConnection
from secmon.hub.hub import Hub
from secmon.hub.registry import NodeEntry
from secmon.hub.wire import HubLink
from secmon.protocol import Connection, FrameDecoder, Role, encode
from secmon.protocol import messages as m
from secmon.protocol.batches import EventOrigin, EventRun, UpdateFrame

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.data += data

    def get_extra_info(self, name, default=None):
        return default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def publish(hub: Hub, count: int) -> None:
    frames = []
    for seq in hub.ring.reserve(count):
        event = m.AuthEvent(seq, 1.0, "ssh_accepted", "sshd")
        frames.append(UpdateFrame(seq, seq, encode(m.AuthUpdate(seq, 1, "web", "192.0.2.1", event))))
    hub.publish(frames)


def subscriber_link(max_queue: int) -> tuple[HubLink, RecordingTransport]:
    transport = RecordingTransport()
    connection = Connection(Role.HUB, Role.CLIENT, keepalive=10, handshake_timeout=10, now=0)
    connection.receive_data(encode(m.Hello(m.PROTOCOL_VERSION, m.ROLE_CLIENT)))
    connection.send(m.Welcome(m.PROTOCOL_VERSION))  # a subscriber's link is past its handshake
    link = HubLink(lambda link: None, set(), connection, max_queue=max_queue)
    link.connection_made(transport)
    return link, transport


async def until(predicate) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.sleep(0.001)


async def replay(late: int) -> tuple[list[m.Message], Hub, ClientConnection]:
    """Replay 20 held updates to a reader that stalls after the first batch; ``late`` more arrive meanwhile."""
    env = {"SECMON_SOCKET": "/nonexistent/hub.sock", "SECMON_RING_SIZE": "20", "SECMON_SUBSCRIBER_QUEUE": "4"}
    hub = Hub(HubSettings.from_env(env))
    publish(hub, 20)
    link, transport = subscriber_link(4)
    link.pause_writing()  # the reader is not reading
    point, missed = hub.ring.resume_point(0)
    assert missed == 0
    async with anyio.create_task_group() as tg:
        conn = ClientConnection(hub, link, tg, "test", m.Requester(0, "root"))
        tg.start_soon(conn.replay, point)
        await until(lambda: link.queued == link.max_queue)  # the replay has filled the queue: it waits for room
        publish(hub, late)
        link.resume_writing()
    return FrameDecoder().feed(bytes(transport.data)), hub, conn


async def test_a_replay_that_keeps_up_sends_everything_in_order_then_goes_live():
    messages, hub, conn = await replay(late=2)  # the ring drops only what the replay has already sent
    seqs = [message.seq for message in messages]
    assert seqs == list(range(seqs[0], seqs[0] + 22))  # the 20 held and the 2 that came during the replay
    assert conn in hub.subscribers and conn.last_seq == seqs[-1]


async def test_a_replay_slower_than_the_ring_ends_with_an_error_not_a_gap():
    messages, hub, conn = await replay(late=30)  # more than the ring holds: the replay's next ones are gone
    *updates, error = messages
    seqs = [update.seq for update in updates]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # contiguous: nothing skipped silently
    assert type(error) is m.Error and error.code == "slow_consumer"
    assert f"resume with since={seqs[-1]}" in error.message
    assert conn not in hub.subscribers


def publish_batches(hub: Hub, sizes: list[int]) -> None:
    """A node's auth events through the hub's own path, ``sizes`` of them at a time (as reads bring them)."""
    entry = NodeEntry(1, "web", "192.0.2.1", "node-id", ["auth"])
    for size in sizes:
        first = entry.last_event_seq + 1
        seqs = range(first, first + size)
        events = [{"seq": s, "time": 1.0, "kind": "ssh_accepted", "process": "sshd"} for s in seqs]
        entry.last_event_seq += size
        hub.publish_events(entry, EventRun(events), EventOrigin(entry.serial, entry.hostname, entry.address))


def one_per_event(messages: list[m.Message]) -> list[m.Message]:
    return [u for message in messages for u in (message.updates() if type(message) is m.AuthUpdates else [message])]


async def test_a_subscriber_resuming_within_a_batch_gets_exactly_the_rest():
    hub = Hub(HubSettings.from_env({"SECMON_SOCKET": "/nonexistent/hub.sock"}))
    publish_batches(hub, [3, 4, 2])  # frames of events 1-3, 4-7, 8-9
    first = hub.ring.oldest
    link, transport = subscriber_link(1000)
    async with anyio.create_task_group() as tg:
        conn = ClientConnection(hub, link, tg, "test", m.Requester(0, "root"))
        tg.start_soon(conn.replay, first + 4)  # it saw events 1-5: 6 and 7 are in the middle frame
    messages = FrameDecoder().feed(bytes(transport.data))
    assert [type(message) for message in messages] == [m.AuthUpdates, m.AuthUpdates]
    updates = one_per_event(messages)
    assert [(u.seq - first, u.event.seq) for u in updates] == [(5, 6), (6, 7), (7, 8), (8, 9)]
    assert conn in hub.subscribers and conn.last_seq == first + 8


async def test_a_batch_counts_each_of_its_updates_against_a_subscribers_queue():
    hub = Hub(HubSettings.from_env({"SECMON_SOCKET": "/nonexistent/hub.sock"}))
    link, transport = subscriber_link(5)
    link.pause_writing()  # the subscriber is not reading
    async with anyio.create_task_group() as tg:
        conn = ClientConnection(hub, link, tg, "test", m.Requester(0, "root"))
        hub.subscribers.add(conn)
        publish_batches(hub, [4])  # one frame, four updates: fits
        assert conn in hub.subscribers and link.queued == 4
        publish_batches(hub, [2])  # six would be queued: more than five
        assert conn not in hub.subscribers
        link.resume_writing()
    *updates, error = FrameDecoder().feed(bytes(transport.data))
    assert [u.event.seq for u in one_per_event(updates)] == [1, 2, 3, 4]
    assert error.code == "slow_consumer" and "more than 5 updates queued" in error.message


async def test_a_subscriber_that_keeps_up_is_not_dropped_by_a_burst_within_one_turn_of_the_loop():
    """Writes wait for the loop's turn to go out together, but never until the queue's bound."""
    link, transport = subscriber_link(max_queue=8)
    event = m.AuthEvent(1, 1.0, "ssh_accepted", "sshd")
    frames = [UpdateFrame(seq, seq, encode(m.AuthUpdate(seq, 1, "web", "192.0.2.1", event))) for seq in range(1, 41)]
    accepted = [link.send_update(frame) for frame in frames]  # 40 updates, no turn of the loop between
    assert all(accepted)
    await asyncio.sleep(0)  # the turn: what waited goes out
    assert link.queued == 0 and len(transport.data) == sum(len(f.frame) for f in frames)
