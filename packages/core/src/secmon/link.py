"""The anyio adapter: bytes between a byte stream and a protocol Connection, nothing else.

The node and the client library each hold one Link. Its three loops run in one
task group: the reader hands every message one read completed to the caller;
the writer drains a bounded queue, joining what waits into one write; the
ticker calls the connection's ``tick`` when it asks to be, and sends what it
returns. Every rule (who sends what, the handshake and keepalive deadlines)
is the Connection's; a RemoteProtocolError from it ends the link, telling
the peer why when it listens. Sending never blocks: a full queue is reported
to the caller, who decides what a slow peer deserves.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import anyio
from anyio.abc import ByteStream

from .protocol import Connection, RemoteProtocolError
from .protocol import messages as m
from .protocol.codec import Decoded

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024  # one read can carry thousands of small frames; decode them in one go
WRITE_BATCH = 256 * 1024  # join queued frames up to this size into one send

_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class HandshakeFailed(Exception):
    """Raised when the peer's opening does not arrive in time, breaks the protocol, or the link ends first.

    When the link ended, the stream's exception is the cause (a TLS alert from the peer is in it).
    """


class Link:
    """A message link over ``stream``, by the rules of ``connection``; ``run()`` returns why it ended."""

    def __init__(self, stream: ByteStream, connection: Connection, *, max_queue: int = 10_000) -> None:
        self.stream = stream
        self.connection = connection
        self.max_queue = max_queue
        self.close_reason: str | None = None
        self._queue: deque[bytes] = deque()
        self._wakeup = anyio.Event()
        self._pending: list[Decoded] = []
        self._scope: anyio.CancelScope | None = None
        self._closing = False
        self._drained = anyio.Event()

    # --- sending -----------------------------------------------------------

    def send(self, message: m.Message) -> bool:
        """Queue a message; False when the queue is full or the link is closing (it is not sent)."""
        if self._closing or self.connection.closed or len(self._queue) >= self.max_queue:
            return False
        self._enqueue(self.connection.send(message))
        return True

    def _enqueue(self, frame: bytes) -> None:
        if not self._queue:
            self._wakeup.set()  # the writer waits only on an empty queue
        self._queue.append(frame)

    def close(self, reason: str, final: m.Message | None = None) -> None:
        """End the link after flushing what is queued, plus ``final`` if given."""
        if self._closing:
            return
        if final is not None and not self.connection.closed:
            self._enqueue(self.connection.send(final))  # one frame past the bound, so a slow peer learns why
        self.connection.close()
        self._closing = True
        self.close_reason = reason
        self._wakeup.set()

    def _fail(self, exc: RemoteProtocolError) -> None:
        """End the link for a broken rule: tell the peer why, unless it is not listening."""
        if exc.tell_peer:
            self.close(exc.reason, m.Error(exc.code, str(exc)))
        else:
            self._stop(exc.reason)

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

    # --- the opening ---------------------------------------------------------

    async def handshake(self, opening: m.Message | None = None) -> Decoded:
        """Send our ``opening`` (an initiator's hello), then wait for the peer's first message.

        The connection's handshake deadline rules the wait. Anything that came with the
        first message is kept for ``run``.
        """
        connection = self.connection
        try:
            if opening is not None:
                await self.stream.send(connection.send(opening))
            while not self._pending:
                now = anyio.current_time()
                with anyio.move_on_after(connection.next_tick(now) - now):
                    self._pending = connection.receive_data(await self.stream.receive(READ_SIZE))
                connection.tick(anyio.current_time())
        except _STREAM_ERRORS as exc:
            self.close("connection closed before the handshake")
            raise HandshakeFailed("connection closed before the handshake") from exc  # a TLS alert is in the cause
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise HandshakeFailed(str(exc)) from None
        return self._pending.pop(0)

    async def refuse(self, code: str, text: str) -> None:
        """Tell the peer why, flush, and close."""
        self.close(text, m.Error(code, text))
        await self.finish()

    async def finish(self) -> None:
        """Flush what is queued and close; for a link that was closed before it ran."""
        await self.run(lambda batch: None)

    # --- running -----------------------------------------------------------

    async def run(self, on_messages: Callable[[list[Decoded]], None]) -> str:
        """Serve the link until it ends; returns why it ended. Closes the stream."""
        try:
            async with anyio.create_task_group() as tg:
                self._scope = tg.cancel_scope
                if not self._closing:
                    tg.start_soon(self._read_loop, on_messages)
                tg.start_soon(self._tick_loop)
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
        self.connection.close()
        self._drained.set()
        if self._scope is not None:
            self._scope.cancel()

    async def _read_loop(self, on_messages: Callable[[list[Decoded]], None]) -> None:
        if self._pending:
            pending, self._pending = self._pending, []
            on_messages(pending)
        receive, stream = self.connection.receive_data, self.stream
        while not self._closing:
            try:
                batch = receive(await stream.receive(READ_SIZE))
            except _STREAM_ERRORS:
                self._stop("connection closed by peer")
                return
            except RemoteProtocolError as exc:
                self._fail(exc)
                return
            if batch:
                on_messages(batch)
            if self.connection.closed:  # the peer ended the link: what we queued still goes out
                self.close(self.connection.peer_reason)
                return

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
            try:
                # Once closing, the ticker ends a peer that does not read (PeerNotReading).
                await self.stream.send(b"".join(frames) if len(frames) > 1 else frames[0])
            except _STREAM_ERRORS:
                self._stop("connection lost while sending")
                return
            self._drained.set()

    async def _tick_loop(self) -> None:
        connection = self.connection
        while True:
            now = anyio.current_time()
            await anyio.sleep(max(0.0, connection.next_tick(now) - now))
            try:
                frame = connection.tick(anyio.current_time())
            except RemoteProtocolError as exc:
                self._fail(exc)
                return
            if frame and not self._closing:
                self._enqueue(frame)
