"""The pipeline chat notifiers share: follow the hub, fold bursts, deliver in order.

    hub ──follow_updates──▶ BurstFolder ──bounded queue──▶ deliver(notice)

``deliver`` is the integration's: it retries until the chat service accepts
the message, so a rate limit slows the pipeline down instead of dropping
anything. When the queue is full the pump stops reading from the hub (one
log line says so); the hub keeps the updates in its ring, and the
subscription resumes from its last sequence if the hub drops us meanwhile.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio

from .client import follow_updates
from .folding import BurstFolder, Notice
from .protocol import messages as m

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000  # notices waiting for the chat service; past this we stop reading the hub


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

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        tg.start_soon(close_windows)
        tg.start_soon(sender)
