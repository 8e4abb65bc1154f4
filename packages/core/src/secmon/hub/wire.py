"""The hub's end of a connection: an asyncio protocol driven by the loop's callbacks.

The hub holds thousands of node connections and relays every event, so a
connection has no reader, writer or keepalive task of its own. Bytes that
arrive are decoded and handled in the read callback; frames go to the socket
at once, a batch (every update of one read) joined into one write, and wait in
a bounded queue only while the peer is slow to read; one sweep over all
connections (``tick``, from the hub's housekeeping) sends keepalives and
drops silent peers. TLS runs through memory BIOs, so a failed handshake is an
error we see and log with the peer's address, not something the loop hides.

Every rule of the conversation (who sends what, the handshake and keepalive
deadlines) is the protocol Connection's; this adapter only moves bytes and
ends the link when the Connection raises. The interface is that of
``secmon.link.Link``: ``handshake``, ``run``, ``send``, ``close``,
``refuse``; the lifecycle of a connection stays one readable coroutine (see
nodes.py and clients.py).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import cast

from ..link import HandshakeFailed
from ..protocol import Connection, RemoteProtocolError
from ..protocol import messages as m
from ..protocol.batches import EventRun, UpdateFrame
from ..protocol.codec import Decoded
from ..tls import hub_side_tls_failure

log = logging.getLogger("secmon.hub")

# Above this many bytes waiting in the kernel-bound buffer, frames stay in our queue,
# where they are counted against the peer's bound.
WRITE_HIGH_WATER = 256 * 1024
TLS_READ = 256 * 1024
# A TLS record of type handshake, any 3.x version: what every TLS client sends first.
TLS_HANDSHAKE_RECORD = b"\x16\x03"
PLAIN_HUB_GOT_TLS = (
    "the peer speaks TLS, but this hub has no SECMON_TLS_CERT: give the hub SECMON_TLS_CERT and "
    "SECMON_TLS_KEY, or unset SECMON_TLS_CA on the node"
)

MessageHandler = Callable[[list[Decoded]], None]
EventRunHandler = Callable[[EventRun], None]


class HubLink(asyncio.Protocol):
    """One peer of the hub, in ``links`` while connected; ``on_open`` is called once it is."""

    __slots__ = (
        "_closed",
        "_closing",
        "_flush_scheduled",
        "_links",
        "_loop",
        "_on_events",
        "_on_messages",
        "_on_open",
        "_out",
        "_paused",
        "_pending",
        "_tls",
        "_tls_context",
        "_tls_error",
        "_tls_in",
        "_tls_out",
        "_tls_ready",
        "_tls_started",
        "_waiter",
        "_write_now",
        "close_reason",
        "connection",
        "max_queue",
        "peer",
        "queued",
        "transport",
    )

    def __init__(
        self,
        on_open: Callable[[HubLink], None],
        links: set[HubLink],
        connection: Connection,
        *,
        max_queue: int,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._on_open = on_open
        self._links = links
        self.connection = connection
        self.max_queue = max_queue
        self._write_now = max(1, max_queue // 4)  # queued weight that is written at once, not at the loop's turn
        self.close_reason: str | None = None
        self.peer = "?"
        self.transport: asyncio.Transport | None = None
        self._out: deque[tuple[bytes, int]] = deque()  # frames to write, each with its weight
        self.queued = 0  # the weight of what _out holds: updates for a subscriber, else frames
        self._flush_scheduled = False
        self._paused = False
        self._closing = False
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self._on_messages: MessageHandler | None = None
        self._on_events: EventRunHandler | None = None  # a node's handler of one read's auth events alone
        self._pending: list[Decoded] = []
        self._waiter: asyncio.Future[None] | None = None  # handshake() or wait_for_room()
        self._tls_context = tls
        self._tls: ssl.SSLObject | None = None
        self._tls_ready = tls is None
        self._tls_started = False  # the peer's first bytes have arrived
        self._tls_in: ssl.MemoryBIO | None = None
        self._tls_out: ssl.MemoryBIO | None = None
        self._tls_error: str | None = None

    @property
    def keepalive(self) -> float:
        return self.connection.keepalive

    # --- asyncio callbacks ---------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream server's transports are read-write transports; uvloop's are not asyncio.Transport
        # subclasses, so this is a cast, not an isinstance check.
        self.transport = stream = cast(asyncio.Transport, transport)
        peer = stream.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) and peer else "?"
        stream.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if self._tls_context is not None:
            self._tls_in, self._tls_out = tls_in, tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self._tls = self._tls_context.wrap_bio(tls_in, tls_out, server_side=True)
        self._links.add(self)
        self._on_open(self)

    def data_received(self, data: bytes) -> None:
        if self._tls is not None:
            data = self._decrypt(data)
        if self._closing or not data:
            return
        on_events = self._on_events
        if on_events is not None:  # a node at a steady rate: one read, one frame of auth events
            run = self.connection.receive_events(data)
            if run is not None:
                try:
                    on_events(run)
                except Exception as exc:  # a bug in one connection must not take the hub down
                    log.error("%s: internal error: %r", self.peer, exc, exc_info=log.isEnabledFor(logging.DEBUG))
                    self._stop("internal error")
                return
        try:
            batch = self.connection.receive_data(data)
        except RemoteProtocolError as exc:
            if self._on_messages is None and not self._pending and data.startswith(TLS_HANDSHAKE_RECORD):
                # In plain frames, which the node cannot read: its TLS layer reports "wrong version number".
                self.close(PLAIN_HUB_GOT_TLS, m.Error("tls_not_configured", PLAIN_HUB_GOT_TLS))
                self._wake()
            else:
                self._fail(exc)
            return
        if not batch:
            return
        on_messages = self._on_messages
        if on_messages is None:
            self._pending += batch
            self._wake()
            return
        try:
            on_messages(batch)
        except Exception as exc:  # a bug in one connection must not take the hub down
            log.error("%s: internal error: %r", self.peer, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._stop("internal error")
        if self.connection.closed and not self._closing:  # the peer ended the link
            self.close(self.connection.peer_reason)

    def _dispatch(self, on_messages: MessageHandler, batch: list[Decoded]) -> None:
        try:
            on_messages(batch)
        except Exception as exc:  # a bug in one connection must not take the hub down
            log.error("%s: internal error: %r", self.peer, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._stop("internal error")

    def eof_received(self) -> None:
        self._stop("connection closed by peer")

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_reason is None:
            self.close_reason = "connection closed by peer" if exc is None else f"connection lost: {exc}"
        self._closing = True
        self.transport = None
        self._out.clear()
        self.queued = 0
        self._links.discard(self)
        if not self._closed.done():
            self._closed.set_result(None)
        self._wake()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._schedule_flush()

    # --- TLS over memory BIOs ------------------------------------------------

    def _decrypt(self, data: bytes) -> bytes:
        tls, tls_in = self._tls, self._tls_in
        assert tls is not None and tls_in is not None  # data_received decrypts only when TLS is on
        if not self._tls_started:
            self._tls_started = True
            if not data.startswith(TLS_HANDSHAKE_RECORD[:1]):
                # No TLS record: a node without TLS. It gets no frame of ours (this port speaks
                # nothing before TLS), only the close; it reads that as "the hub requires TLS".
                self._tls_error = "TLS handshake failed: the node does not speak TLS: set SECMON_TLS_CA on it"
                self._stop(self._tls_error, abort=False)
                return b""
        tls_in.write(data)
        chunks = []
        try:
            if not self._tls_ready:
                tls.do_handshake()
                self._tls_ready = True
            while chunk := tls.read(TLS_READ):
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self._stop("connection closed by peer")
        except ssl.SSLError as exc:
            failed = hub_side_tls_failure(exc)
            self._tls_error = f"TLS handshake failed: {failed}" if not self._tls_ready else f"TLS: {exc}"
            self._send_tls_records()  # the alert that tells the peer why
            self._stop(self._tls_error, abort=False)
            return b""
        self._send_tls_records()
        return b"".join(chunks)

    def _send_tls_records(self) -> None:
        assert self._tls_out is not None  # called only when TLS is on
        records = self._tls_out.read()
        if records and self.transport is not None:
            self.transport.write(records)

    # --- sending -------------------------------------------------------------

    def send(self, message: m.Message) -> bool:
        """Queue a message; False when the queue is full or the link is closing (the message is not sent)."""
        if self._closing or self.connection.closed or (self.queued and self.queued + 1 > self.max_queue):
            return False
        return self._send(self.connection.send(message), 1)

    def send_update(self, update: UpdateFrame) -> bool:
        """Send an update frame encoded once for every subscriber; False if the queue is full or closing.

        A frame counts each update it holds against ``max_queue``. An empty queue takes
        any one frame, so a frame heavier than the bound (one held from a run with a
        longer queue) still reaches a reader.
        """
        weight = update.count
        queued = self.queued
        if self._closing or self.connection.closed or (queued and queued + weight > self.max_queue):
            return False
        return self._send(self.connection.send_update(update.frame), weight)

    def _send(self, frame: bytes, weight: int) -> bool:
        self._out.append((frame, weight))
        self.queued += weight
        if not self._paused:
            if self.queued >= self._write_now:
                self._flush()  # a queue filling within one turn of the loop goes out now, not at its bound
            elif not self._flush_scheduled:
                self._schedule_flush()
        return True

    def _schedule_flush(self) -> None:
        """Write at the end of this turn of the loop: what the reads of one wake-up bring goes out in one write."""
        if not self._flush_scheduled and self.transport is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write what is queued, in joined chunks, until the transport asks us to pause."""
        self._flush_scheduled = False
        transport = self.transport
        out = self._out
        wrote = False
        while out and not self._paused and transport is not None:
            if len(out) == 1:
                data, weight = out.popleft()
            else:
                chunk, size, weight = [], 0, 0
                while out and size < WRITE_HIGH_WATER:
                    frame, units = out.popleft()
                    chunk.append(frame)
                    size += len(frame)
                    weight += units
                data = b"".join(chunk)
            self.queued -= weight
            try:
                if self._tls is not None:
                    assert self._tls_out is not None  # set with self._tls
                    self._tls.write(data)
                    data = self._tls_out.read()
                transport.write(data)  # may call pause_writing() before it returns
            except (ssl.SSLError, RuntimeError) as exc:
                self._stop(f"connection lost while sending: {exc}")
                return
            wrote = True
        if wrote:
            self._wake()
        if self._closing and not out and transport is not None:
            transport.close()  # after what the transport holds has been sent

    def close(self, reason: str, final: m.Message | None = None) -> None:
        """End the link after flushing what is queued, plus ``final`` if given."""
        if self._closing:
            return
        if final is not None and not self.connection.closed:
            self._out.append((self.connection.send(final), 1))  # one frame past the bound: a slow peer learns why
            self.queued += 1
        self.connection.close()
        self._closing = True
        self.close_reason = reason
        self._schedule_flush()

    def _fail(self, exc: RemoteProtocolError) -> None:
        """End the link for a broken rule: tell the peer why, unless it is not listening or TLS is not up."""
        if not self._tls_ready:  # the only deadline before TLS is up is the handshake's
            self._stop("TLS handshake failed: handshake timed out")
        elif exc.tell_peer:
            self.close(exc.reason, m.Error(exc.code, str(exc)))
        else:
            self._stop(exc.reason)
        self._wake()

    def abort(self, reason: str) -> None:
        """End the link at once, sending nothing more."""
        self._stop(reason)

    def _stop(self, reason: str, *, abort: bool = True) -> None:
        """End the link now, dropping what is queued (``abort=False``: after what the transport holds)."""
        if self.close_reason is None:
            self.close_reason = reason
        self._closing = True
        self.connection.close()
        self._out.clear()
        self.queued = 0
        if self.transport is None:
            return
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def wait_for_room(self) -> None:
        """Wait until the queue is below half its bound (or the link ends)."""
        while self.queued >= max(1, self.max_queue // 2) and not self._closing:
            await self._wait()

    # --- the sweep -----------------------------------------------------------

    def tick(self, now: float) -> None:
        """Keepalive duty, from the hub's sweep: the connection's deadlines, and what it asks to send."""
        try:
            frame = self.connection.tick(now)
        except RemoteProtocolError as exc:
            self._fail(exc)
            return
        if frame and not self._closing:
            self._send(frame, 1)

    # --- the lifecycle -------------------------------------------------------

    async def handshake(self) -> m.Hello:
        """Wait for the peer's hello; anything after it is kept for ``run``.

        The connection has checked the hello's version and role. HandshakeFailed if the
        link ends first or the peer ends it with an Error; the connection's handshake
        deadline, enforced by the sweep, ends the wait.
        """
        while not self._pending and not self._closing:
            await self._wait()
        if not self._pending:
            raise HandshakeFailed(self._tls_error or self.close_reason or "connection closed before hello")
        first = self._pending.pop(0)
        if type(first) is m.Hello:
            return first
        # The table lets a peer open with nothing else but an Error: it ended the link instead of saying hello.
        detail = repr(first.message[:200]) if type(first) is m.Error else type(first).__name__
        self.close(f"closed by the peer before its hello: {detail}")
        raise HandshakeFailed(self.close_reason or "closed by the peer before its hello")

    async def finish(self) -> None:
        """Wait until the link has flushed and closed (the sweep bounds how long)."""
        try:
            await asyncio.shield(self._closed)
        finally:
            if self.transport is not None and not self._closed.done():
                self._stop("hub shutting down")

    async def refuse(self, code: str, text: str) -> None:
        """Tell the peer why, flush, and close."""
        self.close(text, m.Error(code, text))
        await self.finish()

    async def run(self, on_messages: MessageHandler, on_events: EventRunHandler | None = None) -> str:
        """Serve the link until it ends; returns why it ended.

        ``on_events``, if given, takes the auth events of a read that brought nothing else
        (``Connection.receive_events``): it must do with them exactly what ``on_messages``
        does with a batch of that one EventRun. Auth events never end the link, so nothing
        is checked after it.
        """
        self._on_messages = on_messages
        self._on_events = on_events
        if self._pending and not self._closing:
            pending, self._pending = self._pending, []
            self._dispatch(on_messages, pending)
        await self.finish()
        return self.close_reason or "closed"
