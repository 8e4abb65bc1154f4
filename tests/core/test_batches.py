"""The fast path's frames: a hub reads a node's auth events as checked maps and splices their bytes.

It must judge every frame exactly as the typed decoder does, and what it
splices must read, for a subscriber, exactly as what the node sent.
"""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmon.protocol import FrameDecoder, InvalidMessage, ProtocolError, encode
from secmon.protocol import messages as m
from secmon.protocol.batches import (
    MAX_BATCH,
    EventOrigin,
    EventRun,
    EventRunDecoder,
    UpdateFrame,
    auth_update_frames,
    events_bytes,
    node_update_frame,
)

GOOD = {"seq": 1, "time": 1764382141.5, "kind": "ssh_failed_password", "process": "sshd", "pid": 9, "user": "root"}
FIELDS = ["seq", "time", "kind", "process", "pid", "user", "host", "port", "method", "target_user", "command", "tty"]


def frame(raw: object) -> bytes:
    body = msgpack.packb(raw)
    return len(body).to_bytes(4, "big") + body


def verdicts(raw: object) -> tuple[object, object]:
    """What the typed decoder and the hub's decoder make of one frame: messages or error text."""
    results = []
    for decoder in (FrameDecoder(), EventRunDecoder()):
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
    [run] = checked
    assert type(run) is EventRun
    # What the hub passes on decodes to exactly the events the typed decoder built.
    wire = msgpack.unpackb(msgpack.packb(run.events))
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
        [run] = EventRunDecoder().feed(frame({"t": "auth_events", "events": [{**GOOD, "time": 3}]}))
        assert type(run.events[0]["time"]) is float


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
    [run] = EventRunDecoder().feed(encode(m.AuthEvents([event])))
    assert run.events[0]["target_user"] == "root" and run.events[0]["seq"] == 3


ORIGIN = EventOrigin(4, "web-<4>", "192.0.2.44")


def updates(data: bytes) -> list[m.AuthUpdate]:
    """What a subscriber's typed decoder makes of the hub's frames, one update per event (as the client library)."""
    out = []
    for message in FrameDecoder().feed(data):
        out += message.updates() if type(message) is m.AuthUpdates else [message]
    return out


def relayed(frame_bytes: bytes) -> list[m.AuthUpdate]:
    """What a subscriber makes of the hub's frames for the node frames of one read, numbered from 100."""
    runs = EventRunDecoder().feed(frame_bytes)
    events = [e for run in runs for e in run.events]
    known = all(run.pieces is not None for run in runs)
    pieces = [piece for run in runs for piece in run.pieces] if known else None
    frames = auth_update_frames(ORIGIN, 100, EventRun(events, pieces))
    assert [(f.first, f.last) for f in frames] == [(100, 100 + len(events) - 1)]
    return updates(frames[0].frame)


@pytest.mark.parametrize(
    "body",
    [
        msgpack.packb({"t": "auth_events", "events": [GOOD]}),  # tag first
        msgpack.packb({"events": [GOOD], "t": "auth_events"}),  # events first, as our encoder writes
        msgpack.packb({"events": [{**GOOD, "time": 5}], "t": "auth_events"}),  # an integer time, spliced as is
        b"\x82\xa6events\x91" + msgpack.packb(GOOD) + b"\xd9\x01t" + msgpack.packb("auth_events"),  # odd tag
        msgpack.packb({"t": "auth_events", "events": [GOOD, {**GOOD, "seq": 2}]}),  # two events
        msgpack.packb({"events": [{**GOOD, "seq": s} for s in range(1, 21)], "t": "auth_events"}),  # array16 header
    ],
)
def test_relayed_events_read_exactly_as_the_node_sent_them(body):
    typed = FrameDecoder().feed(frame_bytes := len(body).to_bytes(4, "big") + body)[0]
    updates = relayed(frame_bytes)
    assert [u.event for u in updates] == typed.events
    assert [(u.seq, u.serial, u.hostname, u.address) for u in updates] == [
        (100 + i, 4, "web-<4>", "192.0.2.44") for i in range(len(typed.events))
    ]


def test_the_frames_of_one_read_go_out_as_one_update_frame_of_their_events():
    bodies = [frame({"t": "auth_events", "events": [{**GOOD, "seq": s} for s in seqs]}) for seqs in ([1], [2, 3], [4])]
    got = relayed(b"".join(bodies))
    assert [(u.seq, u.event.seq) for u in got] == [(100, 1), (101, 2), (102, 3), (103, 4)]
    assert all(u.hostname == "web-<4>" for u in got)


def test_only_a_recognised_layout_is_spliced():
    events = msgpack.packb([GOOD, GOOD])
    assert events_bytes(msgpack.packb({"t": "auth_events", "events": [GOOD, GOOD]})) == events
    assert events_bytes(msgpack.packb({"events": [GOOD, GOOD], "t": "auth_events"})) == events
    assert events_bytes(b"\x82\xa6events" + events + b"\xd9\x01t" + msgpack.packb("auth_events")) is None
    [run] = EventRunDecoder().feed(frame({"t": "auth_events", "events": [GOOD, GOOD]}))
    assert run.pieces == [(2, msgpack.packb(GOOD) * 2)]  # the events' bytes, without the array header


def test_the_auth_events_frames_of_one_read_decode_to_one_message_until_another_kind_comes():
    def auth(*seqs):
        return frame({"t": "auth_events", "events": [{**GOOD, "seq": s} for s in seqs]})

    state = encode(m.StateUpdate(sessions=[]))
    decoder = EventRunDecoder()
    first, update, second = decoder.feed(auth(1) + auth(2, 3) + state + auth(4))
    assert [e["seq"] for e in first.events] == [1, 2, 3] and [n for n, _ in first.pieces] == [1, 2]
    assert type(update) is m.StateUpdate
    assert [e["seq"] for e in second.events] == [4]
    [third] = decoder.feed(auth(5))  # a new read starts a new message
    assert [e["seq"] for e in third.events] == [5]


def test_in_a_run_of_frames_the_first_fault_is_reported_as_the_typed_decoder_reports_it():
    data = frame({"t": "auth_events", "events": [GOOD]})
    data += frame({"t": "auth_events", "events": [{**GOOD, "pid": "x"}]})  # the first fault
    data += len(b"\xc1").to_bytes(4, "big") + b"\xc1"  # a frame that does not decode at all
    errors = []
    for decoder in (FrameDecoder(), EventRunDecoder()):
        with pytest.raises(ProtocolError) as info:
            decoder.feed(data)
        errors.append(str(info.value))
    assert errors[0] == errors[1] and "events[0].pid" in errors[0]


def test_events_without_their_bytes_are_encoded_in_frames_of_at_most_max_batch():
    events = [{**GOOD, "seq": s} for s in range(1, MAX_BATCH + 3)]
    frames = auth_update_frames(ORIGIN, 10, EventRun(events))
    assert [(f.first, f.last) for f in frames] == [(10, 9 + MAX_BATCH), (10 + MAX_BATCH, 11 + MAX_BATCH)]
    assert [f.count for f in frames] == [MAX_BATCH, 2]
    got = updates(b"".join(f.frame for f in frames))
    assert [u.seq for u in got] == list(range(10, 12 + MAX_BATCH))
    assert [u.event.seq for u in got] == [e["seq"] for e in events]


def test_pieces_are_spliced_into_frames_up_to_the_limit_and_a_piece_over_it_is_encoded_in_parts():
    events = [{**GOOD, "seq": s} for s in range(1, 10)]
    counts = [1, 2, 1, 4, 1]  # as node frames brought them; with a limit of 3 the four are cut
    pieces, at = [], 0
    for count in counts:
        pieces.append((count, b"".join(msgpack.packb(e) for e in events[at : at + count])))
        at += count
    frames = auth_update_frames(ORIGIN, 1, EventRun(events, pieces), limit=3)
    assert [(f.first, f.last) for f in frames] == [(1, 3), (4, 4), (5, 7), (8, 8), (9, 9)]
    got = updates(b"".join(f.frame for f in frames))
    assert [(u.seq, u.event.seq) for u in got] == [(s, s) for s in range(1, 10)]


def test_a_batch_cut_for_a_subscriber_resuming_within_it_keeps_the_rest_exactly():
    events = [{**GOOD, "seq": s} for s in range(1, 6)]
    [whole] = auth_update_frames(ORIGIN, 50, EventRun(events, [(5, b"".join(msgpack.packb(e) for e in events))]))
    rest = whole.after(51)
    assert (rest.first, rest.last) == (52, 54)
    assert updates(rest.frame) == updates(whole.frame)[2:]
    last = whole.after(53)
    [alone] = updates(last.frame)
    assert type(FrameDecoder().feed(last.frame)[0]) is m.AuthUpdate  # one left: a plain AuthUpdate
    assert (last.first, last.last, alone.seq, alone.event.seq) == (54, 54, 54, 5)
    assert whole.after(49) is whole  # nothing to cut


@pytest.mark.parametrize(
    "body",
    [
        b"\x82\xa1t\xabauth_events\xa6events\x91" + msgpack.packb(GOOD) + b"\xc0",  # a byte after the event
        b"\x82\xa6events\x91" + msgpack.packb(GOOD) + b"\xc0\xa1t\xabauth_events",  # one before the tag
        b"\x82\xa1t\xabauth_events\xa6events\x91" + msgpack.packb({1: 2}),  # a key that is not a string
        b"\x82\xa1t\xabauth_events\xa6events\x91" + msgpack.packb(GOOD)[:-3],  # cut short
        b"\x82\xa1t\xabauth_events\xa6events\x92" + msgpack.packb(GOOD),  # fewer events than its header says
        b"\x82\xa1t\xabauth_events\xa6events" + msgpack.packb({"a": 1}),  # a map where the events belong
    ],
)
def test_spliced_layouts_with_damage_are_refused_as_the_typed_decoder_refuses_them(body):
    errors = []
    for decoder in (FrameDecoder(), EventRunDecoder()):
        with pytest.raises(ProtocolError) as info:
            decoder.feed(len(body).to_bytes(4, "big") + body)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]


OPTIONAL_TEXT = st.none() | st.text(max_size=8)
AUTH_EVENTS = st.builds(
    m.AuthEvent,
    seq=st.integers(1, 2**40),
    time=st.floats(0, 2e9, allow_nan=False),
    kind=st.sampled_from(["ssh_accepted", "ssh_failed_password", "su_opened"]),
    process=st.text(max_size=8),
    pid=st.none() | st.integers(0, 2**22),
    user=OPTIONAL_TEXT,
    host=OPTIONAL_TEXT,
    port=st.none() | st.integers(0, 65535),
    tty=OPTIONAL_TEXT,
)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(AUTH_EVENTS, min_size=1, max_size=40),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=40),
    limit=st.integers(1, 15),
    first=st.integers(1, 2**53),
)
def test_spliced_frames_read_as_the_typed_updates_of_the_events_the_node_sent(events, cuts, limit, first):
    """The node's frames (split at random) through the spliced path against plain typed updates, one per event."""
    frames, at = [], 0
    for cut in cuts:
        if at < len(events):
            frames.append(encode(m.AuthEvents(events[at : at + cut])))
            at += cut
    if at < len(events):
        frames.append(encode(m.AuthEvents(events[at:])))
    [run] = EventRunDecoder().feed(b"".join(frames))
    assert sum(count for count, _ in run.pieces) == len(run.events) == len(events)
    spliced = auth_update_frames(ORIGIN, first, run, limit)
    plain = [m.AuthUpdate(first + i, 4, "web-<4>", "192.0.2.44", event) for i, event in enumerate(events)]
    assert updates(b"".join(f.frame for f in spliced)) == plain
    assert updates(b"".join(f.frame for f in auth_update_frames(ORIGIN, first, EventRun(run.events), limit))) == plain
    # The frames cover first.. in order, without a gap, each within the limit (a piece is cut only when over it).
    assert [f.first for f in spliced] == [first] + [f.last + 1 for f in spliced[:-1]]
    assert spliced[-1].last == first + len(events) - 1
    for update in spliced:
        assert 1 <= update.count <= limit
        [message] = FrameDecoder().feed(update.frame)
        if update.count == 1:
            assert type(message) is m.AuthUpdate and message.seq == update.first
        else:
            assert type(message) is m.AuthUpdates and (message.seq, len(message.events)) == (update.first, update.count)


@settings(max_examples=100, deadline=None)
@given(events=st.lists(AUTH_EVENTS, min_size=2, max_size=12), data=st.data())
def test_a_frame_cut_after_any_of_its_updates_holds_exactly_the_rest(events, data):
    [whole] = auth_update_frames(ORIGIN, 70, EventRunDecoder().feed(encode(m.AuthEvents(events)))[0])
    seq = data.draw(st.integers(whole.first - 3, whole.last - 1))
    rest = whole.after(seq)
    assert (rest.first, rest.last) == (max(seq + 1, whole.first), whole.last)
    assert updates(rest.frame) == [u for u in updates(whole.frame) if u.seq > seq]


def test_a_frame_has_no_updates_after_its_last():
    [whole] = auth_update_frames(ORIGIN, 10, EventRun([GOOD, {**GOOD, "seq": 2}]))
    with pytest.raises(ValueError, match=r"no update of 10\.\.11 is after 11"):
        whole.after(11)


def test_the_splice_writes_every_field_of_the_update_messages():
    """The spliced maps are written field by field: a field added to these messages must be added there too."""
    fields = ["seq", "serial", "hostname", "address"]
    assert [f.name for f in dataclasses.fields(m.AuthUpdate)] == [*fields, "event", "context"]
    assert [f.name for f in dataclasses.fields(m.AuthUpdates)] == [*fields, "events", "contexts"]


def test_a_node_update_frame_holds_one_node_update():
    info = m.NodeInfo(3, "db", "192.0.2.3", True, None, [], m.NOT_MONITORED, m.INITIALIZING)
    update = node_update_frame(41, info, ["connected"])
    assert (update.first, update.last, update.count) == (41, 41, 1)
    assert FrameDecoder().feed(update.frame) == [m.NodeUpdate(41, info, ["connected"])]


def test_an_update_frame_goes_to_every_subscriber_unchanged():
    update = UpdateFrame(5, 5, encode(m.Keepalive()))
    assert update.count == 1 and update == UpdateFrame(5, 5, update.frame)
    assert update.after(4) is update


# --- event contexts in the spliced frames -----------------------------------------

CONTEXTS = st.none() | st.builds(
    m.EventContext,
    source=st.none()
    | st.builds(
        m.SourceContext, country=st.sampled_from([None, "DE"]), org=OPTIONAL_TEXT, asn=st.integers(0, 2**32 - 1)
    ),
    new=st.lists(st.sampled_from(["host", "asn", "country"]), unique=True),
    after_failures=st.integers(0, 1000),
    muted=st.lists(st.integers(1, 10**6), max_size=3),
    summarized=st.integers(0, 2**53),
)


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(AUTH_EVENTS, min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=30),
    limit=st.integers(1, 15),
)
def test_frames_without_contexts_are_byte_identical_to_the_plain_splice(events, cuts, limit):
    """A run whose contexts are all None (nothing was judged worth saying) is spliced exactly as before."""
    frames, at = [], 0
    for cut in cuts:
        if at < len(events):
            frames.append(encode(m.AuthEvents(events[at : at + cut])))
            at += cut
    if at < len(events):
        frames.append(encode(m.AuthEvents(events[at:])))
    [run] = EventRunDecoder().feed(b"".join(frames))
    plain = auth_update_frames(ORIGIN, 90, run, limit)
    assert auth_update_frames(ORIGIN, 90, run, limit, [None] * len(events)) == plain
    assert [f.frame for f in auth_update_frames(ORIGIN, 90, run, limit, None)] == [f.frame for f in plain]


@settings(max_examples=200, deadline=None)
@given(
    events=st.lists(AUTH_EVENTS, min_size=1, max_size=30),
    cuts=st.lists(st.integers(1, 12), min_size=1, max_size=30),
    limit=st.integers(1, 15),
    data=st.data(),
)
def test_spliced_frames_with_contexts_read_as_typed_updates_with_their_contexts(events, cuts, limit, data):
    contexts = data.draw(st.lists(CONTEXTS, min_size=len(events), max_size=len(events)))
    frames, at = [], 0
    for cut in cuts:
        if at < len(events):
            frames.append(encode(m.AuthEvents(events[at : at + cut])))
            at += cut
    if at < len(events):
        frames.append(encode(m.AuthEvents(events[at:])))
    [run] = EventRunDecoder().feed(b"".join(frames))
    pairs = enumerate(zip(events, contexts, strict=True))
    expected = [m.AuthUpdate(50 + i, 4, "web-<4>", "192.0.2.44", e, c) for i, (e, c) in pairs]
    spliced = auth_update_frames(ORIGIN, 50, run, limit, contexts)
    assert updates(b"".join(f.frame for f in spliced)) == expected
    encoded = auth_update_frames(ORIGIN, 50, EventRun(run.events), limit, contexts)
    assert updates(b"".join(f.frame for f in encoded)) == expected
    for update in spliced:  # a frame carries contexts only when one of its events has one
        [message] = FrameDecoder().feed(update.frame)
        mine = contexts[update.first - 50 : update.last + 1 - 50]
        if not any(mine):
            assert (message.context if update.count == 1 else message.contexts) is None
    # cut for a subscriber resuming within a frame: the rest, with their contexts
    whole = spliced[-1]
    if whole.count > 1:
        seq = data.draw(st.integers(whole.first, whole.last - 1))
        assert updates(whole.after(seq).frame) == [u for u in expected if seq < u.seq <= whole.last]


def test_contexts_must_be_one_per_event():
    with pytest.raises(ValueError, match="2 contexts for 1 events"):
        auth_update_frames(ORIGIN, 1, EventRun([GOOD]), contexts=[None, None])
