"""The pipeline chat notifiers share: follow the hub, fold bursts, deliver in order.

    hub ──follow_updates──▶ BurstFolder ──bounded queue──▶ deliver(notice)

``deliver`` is the integration's: it retries until the chat service accepts
the message, so a rate limit slows the pipeline down instead of dropping
anything. When the queue is full the pump stops reading from the hub (one
log line says so); the hub keeps the updates in its ring, and the
subscription resumes from its last sequence if the hub drops us meanwhile.

When the relay is stopped (cancelled), what it still holds is delivered
before it returns, shielded from the cancellation but within FLUSH_TIMEOUT:
the queued notices, then the bursts the folder has counted but not yet told.
A delivery the stop cuts short is not repeated: the service may well have
taken the message already, and a repeat at every restart would be noise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from .client import follow_updates
from .folding import BurstFolder, Notice
from .protocol import messages as m

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000  # notices waiting for the chat service; past this we stop reading the hub
# At stop, seconds to deliver what is still held: enough to ride out one rate limit, short of
# the ~90 s after which a service manager kills a process that does not stop.
FLUSH_TIMEOUT = 30.0


async def relay_auth_events(
    deliver: Callable[[Notice], Awaitable[None]],
    *,
    window: float,
    path: str | Path | None = None,
    queue_size: int = QUEUE_SIZE,
) -> None:
    """Run until cancelled: every auth event, folded per source and window, reaches ``deliver``."""
    folder = BurstFolder(window)
    send, receive = anyio.create_memory_object_stream[Notice](queue_size)
    wakeup = anyio.Event()

    async def enqueue(notices: list[Notice]) -> None:
        for notice in notices:
            try:
                send.send_nowait(notice)
            except anyio.WouldBlock:
                log.warning("notice queue full (%d): pausing the hub subscription until it drains", queue_size)
                await send.send(notice)

    async def pump() -> None:
        nonlocal wakeup
        async with follow_updates(path=path) as updates:
            async for update in updates:
                if type(update) is m.AuthUpdate:
                    await enqueue(folder.add(update, anyio.current_time()))
                    wakeup.set()
                    wakeup = anyio.Event()

    async def close_windows() -> None:
        while True:
            due = folder.next_due()
            with anyio.move_on_after(math.inf if due is None else max(0.0, due - anyio.current_time())):
                await wakeup.wait()
            await enqueue(folder.due(anyio.current_time()))

    async def sender() -> None:
        async for notice in receive:
            await deliver(notice)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            tg.start_soon(close_windows)
            tg.start_soon(sender)
    finally:
        held = _drain(receive) + folder.flush()
        send.close()
        receive.close()
        await _deliver_held(deliver, held)


def _drain(receive: MemoryObjectReceiveStream[Notice]) -> list[Notice]:
    notices = []
    while True:
        try:
            notices.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return notices


async def _deliver_held(deliver: Callable[[Notice], Awaitable[None]], held: list[Notice]) -> None:
    """Deliver the notices the relay held when it stopped, shielded, within FLUSH_TIMEOUT."""
    if not held:
        return
    done = 0
    with anyio.move_on_after(FLUSH_TIMEOUT, shield=True):
        for notice in held:
            try:
                await deliver(notice)
            except Exception as exc:  # the integration's failure; the relay is ending anyway
                log.warning("delivering held notices at stop failed: %s", exc)
                break
            done += 1
    if done < len(held):
        log.warning("stopped with %d of %d held notices undelivered", len(held) - done, len(held))
