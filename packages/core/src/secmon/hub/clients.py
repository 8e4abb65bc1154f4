"""The hub's Unix-socket side: one connection per client.

Only the hub's own user and root are served (SO_PEERCRED). A client may list
and find nodes, hold one subscription, run commands and query the history; each request carries
its own id, so several run at once on one connection, up to a bound.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import socket
import sqlite3
import struct
import time
from dataclasses import dataclass, field, replace

import anyio
from anyio.abc import TaskGroup

from ..link import HandshakeFailed
from ..protocol import messages as m
from ..protocol.batches import UpdateFrame
from ..protocol.codec import Decoded
from ..protocol.queries import MAX_LIMIT, query_problem, time_problem
from .history import BadQuery
from .hub import ConnectedNode, Hub, Relay
from .mutes import BadMute
from .wire import HubLink

log = logging.getLogger("secmon.hub")

MAX_REQUESTS_IN_FLIGHT = 64  # commands one client may have running; more is a bug or an abuse
MAX_ON_BEHALF = 200  # characters of on_behalf kept (audit, rules, notices): "telegram:ID @name", "http:NAME"
MAX_QUERIES_IN_FLIGHT = 4  # history queries one client may have running: each holds a thread of the hub's
REPLAY_BATCH = 1_000  # held updates looked up at a time while a subscriber catches up


def peer_credentials(link: HubLink) -> tuple[int, int] | None:
    """The uid and gid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    try:
        if link.transport is None:  # gone already
            return None
        sock = link.transport.get_extra_info("socket")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except Exception:
        return None
    _pid, uid, gid = struct.unpack("3i", creds)
    return uid, gid


def may_connect(uid: int, gid: int, group: int | None) -> bool:
    """The hub's own user and root may; with a socket group, its members may too."""
    if uid in (os.getuid(), 0):
        return True
    if group is None:
        return False
    if gid == group:
        return True
    try:
        return group in os.getgrouplist(pwd.getpwuid(uid).pw_name, gid)
    except KeyError:
        return False


def who_may_connect(group: int | None) -> str:
    """The users ``may_connect`` lets in, in words, for the refusal a client is sent."""
    who = ["root"]
    if os.getuid() != 0:
        try:
            who.append(f"user {pwd.getpwuid(os.getuid()).pw_name}")
        except KeyError:
            who.append(f"uid {os.getuid()}")
    if group is not None:
        try:
            who.append(f"members of group {grp.getgrgid(group).gr_name}")
        except KeyError:
            who.append(f"members of gid {group}")
    return " and ".join([", ".join(who[:-1]), who[-1]]) if len(who) > 1 else who[0]


@dataclass(eq=False)
class ClientConnection:
    hub: Hub
    link: HubLink
    tg: TaskGroup
    name: str
    requester: m.Requester  # who the socket's peer is (its uid); a request may add on_behalf
    relays: set[Relay] = field(default_factory=set)
    executing: int = 0
    querying: int = 0
    last_seq: int = 0

    def deliver(self, frames: list[UpdateFrame]) -> None:
        """Queue broadcast frames; a subscriber that fell too far behind is dropped."""
        link = self.link
        for update in frames:
            if not link.send_update(update):
                break
            self.last_seq = update.last
        else:
            return
        self.hub.subscribers.discard(self)
        text = f"subscriber too slow: more than {link.max_queue} updates queued; resume with since={self.last_seq}"
        log.warning("client %s dropped: %s", self.name, text)
        link.close(text, m.Error("slow_consumer", text))

    def on_messages(self, batch: list[Decoded]) -> None:
        """Serve a client's requests; the connection has let through only what a client may send."""
        for message in batch:
            match message:
                case m.ListNodes():
                    self.link.send(m.NodeList(message.request_id, self.hub.registry.snapshot()))
                case m.FindNode():
                    entry = self.hub.registry.find(message.query)
                    if entry is None:
                        self._error(message.request_id, "unknown_node", f"no node matches {message.query!r}")
                    else:
                        self.link.send(m.NodeList(message.request_id, [entry.info()]))
                case m.Subscribe():
                    self._subscribe(message)
                case m.Execute():
                    if self.executing >= MAX_REQUESTS_IN_FLIGHT:
                        text = f"more than {MAX_REQUESTS_IN_FLIGHT} commands in flight"
                        self._error(message.request_id, "busy", text)
                        # refused before it ran: in the audit all the same, as having run nowhere
                        self.hub.audit_command(self.acting(message.on_behalf), message, [], time.time())
                    else:
                        self.executing += 1
                        self.tg.start_soon(self._execute, message)
                case m.QueryEvents() | m.QueryStats():
                    if self.querying >= MAX_QUERIES_IN_FLIGHT:
                        text = f"more than {MAX_QUERIES_IN_FLIGHT} history queries in flight; ask when one is answered"
                        self._error(message.request_id, "busy", text)
                    elif problem := query_problem(message):
                        self._error(message.request_id, m.BAD_QUERY, problem)
                    else:
                        self.querying += 1
                        self.tg.start_soon(self._query, message)
                case m.QueryAudit() | m.QueryNotices():
                    self._records(message)
                case m.GetStatus():
                    self.link.send(self.hub.status(message.request_id))
                case m.AddMute() | m.ListMutes() | m.RemoveMute():
                    self._mute_request(message)
                case m.Cancel():
                    for relay in [r for r in self.relays if r.request_id == message.request_id]:
                        self.hub.cancel_relay(relay, m.CANCELLED, "cancelled by the client")
                case m.Error():
                    pass  # the client ends its link; the connection has noted why

    async def _query(self, request: m.QueryEvents | m.QueryStats) -> None:
        """Answer a history query; nothing after the sequence it was asked at is in the answer."""
        history = self.hub.history
        ring = self.hub.ring
        try:
            if history is None:
                self._error(request.request_id, m.BAD_QUERY, "this hub keeps no history")
                return
            if isinstance(request, m.QueryEvents):
                last_seq, events, more = await history.events(request.filter, request.limit, lambda: ring.seq)
                self.link.send(m.EventList(request.request_id, last_seq, more, events))
            else:
                self.link.send(await history.stats(request, lambda: ring.seq, time.time()))
        except BadQuery as exc:
            self._error(request.request_id, m.BAD_QUERY, str(exc))
        except sqlite3.Error as exc:
            log.error("client %s: history query failed: %s", self.name, exc)
            self._error(request.request_id, "history_failed", f"the history could not answer: {exc}")
        except Exception as exc:  # a bug answering one query must not end the client's connection
            log.error("client %s: history query failed: %r", self.name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._error(request.request_id, "history_failed", f"the history could not answer: {exc!r}")
        finally:
            self.querying -= 1

    def _records(self, request: m.QueryAudit | m.QueryNotices) -> None:
        """Answer from the command audit or the notices kept: the latest ``limit``, oldest first."""
        if not 1 <= request.limit <= MAX_LIMIT:
            text = f"limit: must be a whole number from 1 to {MAX_LIMIT}, got {request.limit}"
            self._error(request.request_id, m.BAD_QUERY, text)
            return
        if request.since is not None and (problem := time_problem(request.since, "since")):
            self._error(request.request_id, m.BAD_QUERY, problem)
            return
        hub = self.hub
        assert hub.audit is not None and hub.notice_log is not None  # the hub made them
        if isinstance(request, m.QueryAudit):
            records, more = hub.audit.records(request.since, request.limit)
            self.link.send(m.AuditList(request.request_id, records, more))
        else:
            last_seq = hub.ring.seq  # every notice up to it is in the log: a subscription from it misses none
            notices, more = hub.notice_log.latest(request.since, request.limit)
            self.link.send(m.NoticeList(request.request_id, last_seq, notices, more))

    def _mute_request(self, request: m.AddMute | m.ListMutes | m.RemoveMute) -> None:
        """Answer a mute rules request: the rule added or removed, or every rule in force."""
        hub = self.hub
        try:
            if isinstance(request, m.ListMutes):
                rules = hub.mute_rules()
            elif isinstance(request, m.AddMute):
                rules = [hub.add_mute(request, self.acting(request.on_behalf))]
            else:
                rule = hub.remove_mute(request, self.acting(request.on_behalf))
                if rule is None:
                    self._error(request.request_id, "unknown_mute", f"no mute rule has id {request.id}")
                    return
                rules = [rule]
        except BadMute as exc:
            self._error(request.request_id, m.BAD_QUERY, str(exc))
            return
        self.link.send(m.MuteRules(request.request_id, rules))

    def acting(self, on_behalf: str) -> m.Requester:
        """Who a request is from: this connection's peer, for ``on_behalf`` cut to MAX_ON_BEHALF (it is
        kept in the audit, the mute rules and the notices, which must fit a frame however many)."""
        return replace(self.requester, on_behalf=on_behalf[:MAX_ON_BEHALF])

    def _error(self, request_id: int, code: str, text: str) -> None:
        self.link.send(m.Error(code, text, request_id))

    def _subscribe(self, request: m.Subscribe) -> None:
        ring = self.hub.ring
        if request.since is None:
            self.link.send(m.Subscribed(request.request_id, ring.seq, 0))
            self.last_seq = ring.seq
            self.hub.subscribers.add(self)
            return
        point, missed = ring.resume_point(request.since)
        self.link.send(m.Subscribed(request.request_id, ring.seq, missed))
        self.tg.start_soon(self.replay, point)

    async def replay(self, seq: int) -> None:
        """Send held updates after ``seq`` as fast as the client reads them, then go live.

        The last check for more and joining the live subscribers happen without an
        await in between, so no update falls into the gap. A reader so slow that
        updates it has not had leave the ring meanwhile is told so and dropped, like
        a live subscriber that falls behind; it resumes with an exact ``missed``.
        """
        ring = self.hub.ring
        link = self.link
        step = max(1, min(REPLAY_BATCH, link.max_queue // 2))
        while True:
            oldest = ring.oldest
            if oldest is not None and oldest > seq + 1:
                text = (
                    f"subscriber too slow: updates after {seq} left the ring during the replay; resume with since={seq}"
                )
                log.warning("client %s dropped: %s", self.name, text)
                link.close(text, m.Error("slow_consumer", text))
                return
            batch = ring.after(seq, step)
            if not batch:
                break
            batch[0] = batch[0].after(seq)  # resuming within a batch: only its updates after ``seq``
            for update in batch:
                if link.queued + update.count > link.max_queue:
                    await link.wait_for_room()  # below half the bound: room for a frame (see Hub.batch_limit)
                if not link.send_update(update):
                    return  # the link is closing
            seq = batch[-1].last
        self.last_seq = seq
        self.hub.subscribers.add(self)

    async def _execute(self, request: m.Execute) -> None:
        """Run a command request; it is in the audit whatever happens, as ``requester`` with the
        request's ``on_behalf`` (a request refused, or ended while it waited for its node, ran nowhere)."""
        requester = self.acting(request.on_behalf)
        asked = time.time()
        targets: list[ConnectedNode] | None = None
        try:
            targets = await self._targets(request)
            if targets is None:
                return
            audit_id = self.hub.audit_command(requester, request, targets, asked)
            self.link.send(m.Started(request.request_id, [t.entry.serial for t in targets]))
            relays = [self.hub.start_relay(self, request, node, audit_id) for node in targets]
            if request.wait > 0 and relays:
                await anyio.sleep(request.wait)
                for relay in relays:
                    if not relay.answered and relay.hub_id in self.hub.relays:
                        text = f"node did not answer within {request.wait:g} s"
                        self.hub.cancel_relay(relay, m.TIMEOUT, text)
        finally:
            if targets is None:
                self.hub.audit_command(requester, request, [], asked)
            self.executing -= 1

    async def _targets(self, request: m.Execute) -> list[ConnectedNode] | None:
        """The connected nodes to run on, waiting up to ``wait`` for a known one to connect."""
        hub = self.hub
        if request.target == m.ALL_NODES:
            return hub.command_nodes()
        said = False
        with anyio.move_on_after(request.wait):
            while True:
                entry = hub.registry.find(request.target)
                node = hub.command_node(entry) if entry is not None else None
                if node is not None:
                    return [node]
                if entry is None and request.wait <= 0:
                    break
                if not said:
                    log.info("client %s: waiting up to %g s for node %r", self.name, request.wait, request.target)
                    said = True
                await hub.node_change()
        entry = hub.registry.find(request.target)
        if entry is None:
            self._error(request.request_id, "unknown_node", f"no node matches {request.target!r}")
        else:
            self._error(request.request_id, "not_connected", f"node {entry.serial} ({entry.hostname}) is not connected")
        return None

    def close_all(self) -> None:
        self.hub.subscribers.discard(self)
        for relay in list(self.relays):
            self.hub.cancel_relay(relay, m.CANCELLED, "client went away")


async def _refuse_before_hello(link: HubLink, text: str) -> None:
    """Say why at once, but close only after the client's hello (or the deadline).

    A client writes its hello as soon as it connects; closing before that write
    lands makes the write fail, and the client would lose our reason unread.
    """
    link.send(m.Error("refused", text))
    with contextlib.suppress(HandshakeFailed):
        await link.handshake()
    link.close(text)
    await link.finish()


def user_name(uid: int) -> str:
    """The user name of ``uid``, or "" when the system has none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return ""


async def serve_client(hub: Hub, link: HubLink) -> None:
    """Serve one client connection to its end; never raises."""
    uid, gid = peer_credentials(link) or (-1, -1)
    name = f"uid={uid}"
    try:
        if not may_connect(uid, gid, hub.socket_gid):
            text = f"uid {uid} may not use this hub (only {who_may_connect(hub.socket_gid)} may connect)"
            log.warning("client refused: %s", text)
            await _refuse_before_hello(link, text)
            return
        try:
            await link.handshake()
        except HandshakeFailed as exc:
            log.warning("client %s: %s", name, exc)
            await link.finish()
            return
        link.send(m.Welcome(m.PROTOCOL_VERSION, keepalive=link.keepalive))
        async with anyio.create_task_group() as tg:
            conn = ClientConnection(hub, link, tg, name, m.Requester(uid, user_name(uid)))
            try:
                reason = await link.run(conn.on_messages)
            finally:
                conn.close_all()
                tg.cancel_scope.cancel()
        if reason != "connection closed by peer":
            log.info("client %s: %s", name, reason)
    except Exception as exc:  # a bug in one connection must not take the hub down
        log.error("client %s: internal error: %r", name, exc, exc_info=log.isEnabledFor(logging.DEBUG))
        link.abort("internal error")  # whatever state it was left in, it ends
