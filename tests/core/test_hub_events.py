"""The hub reads auth events as checked maps; it must judge them exactly as the typed decoder does."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmon.hub.events import AuthEventMaps, NodeDecoder, auth_update_frames, lone_event_bytes
from secmon.hub.registry import NodeEntry
from secmon.protocol import FrameDecoder, InvalidMessage, ProtocolError, encode
from secmon.protocol import messages as m

GOOD = {"seq": 1, "time": 1764382141.5, "kind": "ssh_failed_password", "process": "sshd", "pid": 9, "user": "root"}
FIELDS = ["seq", "time", "kind", "process", "pid", "user", "host", "port", "method", "target_user", "command", "tty"]


def frame(raw: object) -> bytes:
    body = msgpack.packb(raw)
    return len(body).to_bytes(4, "big") + body


def verdicts(raw: object) -> tuple[object, object]:
    """What the typed decoder and the hub's decoder make of one frame: messages or error text."""
    results = []
    for decoder in (FrameDecoder(), NodeDecoder()):
        try:
            results.append(decoder.feed(frame(raw)))
        except InvalidMessage as exc:
            results.append(str(exc))
    return results[0], results[1]


def same_verdict(raw: object) -> None:
    typed, checked = verdicts(raw)
    if isinstance(typed, str):
        assert checked == typed
        return
    [message] = typed
    [maps] = checked
    assert type(maps) is AuthEventMaps
    # What the hub passes on decodes to exactly the events the typed decoder built.
    wire = msgpack.unpackb(msgpack.packb(maps.events))
    rebuilt = FrameDecoder().feed(frame({"t": "auth_events", "events": wire}))
    assert rebuilt == [message]


@pytest.mark.parametrize(
    "events",
    [
        [GOOD],
        [GOOD, {**GOOD, "seq": 2, "time": 5}],  # an integer time is made a float
        [{**GOOD, "seq": True}],
        [GOOD, {**GOOD, "pid": "9"}],  # the error names the second event
        [{**GOOD, "extra": 1}],
        [{k: v for k, v in GOOD.items() if k != "kind"}],
        [["not", "a", "map"]],
        "not a list",
    ],
)
def test_checked_maps_agree_with_the_typed_decoder(events):
    same_verdict({"t": "auth_events", "events": events})


def test_unknown_fields_of_the_message_itself_are_refused():
    typed, checked = verdicts({"t": "auth_events", "events": [], "x": 1})
    assert checked == "auth_events: unknown field x"
    assert typed == checked


def test_a_remembered_shape_still_rejects_values_of_other_types():
    same_verdict({"t": "auth_events", "events": [GOOD]})  # this shape is now remembered as good
    assert "auth_events.events[0].seq: expected int, got str" in verdicts(
        {"t": "auth_events", "events": [{**GOOD, "seq": "1"}]}
    )
    # a shape that needed converting is not remembered as passing unchanged
    for _ in range(2):
        [maps] = NodeDecoder().feed(frame({"t": "auth_events", "events": [{**GOOD, "time": 3}]}))
        assert type(maps.events[0]["time"]) is float


VALUES = st.one_of(
    st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False), st.text(max_size=5), st.none(), st.booleans()
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from([*FIELDS, "junk"]), VALUES, min_size=3), max_size=3))
def test_random_events_get_the_same_verdict_twice(events):
    for _ in range(2):  # the second time, shapes that passed are taken from memory
        same_verdict({"t": "auth_events", "events": events})


def test_the_node_and_the_hub_encode_events_the_same_way():
    event = m.AuthEvent(3, 1.5, "su_opened", "su", None, "alice", target_user="root")
    [maps] = NodeDecoder().feed(encode(m.AuthEvents([event])))
    assert maps.events[0]["target_user"] == "root" and maps.events[0]["seq"] == 3


ENTRY = NodeEntry(4, "web-<4>", "192.0.2.44", "id", ["auth"])


def relayed(frame_bytes: bytes) -> list[m.AuthUpdate]:
    """What a subscriber's typed decoder makes of the hub's frames for one node frame."""
    [maps] = NodeDecoder().feed(frame_bytes)
    frames = auth_update_frames(ENTRY, range(100, 100 + len(maps.events)), [(e, maps.encoded) for e in maps.events])
    return FrameDecoder().feed(b"".join(f for _, f in frames))


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb({"t": "auth_events", "events": [GOOD]}),  # tag first
        msgpack.packb({"events": [GOOD], "t": "auth_events"}),  # events first, as our encoder writes
        msgpack.packb({"events": [{**GOOD, "time": 5}], "t": "auth_events"}),  # an integer time, spliced as is
        b"\x82\xa6events\x91" + msgpack.packb(GOOD) + b"\xd9\x01t" + msgpack.packb("auth_events"),  # odd tag
        msgpack.packb({"t": "auth_events", "events": [GOOD, {**GOOD, "seq": 2}]}),  # two events
    ],
)
def test_relayed_events_read_exactly_as_the_node_sent_them(body):
    typed = FrameDecoder().feed(frame_bytes := len(body).to_bytes(4, "big") + body)[0]
    updates = relayed(frame_bytes)
    assert [u.event for u in updates] == typed.events
    assert [(u.seq, u.serial, u.hostname, u.address) for u in updates] == [
        (100 + i, 4, "web-<4>", "192.0.2.44") for i in range(len(typed.events))
    ]


def test_only_a_recognised_lone_event_is_spliced():
    event = msgpack.packb(GOOD)
    assert lone_event_bytes(msgpack.packb({"t": "auth_events", "events": [GOOD]})) == event
    assert lone_event_bytes(msgpack.packb({"events": [GOOD], "t": "auth_events"})) == event
    assert lone_event_bytes(b"\x82\xa6events\x91" + event + b"\xd9\x01t" + msgpack.packb("auth_events")) is None
    [maps] = NodeDecoder().feed(frame({"t": "auth_events", "events": [GOOD, GOOD]}))
    assert maps.encoded is None  # two events: encoded again, not spliced


@pytest.mark.parametrize(
    "body",
    [
        b"\x82\xa1t\xabauth_events\xa6events\x91" + msgpack.packb(GOOD) + b"\xc0",  # a byte after the event
        b"\x82\xa6events\x91" + msgpack.packb(GOOD) + b"\xc0\xa1t\xabauth_events",  # one before the tag
        b"\x82\xa1t\xabauth_events\xa6events\x91" + msgpack.packb({1: 2}),  # a key that is not a string
        b"\x82\xa1t\xabauth_events\xa6events\x91" + msgpack.packb(GOOD)[:-3],  # cut short
    ],
)
def test_lone_event_layouts_with_damage_are_refused_as_the_typed_decoder_refuses_them(body):
    errors = []
    for decoder in (FrameDecoder(), NodeDecoder()):
        with pytest.raises(ProtocolError) as info:
            decoder.feed(len(body).to_bytes(4, "big") + body)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]
