"""The pipeline chat notifiers share: follow the hub, skip, fold, hold, deliver in order.

    hub ──follow_updates──▶ skip muted/summarized ──▶ BurstFolder ──▶ QuietGate ──bounded queue──▶ deliver(item)

Auth events pass unless ``notices.for_notifiers`` says a mute rule or a
source_failing notice covers them; failures fold per source and window.
Notices (node down, mute changes, command runs, ...) pass as they are. With
quiet hours, the gate holds all but critical items and, when the window
ends, hands on one ``Digest`` of what it held. So ``deliver`` gets a
``folding.Notice``, a ``messages.NoticeUpdate`` or a ``quiet.Digest``.

``deliver`` is the integration's: it retries until the chat service accepts
the message, so a rate limit slows the pipeline down instead of dropping
anything. When the queue is full the pump stops reading from the hub (one
log line says so); the hub keeps the updates in its ring, and the
subscription resumes from its last sequence if the hub drops us meanwhile.

When the relay is stopped (cancelled), what it still holds is delivered
before it returns, shielded from the cancellation but within FLUSH_TIMEOUT:
the queued items, then the bursts the folder has counted but not yet told,
then the digest of what quiet hours held so far.
A delivery the stop cuts short is not repeated: the service may well have
taken the message already, and a repeat at every restart would be noise.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from .client import Update, follow_updates
from .folding import BurstFolder, Notice
from .protocol import messages as m
from .protocol import notices
from .quiet import Digest, Held, QuietGate, QuietHours

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000  # items waiting for the chat service; past this we stop reading the hub
# At stop, seconds to deliver what is still held: enough to ride out one rate limit, short of
# the ~90 s after which a service manager kills a process that does not stop.
FLUSH_TIMEOUT = 30.0

Outgoing = Notice | m.NoticeUpdate | Digest  # what ``deliver`` is given


async def relay_updates(
    deliver: Callable[[Outgoing], Awaitable[None]],
    *,
    window: float,
    quiet: QuietHours | None = None,
    clock: Callable[[], float] = time.time,
    path: str | Path | None = None,
    queue_size: int = QUEUE_SIZE,
) -> None:
    """Run until cancelled: auth events (folded per source and window) and notices reach ``deliver``.

    ``quiet`` holds back all but critical items within its window, then delivers one digest;
    ``clock`` is the wall clock that window is read on.
    """
    async with follow_updates(path=path) as updates:
        await relay(updates, deliver, window=window, quiet=quiet, clock=clock, queue_size=queue_size)


async def relay(
    updates: AsyncIterable[Update],
    deliver: Callable[[Outgoing], Awaitable[None]],
    *,
    window: float,
    quiet: QuietHours | None = None,
    clock: Callable[[], float] = time.time,
    queue_size: int = QUEUE_SIZE,
) -> None:
    """``relay_updates`` over any stream of updates (the hub's, or a test's); returns when it ends."""
    folder = BurstFolder(window)
    gate = QuietGate(quiet)
    send, receive = anyio.create_memory_object_stream[Outgoing](queue_size)
    wakeup = anyio.Event()

    async def enqueue(items: list[Outgoing]) -> None:
        for item in items:
            try:
                send.send_nowait(item)
            except anyio.WouldBlock:
                log.warning("notice queue full (%d): pausing the hub subscription until it drains", queue_size)
                await send.send(item)

    def through_gate(items: list[Held]) -> list[Outgoing]:
        out: list[Outgoing] = []
        for item in items:
            holding = gate.holding
            out += gate.offer(item, clock())
            if not holding and gate.holding:
                log.info("quiet hours %s: holding back all but critical messages", quiet.text if quiet else "")
        return [_told(item) for item in out]

    async def pump() -> None:
        nonlocal wakeup
        async for update in updates:
            held: list[Held]
            if type(update) is m.AuthUpdate:
                if not notices.for_notifiers(update):
                    continue
                held = list(folder.add(update, anyio.current_time()))
            elif type(update) is m.NoticeUpdate:
                held = [update]
            else:
                continue
            await enqueue(through_gate(held))
            wakeup.set()
            wakeup = anyio.Event()
        tg.cancel_scope.cancel()  # the stream ended (only a test's does): stop as if cancelled

    async def close_windows() -> None:
        while True:
            waits = []
            if (due := folder.next_due()) is not None:
                waits.append(due - anyio.current_time())
            if (digest_due := gate.next_due()) is not None:
                waits.append(digest_due - clock())
            with anyio.move_on_after(max(0.0, min(waits, default=math.inf))):
                await wakeup.wait()
            items: list[Outgoing] = [_told(digest) for digest in gate.due(clock())]
            items += through_gate(list(folder.due(anyio.current_time())))
            await enqueue(items)

    async def sender() -> None:
        async for item in receive:
            await deliver(item)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump)
            tg.start_soon(close_windows)
            tg.start_soon(sender)
    finally:
        held = _drain(receive) + through_gate(list(folder.flush())) + list(gate.flush())
        send.close()
        receive.close()
        await _deliver_held(deliver, held)


def _told(item: Outgoing) -> Outgoing:
    if type(item) is Digest:
        log.info("quiet hours over: one digest of %d held messages (%d events)", item.held, item.event_count)
    return item


def _drain(receive: MemoryObjectReceiveStream[Outgoing]) -> list[Outgoing]:
    items = []
    while True:
        try:
            items.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            return items


async def _deliver_held(deliver: Callable[[Outgoing], Awaitable[None]], held: list[Outgoing]) -> None:
    """Deliver the notices the relay held when it stopped, shielded, within FLUSH_TIMEOUT."""
    if not held:
        return
    done = 0
    with anyio.move_on_after(FLUSH_TIMEOUT, shield=True):
        for item in held:
            try:
                await deliver(item)
            except Exception as exc:  # the integration's failure; the relay is ending anyway
                log.warning("delivering held notices at stop failed: %s", exc)
                break
            done += 1
    if done < len(held):
        log.warning("stopped with %d of %d held notices undelivered", len(held) - done, len(held))
