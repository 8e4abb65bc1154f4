"""One framed connection over an anyio byte stream, shared by hub, node and client.

A Link owns three loops in one task group: the reader decodes every frame that
arrived in one read and hands the batch to the caller; the writer drains a
bounded queue and coalesces what is waiting into one write; the keepalive
loop speaks when we have been quiet and gives up on a peer that has been
silent for three intervals. Sending never blocks: a full queue is reported to
the caller, who decides what a slow peer deserves.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Callable

import anyio
from anyio.abc import ByteStream

from .protocol import FrameDecoder, RemoteProtocolError, encode
from .protocol import messages as m

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024  # one read can carry thousands of small frames; decode them in one go
WRITE_BATCH = 256 * 1024  # join queued frames up to this size into one send
MISSED_KEEPALIVES = 3
MIN_KEEPALIVE = 0.05  # a peer may not make us spin

_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class HandshakeFailed(Exception):
    """Raised when the first message does not arrive in time or the link ends first.

    When the link ended, the stream's exception is the cause (a TLS alert from the peer is in it).
    """


class Link:
    """A message link; ``run()`` returns the reason it ended."""

    def __init__(self, stream: ByteStream, *, keepalive: float, max_queue: int = 10_000) -> None:
        self.stream = stream
        self.keepalive = keepalive
        self.max_queue = max_queue
        self.close_reason: str | None = None
        self._decoder = FrameDecoder()
        self._queue: deque[bytes] = deque()
        self._wakeup = anyio.Event()
        self._pending: list[m.Message] = []
        self._scope: anyio.CancelScope | None = None
        self._closing = False
        self._keepalive_changed = anyio.Event()
        self._drained = anyio.Event()
        self.last_received = self.last_sent = anyio.current_time()

    # --- sending -----------------------------------------------------------

    def send(self, message: m.Message) -> bool:
        """Queue a message; False when the queue is full (the message is not sent)."""
        return self.send_frame(encode(message))

    def send_frame(self, frame: bytes) -> bool:
        """Queue an encoded frame; False when the queue is full or the link is closing."""
        queue = self._queue
        if self._closing or len(queue) >= self.max_queue:
            return False
        if not queue:
            self._wakeup.set()  # the writer waits only on an empty queue
        queue.append(frame)
        return True

    def close(self, reason: str, final: m.Message | None = None) -> None:
        """End the link after flushing what is queued, plus ``final`` if given."""
        if self._closing:
            return
        if final is not None:
            self._queue.append(encode(final))  # one frame past the bound, so a slow peer learns why
        self._closing = True
        self.close_reason = reason
        self._wakeup.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def closing(self) -> bool:
        return self._closing

    async def wait_for_room(self) -> None:
        """Wait until the writer has drained the queue below half its bound (or the link ends)."""
        while len(self._queue) >= self.max_queue // 2 and not self._closing:
            self._drained = anyio.Event()
            await self._drained.wait()

    # --- receiving ---------------------------------------------------------

    async def _read_batch(self) -> list[m.Message]:
        data = await self.stream.receive(READ_SIZE)
        self.last_received = anyio.current_time()
        return self._decoder.feed(data)

    async def handshake(self, timeout: float) -> m.Message:
        """Wait for the peer's first message; anything after it is kept for ``run``."""
        try:
            with anyio.fail_after(timeout):
                while not self._pending:
                    self._pending = await self._read_batch()
        except TimeoutError:
            text = f"no hello within {timeout:g} s"
            self.close(text, m.Error("timeout", text))
            raise HandshakeFailed(text) from None
        except _STREAM_ERRORS as exc:
            self.close("connection closed before hello")
            raise HandshakeFailed("connection closed before hello") from exc  # a TLS alert is in the cause
        except RemoteProtocolError as exc:
            self._reject(exc)
            raise HandshakeFailed(str(exc)) from None
        return self._pending.pop(0)

    async def refuse(self, code: str, text: str) -> None:
        """Tell the peer why, flush, and close."""
        self.close(text, m.Error(code, text))
        await self.finish()

    async def finish(self) -> None:
        """Flush what is queued and close; for a link that was closed before it ran."""
        await self.run(lambda batch: None)

    def _reject(self, exc: RemoteProtocolError) -> None:
        self.close(f"protocol error: {exc}", m.Error(exc.code, str(exc)))

    # --- running -----------------------------------------------------------

    async def run(self, on_messages: Callable[[list[m.Message]], None]) -> str:
        """Serve the link until it ends; returns why it ended. Closes the stream."""
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                if not self._closing:
                    tg.start_soon(self._read_loop, on_messages)
                    tg.start_soon(self._keepalive_loop)
                await self._write_loop()
                tg.cancel_scope.cancel()
        finally:
            with anyio.move_on_after(1, shield=True):
                await self.stream.aclose()
        return self.close_reason or "closed"

    def _stop(self, reason: str) -> None:
        if self.close_reason is None:
            self.close_reason = reason
        self._closing = True
        self._drained.set()
        if self._scope is not None:
            self._scope.cancel()

    async def _read_loop(self, on_messages: Callable[[list[m.Message]], None]) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            on_messages(pending)
        while not self._closing:
            try:
                batch = await self._read_batch()
            except _STREAM_ERRORS:
                self._stop("connection closed by peer")
                return
            except RemoteProtocolError as exc:
                self._reject(exc)
                return
            if batch:
                on_messages(batch)

    async def _write_loop(self) -> None:
        queue = self._queue
        while True:
            while not queue:
                if self._closing:
                    return
                self._wakeup = anyio.Event()
                await self._wakeup.wait()
            size = 0
            frames = []
            while queue and size < WRITE_BATCH:
                frame = queue.popleft()
                frames.append(frame)
                size += len(frame)
            # Once closing, a peer that does not read gets one keepalive interval to drain.
            deadline = self.keepalive if self._closing else math.inf
            try:
                with anyio.move_on_after(deadline) as scope:
                    await self.stream.send(b"".join(frames) if len(frames) > 1 else frames[0])
            except _STREAM_ERRORS:
                self._stop("connection lost while sending")
                return
            if scope.cancelled_caught:
                self._stop(self.close_reason or "peer stopped reading")
                return
            self.last_sent = anyio.current_time()
            self._drained.set()

    def set_keepalive(self, interval: float) -> None:
        """Adopt the interval the hub announced; the running loop picks it up at once."""
        self.keepalive = max(interval, MIN_KEEPALIVE)
        self._keepalive_changed.set()

    async def _keepalive_loop(self) -> None:
        frame = encode(m.Keepalive())
        while True:
            with anyio.move_on_after(self.keepalive / 2):
                await self._keepalive_changed.wait()
                self._keepalive_changed = anyio.Event()
            interval = self.keepalive
            now = anyio.current_time()
            if now - self.last_received > MISSED_KEEPALIVES * interval:
                self._stop(f"peer silent for {MISSED_KEEPALIVES} keepalive intervals")
                return
            if now - self.last_sent >= interval and not self._queue:  # quiet for an interval: 3x margin
                self.send_frame(frame)
