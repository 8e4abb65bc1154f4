"""One SecMon conversation, sans-IO: who may send what, when, and how long silence may last.

A Connection is one end of one link. Bytes from the peer go into
``receive_data``, which returns the messages they complete after checking each
against the table below; ``send`` returns the bytes of a message our role may
send now; ``tick`` is called with the time at least every ``next_tick``, and
returns a keepalive to send or raises when a deadline has passed. It reads no
clock and touches no socket, so the hub, the node and the client library
drive the same rules through their own I/O, and tests drive them with plain
calls.

Every link has an initiator (a node or a client) and the hub that accepts it.
Each side's sending goes through these states:

    initiator   START ──Hello──▶ OPEN
    hub         START ──(a valid Hello arrives)──▶ may answer ──Welcome──▶ OPEN
    either      any state ──Error without a request id, sent or received──▶ CLOSED (both sides)

An initiator may send requests right behind its hello (pipelining); they reach
the hub's caller only after the caller has judged the hello and welcomed the
peer. Until the welcome, the hub sends nothing but an Error. An Error is
allowed at any time: in place of an opening it ends the link (from the hub, a
refusal), with a request id it ends one request, without one it ends the link.
A link ended by either side sends nothing more, and after one keepalive
interval ``tick`` gives up on a peer that has not closed it. Keepalives are
consumed here; the caller never sees one.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass

from . import messages as m
from .batches import EventRun, EventRunDecoder
from .codec import Decoded, FrameDecoder, encode
from .errors import (
    HandshakeTimeout,
    HelloRefused,
    InvalidMessage,
    LocalProtocolError,
    PeerNotReading,
    PeerSilent,
    UnexpectedMessage,
)

MISSED_KEEPALIVES = 3  # a peer silent for this many intervals is gone; one lost keepalive is not enough
MIN_KEEPALIVE = 0.05  # seconds: a hub's welcome may not make its peers spin
MAX_KEEPALIVE = 3600.0  # seconds: nor switch off their watch for a silent hub
MAX_HOSTNAME = 255  # what a DNS name can be; a node names itself in its hello

KEEPALIVE_FRAME = encode(m.Keepalive())


class Role(enum.Enum):
    """Who is at one end of a link."""

    HUB = "hub"
    NODE = m.ROLE_NODE
    CLIENT = m.ROLE_CLIENT


@dataclass(frozen=True, slots=True)
class Rules:
    """What one side of a link may send: its opening message, then the rest."""

    opening: frozenset[type[m.Message]]
    then: frozenset[type[m.Message]]


# Who may send what to whom: the one table. Keepalive (after the opening) and Error (at any
# time) are everyone's and are not repeated here.
RULES: dict[tuple[Role, Role], Rules] = {
    (Role.NODE, Role.HUB): Rules(
        opening=frozenset({m.Hello}),
        then=frozenset({m.StateUpdate, m.AuthEvents, m.CommandOutput, m.CommandResult}),
    ),
    (Role.HUB, Role.NODE): Rules(
        opening=frozenset({m.Welcome}),
        then=frozenset({m.Ack, m.RunCommand, m.CancelCommand}),
    ),
    (Role.CLIENT, Role.HUB): Rules(
        opening=frozenset({m.Hello}),
        then=frozenset(
            {
                m.ListNodes,
                m.FindNode,
                m.Subscribe,
                m.Execute,
                m.Cancel,
                m.QueryEvents,
                m.QueryStats,
                m.GetStatus,
                m.AddMute,
                m.ListMutes,
                m.RemoveMute,
                m.QueryAudit,
                m.QueryNotices,
            }
        ),
    ),
    (Role.HUB, Role.CLIENT): Rules(
        opening=frozenset({m.Welcome}),
        then=frozenset(
            {
                m.NodeList,
                m.Subscribed,
                m.NodeUpdate,
                m.AuthUpdate,
                m.AuthUpdates,
                m.NoticeUpdate,
                m.Started,
                m.CommandOutput,
                m.CommandResult,
                m.EventList,
                m.EventStats,
                m.HubStatus,
                m.MuteRules,
                m.AuditList,
                m.NoticeList,
            }
        ),
    ),
}


class State(enum.Enum):
    """Where one side's sending stands."""

    START = "start"  # its opening is next
    OPEN = "open"
    CLOSED = "closed"  # it ended the link (an Error without a request id, or we closed)


# The tag sets are made once per rule and shared: a hub holds a connection per node, thousands.
@functools.cache
def _allowed(types: frozenset[type[m.Message]]) -> frozenset[str]:
    return frozenset(t.TAG for t in types)


@functools.cache
def _opening_tags(rules: Rules) -> frozenset[str]:
    return _allowed(rules.opening) | {m.Error.TAG}


@functools.cache
def _open_tags(rules: Rules) -> frozenset[str]:
    return _allowed(rules.then) | {m.Error.TAG, m.Keepalive.TAG}


_ERROR_ONLY = frozenset({m.Error.TAG})
_UPDATE_TAG = m.NodeUpdate.TAG
_NOTHING: frozenset[str] = frozenset()


class Connection:
    """One end of a link: ``our_role`` talking to ``their_role`` (one of them the hub).

    ``now`` is the time the link opened, on the clock later passed to ``tick``.
    ``decoder`` replaces the frame decoder (the hub reads a node's auth events with
    one that keeps their bytes); whatever it returns must carry its message's TAG.
    """

    __slots__ = (
        "_closed_at",
        "_decoder",
        "_handshake_deadline",
        "_heard",
        "_initiator",
        "_last_heard",
        "_last_spoke",
        "_may_receive",
        "_may_send",
        "_ours",
        "_read_events",
        "_spoke",
        "_theirs",
        "_usual",
        "closed",
        "handshake_timeout",
        "keepalive",
        "our_role",
        "our_state",
        "peer_error",
        "their_role",
        "their_state",
    )  # a hub holds one per node: thousands

    def __init__(
        self,
        our_role: Role,
        their_role: Role,
        *,
        keepalive: float,
        handshake_timeout: float,
        now: float,
        decoder: FrameDecoder | None = None,
    ) -> None:
        if (our_role is Role.HUB) == (their_role is Role.HUB):
            raise LocalProtocolError(f"no link joins a {our_role.value} to a {their_role.value}")
        self.our_role = our_role
        self.their_role = their_role
        self.keepalive = max(keepalive, MIN_KEEPALIVE)
        self.handshake_timeout = handshake_timeout
        self.peer_error: m.Error | None = None  # the Error that ended the link from their side
        self._ours = RULES[our_role, their_role]
        self._theirs = RULES[their_role, our_role]
        self._initiator = our_role is not Role.HUB
        self._decoder = decoder or FrameDecoder()
        self.our_state = self.their_state = State.START
        self.closed = False  # our side has ended, or the peer ended the link: nothing more may be sent
        self._may_send = _opening_tags(self._ours) if self._initiator else _ERROR_ONLY
        self._may_receive = _opening_tags(self._theirs)
        self._usual = _NOTHING  # what needs no look beyond the table: the open state's
        self._read_events: Callable[[bytes], EventRun | None] | None = None  # see receive_events
        self._handshake_deadline = now + handshake_timeout
        self._last_heard = self._last_spoke = now
        self._heard = self._spoke = False  # since the last tick: tick stamps them, so no clock per read
        self._closed_at: float | None = None

    @property
    def peer_reason(self) -> str:
        """Why the link ended from the peer's side, as a log says it: its words quoted and cut, so they fake no line."""
        error = self.peer_error
        return f"closed by the peer: {error.message[:200]!r}" if error is not None else "closed"

    @property
    def is_open(self) -> bool:
        """Both openings are done and neither side has ended the link."""
        return self.our_state is State.OPEN and self.their_state is State.OPEN

    @property
    def buffered(self) -> int:
        """Bytes of a frame whose end has not arrived."""
        return self._decoder.buffered

    # --- receiving -----------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Decoded]:
        """The messages ``data`` completes, in order; raises RemoteProtocolError if the peer broke a rule."""
        self._heard = True
        if data == KEEPALIVE_FRAME and self.their_state is State.OPEN and not self._decoder.buffered:
            return []  # most of what an idle peer sends: nothing to decode
        messages = self._decoder.feed(data)
        usual = self._usual
        for message in messages:
            if message.TAG not in usual:
                return self._received_rarely(messages)
        return messages

    def receive_events(self, data: bytes) -> EventRun | None:
        """The steady state's fast path of ``receive_data``, for a hub reading a node: one read, one auth events frame.

        Only while the peer may send AuthEvents (its side is open, and the table lets its
        role send them) and only with a decoder that reads a node's auth events
        (``EventRunDecoder``): when ``data`` is exactly one whole AuthEvents frame whose
        events all pass the checks, the EventRun that ``receive_data(data)`` would return
        alone, with the same effect on this connection. Otherwise None, and nothing has
        changed: pass the same bytes to ``receive_data``, which judges them in full.
        """
        read = self._read_events
        if read is None:
            return None
        run = read(data)
        if run is not None:
            self._heard = True
        return run

    def _received_rarely(self, messages: list[Decoded]) -> list[Decoded]:
        """The slow path of receive_data: openings, keepalives, errors and faults, one by one."""
        kept = []
        for message in messages:
            tag = message.TAG
            if tag not in self._may_receive:
                raise UnexpectedMessage(self._unexpected(tag))
            if tag == m.Keepalive.TAG:
                continue
            if type(message) is m.Error and (message.request_id is None or self.their_state is State.START):
                self.peer_error = message  # in place of an opening too: from the hub, a refusal
                self._their_closed()
                self.close()  # the link is over both ways
            elif self.their_state is State.START:
                self._their_opening(message)
            kept.append(message)
        return kept

    def _unexpected(self, tag: str) -> str:
        them = self.their_role.value
        if self.their_state is State.CLOSED:
            return f"the {them} sent {tag!r} after ending the link"
        if self.their_state is State.START:
            opening = " or ".join(sorted(_allowed(self._theirs.opening)))
            return f"expected {opening}, got {tag!r}"
        return f"a {them} may not send {tag!r}"

    def _their_opening(self, message: Decoded) -> None:
        if self._initiator:  # the hub's welcome: both sides may speak, at the hub's keepalive
            assert type(message) is m.Welcome  # the table lets the hub open with nothing else
            if not MIN_KEEPALIVE <= message.keepalive <= MAX_KEEPALIVE:  # (NaN fails too)
                raise InvalidMessage(
                    f"welcome.keepalive: {message.keepalive} is not between {MIN_KEEPALIVE} and {MAX_KEEPALIVE}"
                )
            self.keepalive = message.keepalive
            self.their_state = State.OPEN
            self._their_open()
            return
        assert type(message) is m.Hello  # the table lets an initiator open with nothing else
        self._check_hello(message)
        self.their_state = State.OPEN
        self._their_open()
        if self.our_state is State.START:  # not if we refused before the hello came
            self._may_send = _opening_tags(self._ours)

    def _check_hello(self, hello: m.Hello) -> None:
        role = self.their_role.value
        if hello.version != m.PROTOCOL_VERSION:
            raise HelloRefused(
                f"protocol version {hello.version} is not supported (the hub speaks {m.PROTOCOL_VERSION})"
            )
        if hello.role != role:
            raise HelloRefused(f"this socket is for {role}s, not {hello.role!r}"[:200])
        if self.their_role is Role.NODE and not 0 < len(hello.hostname) <= MAX_HOSTNAME:
            raise HelloRefused(f"a node's hello must carry a hostname of at most {MAX_HOSTNAME} characters")

    def _their_open(self) -> None:
        self._may_receive = _open_tags(self._theirs)
        self._usual = _allowed(self._theirs.then)
        if m.AuthEvents.TAG in self._usual and isinstance(self._decoder, EventRunDecoder):
            self._read_events = self._decoder.read_events_frame

    def _their_closed(self) -> None:
        self.their_state = State.CLOSED
        self._may_receive = self._usual = _NOTHING
        self._read_events = None

    # --- sending -------------------------------------------------------------

    def send(self, message: m.Message) -> bytes:
        """The frame of ``message``; raises LocalProtocolError if our role may not send it now."""
        tag = message.TAG
        if tag not in self._may_send:
            raise LocalProtocolError(self._not_ours(tag))
        if self.our_state is not State.OPEN:
            self._sent_rarely(message)
        elif type(message) is m.Error and message.request_id is None:
            self.close()
        self._spoke = True
        return encode(message)

    def send_update(self, frame: bytes) -> bytes:
        """An update frame encoded once for every subscriber: passed through if we may send updates now."""
        if _UPDATE_TAG not in self._may_send:  # (only the open state's tags hold it)
            raise LocalProtocolError(self._not_ours(_UPDATE_TAG))
        self._spoke = True
        return frame

    def _not_ours(self, tag: str) -> str:
        if self.our_state is State.CLOSED:
            return f"{tag!r} after this side ended the link"
        if self.our_state is not State.OPEN:
            return f"{tag!r} before the handshake is done"
        return f"a {self.our_role.value} may not send {tag!r} to a {self.their_role.value}"

    def _sent_rarely(self, message: m.Message) -> None:
        if type(message) is m.Error:
            if message.request_id is None:
                self.close()
            return
        # our hello, or our welcome to a hello we judged
        self.our_state = State.OPEN
        self._may_send = _open_tags(self._ours)

    def close(self) -> None:
        """We end the link: nothing more may be sent, and the peer has one interval to read what was."""
        self.our_state = State.CLOSED
        self.closed = True
        self._may_send = _NOTHING

    # --- time ----------------------------------------------------------------

    def next_tick(self, now: float) -> float:
        """When ``tick`` must next be called: by the handshake deadline, and twice per keepalive interval."""
        due = now + self.keepalive / 2
        return min(due, self._handshake_deadline) if self.their_state is State.START else due

    def tick(self, now: float) -> bytes:
        """Keepalive duty at ``now``: the bytes to send (often none), or an error when a deadline passed."""
        if self._heard:
            self._heard, self._last_heard = False, now
        if self._spoke:
            self._spoke, self._last_spoke = False, now
        interval = self.keepalive
        if self.our_state is State.CLOSED:
            if self._closed_at is None:
                self._closed_at = now
            elif now - self._closed_at > interval:
                raise PeerNotReading("peer stopped reading")
            return b""
        if not self.is_open:
            if self.their_state is State.START and now >= self._handshake_deadline:
                opening = "welcome" if self._initiator else "hello"
                raise HandshakeTimeout(f"no {opening} within {self.handshake_timeout:g} s")
            return b""  # the hub has yet to answer a hello, or the peer ended the link
        if now - self._last_heard > MISSED_KEEPALIVES * interval:
            raise PeerSilent(f"peer silent for {MISSED_KEEPALIVES} keepalive intervals")
        if now - self._last_spoke >= interval:  # quiet for an interval: a 3x margin on the peer's side
            self._last_spoke = now
            return KEEPALIVE_FRAME
        return b""
