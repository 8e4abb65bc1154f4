"""The async client library for the hub's Unix socket: what the CLI and every integration use.

    async with HubClient.connect() as hub:
        for node in await hub.list_nodes():
            print(node.serial, node.hostname, node.connected)
        async for item in hub.execute("-", "uptime"):
            ...  # Started, then CommandOutput lines and one CommandResult per node

One connection carries many requests at once, matched by request id. Errors
are the types in ``secmon.errors``; protocol and socket faults are mapped to
them here. ``follow_updates`` is a subscription that survives hub restarts.
"""

from __future__ import annotations

import errno
import grp
import itertools
import logging
import os
import pwd
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .config import socket_path
from .errors import (
    BadQuery,
    HubError,
    HubRefused,
    HubUnavailable,
    NotAllowed,
    RequestFailed,
    SubscriptionLost,
    UnknownNode,
    single_error,
)
from .link import HandshakeFailed, Link
from .protocol import Connection, Role
from .protocol import messages as m
from .protocol.codec import Decoded

log = logging.getLogger(__name__)

Update = m.NodeUpdate | m.AuthUpdate | m.NoticeUpdate
ExecuteItem = m.Started | m.CommandOutput | m.CommandResult
# What the hub sends about one request: its answer, or an Error naming its id.
Answer = (
    m.NodeList
    | m.Subscribed
    | m.Started
    | m.CommandOutput
    | m.CommandResult
    | m.EventList
    | m.EventStats
    | m.HubStatus
    | m.MuteRules
    | m.AuditList
    | m.NoticeList
)
Reply = Answer | m.Error
Expected = TypeVar("Expected", bound=Answer)

# Replies to one request: a command's output lines can be many, so allow a generous backlog.
REQUEST_BUFFER = 10_000
# Updates we hold for a subscriber that has not read them yet; past this it is too slow.
SUBSCRIPTION_BUFFER = 10_000

DEFAULT_KEEPALIVE = 10.0

_ERRORS = {
    "unknown_node": UnknownNode,
    "not_connected": UnknownNode,
    "not_allowed": NotAllowed,
    m.BAD_QUERY: BadQuery,
}


def _unexpected(reply: m.Message) -> HubError:
    """A reply of a type the request does not get: the hub broke the protocol."""
    return HubError(f"the hub answered with an unexpected {reply.TAG!r} message")


def _request_error(error: m.Error) -> RequestFailed:
    return _ERRORS.get(error.code, RequestFailed)(error.code, error.message)


def access_hint(path: Path) -> str:
    """Who may open the socket at ``path``, from the owners and modes on the way to it."""
    for directory in reversed(path.parents):  # from / down: the first one we may not pass
        if not os.access(directory, os.X_OK):
            return f"its directory {directory} is {_ownership(directory, 0o100, 0o010, 0o001)}"
    return _ownership(path, 0o200, 0o020, 0o002)  # connecting to a socket needs write permission


def _ownership(path: Path, user_bit: int, group_bit: int, other_bit: int) -> str:
    """``owned by USER:GROUP, mode NNNN: run as ...`` for the permission bits that matter."""
    try:
        info = path.stat()
    except OSError as exc:
        return f"its owner cannot be read: {exc.strerror}"
    mode = info.st_mode & 0o7777
    user, group = _user_name(info.st_uid), _group_name(info.st_gid)
    text = f"owned by {user}:{group}, mode {mode:04o}"
    if mode & other_bit:
        return text  # open to all by its mode: something else (a security module?) refuses
    who = ["root"]
    if info.st_uid != 0 and mode & user_bit:
        who.append(f"user {user}")
    if mode & group_bit:
        who.append(f"a member of group {group}")
    return f"{text}: run as {' or '.join(who)}"


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class Subscription:
    """Live updates; ``missed`` counts those the hub no longer held when we resumed."""

    def __init__(self, client: HubClient, receive: MemoryObjectReceiveStream[Update], reply: m.Subscribed) -> None:
        self._client = client
        self._receive = receive
        self.missed = reply.missed
        self.hub_seq = reply.seq
        self.last_seq: int | None = None

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        try:
            update = await self._receive.receive()
        except anyio.EndOfStream:
            raise self._client._lost_error(self.last_seq or 0) from None
        self.last_seq = update.seq
        return update


class HubClient:
    """One connection to the hub. Create it with ``HubClient.connect()``."""

    def __init__(self, link: Link) -> None:
        self._link = link
        self._ids = itertools.count(1)
        self._requests: dict[int, MemoryObjectSendStream[Reply]] = {}
        self._updates: MemoryObjectSendStream[Update] | None = None
        self._done = anyio.Event()
        self._failure: str | None = None
        self._slow_error: m.Error | None = None

    @classmethod
    @asynccontextmanager
    async def connect(cls, path: str | Path | None = None, *, timeout: float = 5.0) -> AsyncIterator[HubClient]:
        """Connect to the hub's socket (``SECMON_SOCKET`` or the default path)."""
        path = Path(path) if path is not None else socket_path()
        try:
            with anyio.fail_after(timeout):
                stream = await anyio.connect_unix(path)
        except TimeoutError:
            raise HubUnavailable(f"the hub on {path} did not answer within {timeout:g} s") from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise HubRefused(f"cannot connect to {path}: permission denied ({access_hint(path)})") from None
            raise HubUnavailable(f"no hub is running on {path} ({exc.strerror or exc})") from None
        connection = Connection(
            Role.CLIENT, Role.HUB, keepalive=DEFAULT_KEEPALIVE, handshake_timeout=timeout, now=anyio.current_time()
        )  # the hub's welcome sets the keepalive
        link = Link(stream, connection, max_queue=REQUEST_BUFFER)
        try:
            welcome = await link.handshake(m.Hello(m.PROTOCOL_VERSION, m.ROLE_CLIENT))
        except HandshakeFailed as exc:
            await link.finish()
            raise HubUnavailable(f"the hub on {path} did not welcome this client: {exc}") from None
        if type(welcome) is m.Error:  # the connection allows only a welcome or a refusal here
            await link.finish()
            raise HubRefused(f"the hub on {path} refused this client: {welcome.message}")
        client = cls(link)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client._run)
                try:
                    yield client
                finally:
                    link.close("client finished")
                    with anyio.move_on_after(1):  # let a final Cancel reach the hub
                        await client._done.wait()
                    tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise single_error(group) from None

    # --- dispatch ----------------------------------------------------------

    async def _run(self) -> None:
        reason = await self._link.run(self._dispatch)
        self._done.set()
        self._failure = self._failure or f"connection to the hub lost: {reason}"
        for stream in self._requests.values():
            stream.close()
        if self._updates is not None:
            self._updates.close()

    def _dispatch(self, batch: list[Decoded]) -> None:
        """Hand each message on; the connection has let through only what a hub may send a client."""
        for message in batch:
            match message:
                case m.NodeUpdate() | m.AuthUpdate() | m.NoticeUpdate():
                    self._hand_on(message)
                case m.AuthUpdates():
                    for update in message.updates():
                        self._hand_on(update)
                case m.Error(request_id=None):
                    if message.code == "slow_consumer":
                        self._slow_error = message
                    self._failure = f"the hub ended the connection: {message.message}"
                case m.NodeList() | m.Subscribed() | m.Started() | m.CommandOutput() | m.CommandResult() | m.Error():
                    self._reply(message)
                case m.EventList() | m.EventStats() | m.HubStatus() | m.MuteRules() | m.AuditList() | m.NoticeList():
                    self._reply(message)

    def _reply(self, message: Reply) -> None:
        """Pass a reply to the request it answers; a request whose caller has left is cancelled."""
        request_id = message.request_id
        assert request_id is not None  # an Error without one ended the link instead
        stream = self._requests.get(request_id)
        if stream is not None:
            try:
                stream.send_nowait(message)
            except (anyio.WouldBlock, anyio.BrokenResourceError):
                self._cancel(request_id)

    def _hand_on(self, update: Update) -> None:
        """Pass an update to the subscription; one that reads too slowly is ended (it can resume)."""
        if self._updates is not None:
            try:
                self._updates.send_nowait(update)
            except anyio.WouldBlock:
                self._slow_error = m.Error("slow_consumer", "subscriber read too slowly")
                self._updates.close()
                self._updates = None

    def _lost_error(self, last_seq: int) -> HubError:
        if self._slow_error is not None:
            return SubscriptionLost(self._slow_error.message, last_seq)
        return HubUnavailable(self._failure or "connection to the hub lost")

    def _open(self) -> tuple[int, MemoryObjectReceiveStream[Reply]]:
        if self._failure:
            raise HubUnavailable(self._failure)
        request_id = next(self._ids)
        send, receive = anyio.create_memory_object_stream[Reply](REQUEST_BUFFER)
        self._requests[request_id] = send
        return request_id, receive

    def _close(self, request_id: int) -> None:
        stream = self._requests.pop(request_id, None)
        if stream is not None:
            stream.close()

    def _cancel(self, request_id: int) -> None:
        self._close(request_id)
        self._link.send(m.Cancel(request_id))

    async def _answer(self, receive: MemoryObjectReceiveStream[Reply]) -> Answer:
        """The next reply to a request; an Error is raised as the request's failure."""
        try:
            reply = await receive.receive()
        except anyio.EndOfStream:
            raise HubUnavailable(self._failure or "connection to the hub lost") from None
        if isinstance(reply, m.Error):
            raise _request_error(reply)
        return reply

    async def _next(self, receive: MemoryObjectReceiveStream[Reply], expected: type[Expected]) -> Expected:
        """The next reply to a request, which must be an ``expected``."""
        reply = await self._answer(receive)
        if not isinstance(reply, expected):
            raise _unexpected(reply)
        return reply

    async def _ask(
        self, request: m.Message, request_id: int, receive: MemoryObjectReceiveStream[Reply], answer: type[Expected]
    ) -> Expected:
        self._link.send(request)
        try:
            return await self._next(receive, answer)
        finally:
            self._close(request_id)

    # --- API ---------------------------------------------------------------

    async def list_nodes(self) -> list[m.NodeInfo]:
        """Every node the hub knows: connected ones and those within their grace period."""
        request_id, receive = self._open()
        reply = await self._ask(m.ListNodes(request_id), request_id, receive, m.NodeList)
        return reply.nodes

    async def status(self) -> m.HubStatus:
        """How the hub stands: the nodes it holds, and in a cluster its link to the others."""
        request_id, receive = self._open()
        return await self._ask(m.GetStatus(request_id), request_id, receive, m.HubStatus)

    async def find_node(self, query: str) -> m.NodeInfo:
        """The node whose serial, hostname or address is ``query``; raises UnknownNode."""
        request_id, receive = self._open()
        reply = await self._ask(m.FindNode(request_id, query), request_id, receive, m.NodeList)
        return reply.nodes[0]

    async def events(self, query: m.EventFilter | None = None, limit: int = 100) -> m.EventList:
        """The latest ``limit`` auth events of the hub's history that pass ``query``, oldest first.

        ``last_seq`` of the answer is the hub's sequence when it ran: ``subscribe(last_seq)``
        goes on from there without a gap or a duplicate. ``updates()`` gives them as AuthUpdates.
        Raises BadQuery when the hub cannot answer as asked.
        """
        request_id, receive = self._open()
        request = m.QueryEvents(request_id, query or m.EventFilter(), limit)
        return await self._ask(request, request_id, receive, m.EventList)

    async def event_stats(
        self,
        query: m.EventFilter | None = None,
        *,
        by: str = m.BY_TIME,
        bucket: float = 3600.0,
        group: str = "",
        limit: int = 10,
    ) -> m.EventStats:
        """Counts of the history's events that pass ``query``: per ``bucket`` seconds (``by="time"``,
        optionally per ``group`` node or kind), or the ``limit`` nodes, kinds, sources or users with most.
        """
        request_id, receive = self._open()
        request = m.QueryStats(request_id, query or m.EventFilter(), by, bucket, group, limit)
        return await self._ask(request, request_id, receive, m.EventStats)

    async def mutes(self) -> list[m.MuteRule]:
        """The mute rules in force, by id."""
        request_id, receive = self._open()
        return (await self._ask(m.ListMutes(request_id), request_id, receive, m.MuteRules)).rules

    async def add_mute(
        self,
        *,
        source: str | None = None,
        user: str | None = None,
        node: str | None = None,
        kind: str | None = None,
        duration: float | None = None,
        reason: str = "",
        on_behalf: str = "",
    ) -> m.MuteRule:
        """Add a mute rule; every field given must match an event for the rule to mute it.

        ``duration`` seconds until it expires (None: never). Raises BadQuery when the hub
        refuses the rule (no field given, a source that is no address or network, ...).
        """
        request_id, receive = self._open()
        request = m.AddMute(request_id, source, user, node, kind, duration, reason, on_behalf)
        return (await self._ask(request, request_id, receive, m.MuteRules)).rules[0]

    async def remove_mute(self, rule_id: int, *, on_behalf: str = "") -> m.MuteRule:
        """Remove mute rule ``rule_id``; the removed rule. Raises RequestFailed when there is none."""
        request_id, receive = self._open()
        request = m.RemoveMute(request_id, rule_id, on_behalf)
        return (await self._ask(request, request_id, receive, m.MuteRules)).rules[0]

    async def audit(self, since: float | None = None, limit: int = 100) -> m.AuditList:
        """The latest ``limit`` command records started at or after ``since`` (Unix time), oldest first."""
        request_id, receive = self._open()
        return await self._ask(m.QueryAudit(request_id, since, limit), request_id, receive, m.AuditList)

    async def notices(self, since: float | None = None, limit: int = 100) -> m.NoticeList:
        """The latest ``limit`` notices at or after ``since`` (Unix time), oldest first."""
        request_id, receive = self._open()
        return await self._ask(m.QueryNotices(request_id, since, limit), request_id, receive, m.NoticeList)

    async def subscribe(self, since: int | None = None) -> Subscription:
        """Start receiving updates, first those after ``since`` that the hub still holds."""
        if self._updates is not None:
            raise HubError("this connection is already subscribed")
        send, updates = anyio.create_memory_object_stream[Update](SUBSCRIPTION_BUFFER)
        self._updates = send
        request_id, receive = self._open()
        reply = await self._ask(m.Subscribe(request_id, since), request_id, receive, m.Subscribed)
        return Subscription(self, updates, reply)

    async def execute(
        self, target: str, label: str, *, stream: bool = True, wait: float = 0.0, on_behalf: str = ""
    ) -> AsyncIterator[ExecuteItem]:
        """Run ``label`` on one node or on every connected one (``"-"``).

        Yields Started (the serials it runs on), then CommandOutput lines when
        streaming, and one CommandResult per node. Leaving the loop early, or
        being cancelled, cancels the command on the nodes. ``on_behalf`` names who
        the caller runs it for, in the hub's audit ("telegram:ID @name", "http:NAME").
        """
        request_id, receive = self._open()
        self._link.send(m.Execute(request_id, target, label, stream, wait, on_behalf))
        finished = False
        try:
            started = await self._next(receive, m.Started)
            yield started
            remaining = set(started.serials)
            while remaining:
                item = await self._answer(receive)
                match item:
                    case m.CommandResult():
                        remaining.discard(item.serial)
                    case m.CommandOutput():
                        pass
                    case _:
                        raise _unexpected(item)
                yield item
            finished = True
        finally:
            if finished:
                self._close(request_id)
            else:
                self._cancel(request_id)


@asynccontextmanager
async def follow_updates(
    since: int | None = None, *, path: str | Path | None = None, max_backoff: float = 30.0
) -> AsyncIterator[MemoryObjectReceiveStream[Update]]:
    """A stream of updates that survives hub restarts and slow spells.

        async with follow_updates(since=last_seen) as updates:
            async for update in updates:
                ...

    A background task reconnects with capped, jittered backoff and resumes from
    the last sequence it passed on, so nothing the hub still holds is lost.
    Integrations use this; failures are logged, never raised.
    """
    send, receive = anyio.create_memory_object_stream[Update](SUBSCRIPTION_BUFFER)

    async def pump() -> None:
        last = since
        delay = 0.25
        while True:
            try:
                async with HubClient.connect(path) as hub:
                    subscription = await hub.subscribe(last)
                    if subscription.missed:
                        log.warning("resumed after seq %s: %d updates were no longer held", last, subscription.missed)
                    if last is None:
                        last = subscription.hub_seq
                    log.info("following the hub's updates after seq %d", last)
                    delay = 0.25
                    async for update in subscription:
                        await send.send(update)
                        last = update.seq
            except (HubUnavailable, SubscriptionLost) as exc:
                log.warning("%s; reconnecting in %.1f s", exc, delay)
            await anyio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, max_backoff)

    async with anyio.create_task_group() as tg:
        tg.start_soon(pump)
        try:
            yield receive
        finally:
            tg.cancel_scope.cancel()
