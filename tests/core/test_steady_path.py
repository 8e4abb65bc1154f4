"""The hub's steady-state path held against the general one it short-cuts.

One read bringing one node frame of auth events takes a fused path:
``EventRunDecoder.read_events_frame`` instead of ``feed``,
``Connection.receive_events`` instead of ``receive_data``, and
``NodeConnection.on_event_run`` instead of ``on_messages``. Each must give
exactly what the general path gives whenever it answers, and change nothing
when it declines, in every state of the connection and for any bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmon.config import HubSettings
from secmon.hub.hub import Hub
from secmon.hub.nodes import NodeConnection
from secmon.hub.registry import UpdateRing
from secmon.protocol import ProtocolError, encode
from secmon.protocol import messages as m
from secmon.protocol.batches import EventRun, EventRunDecoder
from secmon.protocol.connection import Connection, Role
from secmon.protocol.errors import PeerSilent

GOOD = {"seq": 1, "time": 1764382141.5, "kind": "ssh_failed_password", "process": "sshd", "pid": 9, "user": "root"}
FIELDS = ["seq", "time", "kind", "process", "pid", "user", "host", "port"]
VALUES = st.one_of(st.integers(-1, 2**33), st.floats(allow_nan=False), st.text(max_size=4), st.none(), st.booleans())
# Events that mostly pass (so the fast path answers) and sometimes do not.
TIMES = st.one_of(st.floats(0, 9), st.integers(0, 9))
PASSING = st.builds(lambda seq, time: {**GOOD, "seq": seq, "time": time}, st.integers(0, 50), TIMES)
ANY = st.dictionaries(st.sampled_from([*FIELDS, "junk"]), VALUES, min_size=3, max_size=6)
EVENTS = st.one_of(PASSING, PASSING, ANY)


def whole(body: bytes, length: int | None = None) -> bytes:
    return (len(body) if length is None else length).to_bytes(4, "big") + body


@st.composite
def reads(draw: st.DrawFn) -> bytes:
    """One read as a node could send it: a frame in either layout or another, whole, cut, doubled or damaged."""
    events = draw(st.lists(EVENTS, max_size=4))
    layout = draw(st.sampled_from(["tag first", "events first"] * 3 + ["extra field", "other message", "not a list"]))
    if layout == "tag first":
        body = msgpack.packb({"t": "auth_events", "events": events})
    elif layout == "events first":
        body = msgpack.packb({"events": events, "t": "auth_events"})
    elif layout == "extra field":
        body = msgpack.packb({"t": "auth_events", "events": events, "x": 1})
    elif layout == "other message":
        body = draw(st.sampled_from([encode(m.Keepalive())[4:], encode(m.StateUpdate(auth=m.AUTH_OK))[4:]]))
    else:
        body = msgpack.packb({"t": "auth_events", "events": {"a": 1}})
    shape = draw(st.sampled_from(["whole"] * 6 + ["cut", "two", "bad length", "damaged"]))
    if shape == "cut":
        return whole(body)[: draw(st.integers(0, len(body) + 3))]
    if shape == "two":
        return whole(body) + whole(body)
    if shape == "bad length":
        return whole(body, len(body) + draw(st.sampled_from([-1, 1, 2**31])))
    if shape == "damaged":
        data = bytearray(whole(body))
        data[draw(st.integers(4, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    return whole(body)


def outcome(call: object) -> object:
    """What a call returns, or the error it raises (type and text)."""
    try:
        return call()  # type: ignore[operator]
    except ProtocolError as exc:
        return type(exc), str(exc)


@settings(max_examples=400, deadline=None)
@given(reads(), st.binary(max_size=3))
def test_a_whole_events_frame_is_read_as_feed_reads_it_and_anything_else_is_left_to_feed(data, before):
    fast, general = EventRunDecoder(), EventRunDecoder()
    for decoder in (fast, general):
        decoder.feed(before)  # a frame's first bytes may be waiting
    run = fast.read_events_frame(data)
    if run is not None:
        assert not before
        assert general.feed(data) == [run]
        assert type(run) is EventRun and run.pieces is not None and len(run.pieces) == 1
    else:
        assert fast.buffered == general.buffered  # nothing was taken
        assert outcome(lambda: fast.feed(data)) == outcome(lambda: general.feed(data))
    assert fast.buffered == general.buffered


def hub_connection(state: str, their_role: Role = Role.NODE, *, plain: bool = False) -> Connection:
    """A hub's end of a link in ``state``, reading a node's frames as the hub does (unless ``plain``)."""
    decoder = None if plain else EventRunDecoder()
    connection = Connection(Role.HUB, their_role, keepalive=1.0, handshake_timeout=5.0, now=0.0, decoder=decoder)
    if state == "start":
        return connection
    connection.receive_data(encode(m.Hello(m.PROTOCOL_VERSION, their_role.value, "alpha")))
    if state == "hello":  # judged, not yet welcomed
        return connection
    connection.send(m.Welcome(m.PROTOCOL_VERSION, 1))
    if state == "we closed":
        connection.close()
    elif state == "they closed":
        connection.receive_data(encode(m.Error("bye", "going away")))
    return connection


def snapshot(connection: Connection) -> tuple[object, ...]:
    return connection.our_state, connection.their_state, connection.closed, connection.buffered, connection.is_open


STATES = ["start", "hello", "open", "we closed", "they closed"]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(STATES), st.sampled_from([(Role.NODE, False), (Role.NODE, True), (Role.CLIENT, False)]), reads())
def test_receive_events_answers_only_where_receive_data_would_return_that_run_alone(state, peer, data):
    their_role, plain = peer
    fast, general = hub_connection(state, their_role, plain=plain), hub_connection(state, their_role, plain=plain)
    run = fast.receive_events(data)
    if run is not None:
        assert state in ("hello", "open", "we closed") and their_role is Role.NODE and not plain
        assert general.receive_data(data) == [run]
    else:
        assert snapshot(fast) == snapshot(general)
        assert outcome(lambda: fast.receive_data(data)) == outcome(lambda: general.receive_data(data))
    assert snapshot(fast) == snapshot(general)


def test_a_node_whose_events_come_the_fast_way_is_heard():
    frame = whole(msgpack.packb({"t": "auth_events", "events": [GOOD]}))
    heard, silent = hub_connection("open"), hub_connection("open")
    for connection in (heard, silent):
        connection.tick(0.1)  # the hello was heard
    assert heard.receive_events(frame) is not None
    for connection in (heard, silent):
        connection.tick(2.0)
    heard.tick(4.5)  # heard by 2.0: not three intervals ago
    with pytest.raises(PeerSilent):
        silent.tick(4.5)


@dataclass(eq=False)
class QuietLink:
    """What a node connection asks of its link: acks are recorded."""

    peer: str = "127.0.0.1"
    sent: list[m.Message] = field(default_factory=list)

    def send(self, message: m.Message) -> bool:
        self.sent.append(message)
        return True


def node_of_a_hub() -> tuple[Hub, NodeConnection]:
    hub = Hub(HubSettings.from_env({"SECMON_SOCKET": "/nonexistent/hub.sock"}))
    hub.ring = UpdateRing(1000, start=1)  # the same numbers in both hubs compared
    entry = hub.registry.connect("alpha", "192.0.2.1", "id-alpha", ["auth"], 0.0)
    return hub, NodeConnection(hub, QuietLink(), entry)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 12), min_size=1, max_size=3), max_size=8), st.booleans())
def test_on_event_run_does_what_on_messages_does_with_that_one_run(reads_seqs, with_bytes):
    (hub_fast, fast), (hub_general, general) = node_of_a_hub(), node_of_a_hub()
    for seqs in reads_seqs:  # repeats and going back: duplicates the node resends
        body = msgpack.packb({"t": "auth_events", "events": [{**GOOD, "seq": s} for s in seqs]})
        for conn, deliver in ((fast, fast.on_event_run), (general, None)):
            [run] = EventRunDecoder().feed(whole(body))
            if not with_bytes:
                run.pieces = None
            if deliver is None:
                conn.on_messages([run])
            else:
                deliver(run)
    assert fast.entry.last_event_seq == general.entry.last_event_seq
    assert fast.unacknowledged == general.unacknowledged
    assert hub_fast.ring.after(0, 100) == hub_general.ring.after(0, 100)
    assert hub_fast.ring.seq == hub_general.ring.seq
