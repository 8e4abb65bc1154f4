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
from secmon.hub.server import Hub
from secmon.hub.wire import HubLink
from secmon.protocol import FrameDecoder, encode
from secmon.protocol import messages as m

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
        frames.append((seq, encode(m.AuthUpdate(seq, 1, "web", "192.0.2.1", event))))
    hub._publish(frames)


async def until(predicate) -> None:
    with anyio.fail_after(5):
        while not predicate():
            await anyio.sleep(0.001)


async def replay(late: int) -> tuple[list[m.Message], Hub, ClientConnection]:
    """Replay 20 held updates to a reader that stalls after the first batch; ``late`` more arrive meanwhile."""
    env = {"SECMON_SOCKET": "/nonexistent/hub.sock", "SECMON_RING_SIZE": "20", "SECMON_SUBSCRIBER_QUEUE": "4"}
    hub = Hub(HubSettings.from_env(env))
    publish(hub, 20)
    transport = RecordingTransport()
    link = HubLink(lambda link: None, set(), keepalive=10, max_queue=4)
    link.connection_made(transport)
    link.pause_writing()  # the reader is not reading
    point, missed = hub.ring.resume_point(0)
    assert missed == 0
    async with anyio.create_task_group() as tg:
        conn = ClientConnection(hub, link, tg, "test")
        tg.start_soon(conn._replay, point)
        await until(lambda: link._waiter is not None)  # the replay waits for room
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
