"""The hub's fast path as protocol types: a node's auth events in, update frames out, bytes spliced.

The hub only numbers a node's auth events and broadcasts them, so it never
needs them as objects. ``EventRunDecoder`` reads a node's frames: each event is
checked against AuthEvent (same checks, same errors as the typed decoder) and
stays a map, and a frame in the usual layout also yields its events' own bytes.
``auth_update_frames`` splices those bytes into the frames subscribers get, so
nothing is encoded again: the events one read brought from a node go out as
one AuthUpdates frame (an AuthUpdate when there is one). An ``UpdateFrame`` is
what travels from there on: through the ring, the store and every
subscriber's queue.

This is the one module that knows the MessagePack layout of these frames;
profiling showed object construction, re-encoding and per-frame work costing
more than everything else the hub does per event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from . import messages as m
from .codec import CONVERTERS, HEADER, Decoded, DecodedConverter, Folded, FrameDecoder, decode_body, encode, encode_body
from .errors import InvalidMessage
from .schema import record_checker

_packer = msgpack.Packer()
_pack = _packer.pack
_unpack = msgpack.unpackb

# Events per update frame at most (the hub asks for fewer with a short subscriber queue): a
# frame counts as this many against a subscriber's queue, and a subscriber resuming within
# one has it decoded and encoded again, so frames stay modest.
MAX_BATCH = 1_000


@dataclass(slots=True)
class EventRun(Folded):
    """A node's auth events, each a checked map, with their own bytes when all of them are known.

    ``events`` are maps that passed the AuthEvent checks (a float sent as an
    integer is a float here). ``pieces``, when not None, covers exactly those
    events, in order: each piece is (count, bytes), the bytes ``count``
    MessagePack objects back to back (no array header) that the typed decoder
    reads as the same AuthEvents as the maps they stand for. They are the
    node's own bytes, so an integer time stays an integer there; AuthEvent
    reads it as the same float. Those bytes are what a splice copies.
    """

    TAG: ClassVar[str] = m.AuthEvents.TAG  # it is an AuthEvents, as far as who may send it goes

    events: list[dict[str, Any]]
    pieces: list[tuple[int, bytes]] | None = None


@dataclass(frozen=True, slots=True)
class EventOrigin:
    """The node a batch of auth updates is about, as subscribers see it.

    ``packed`` is its fields as a spliced frame carries them, packed once per origin.
    """

    serial: int
    hostname: str
    address: str
    packed: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = ("serial", self.serial, "hostname", self.hostname, "address", self.address)
        object.__setattr__(self, "packed", b"".join(map(_pack, fields)))


@dataclass(slots=True)
class UpdateFrame:
    """One whole frame (length header and body) of the updates numbered ``first`` to ``last``.

    The frame holds one NodeUpdate or AuthUpdate when ``first == last``; an
    AuthUpdates whose ``seq`` is ``first`` and whose events number ``count``
    otherwise. The bytes go to every subscriber as they are; each frame counts
    ``count`` updates against a subscriber's queue. Nothing changes a frame once
    made; it is not a frozen dataclass only because one is made per read of
    every node, and a frozen one costs three times as much to make (and
    ``count``, read per subscriber, is stored rather than computed).
    """

    first: int
    last: int
    frame: bytes
    count: int = field(init=False)  # the updates this frame holds

    def __init__(self, first: int, last: int, frame: bytes) -> None:
        self.first = first
        self.last = last
        self.frame = frame
        self.count = last - first + 1

    def after(self, seq: int) -> UpdateFrame:
        """This frame cut to its updates after ``seq`` (for a subscriber resuming within a batch).

        The frame itself when all of its updates are after ``seq``. Decodes and encodes
        again: resuming mid-batch is rare.
        """
        if seq < self.first:
            return self
        if seq >= self.last:
            raise ValueError(f"no update of {self.first}..{self.last} is after {seq}")
        batch = decode_body(self.frame[4:])
        if type(batch) is not m.AuthUpdates:
            raise ValueError(f"only an AuthUpdates frame holds several updates, not {batch.TAG!r}")
        cut = seq + 1 - batch.seq
        events = batch.events[cut:]
        contexts = batch.contexts[cut:] if batch.contexts is not None else None
        if contexts is not None and not any(contexts):
            contexts = None
        if len(events) == 1:
            context = contexts[0] if contexts is not None else None
            frame = encode(m.AuthUpdate(seq + 1, batch.serial, batch.hostname, batch.address, events[0], context))
        else:
            frame = encode(m.AuthUpdates(seq + 1, batch.serial, batch.hostname, batch.address, events, contexts))
        return UpdateFrame(seq + 1, self.last, frame)


def node_update_frame(seq: int, node: m.NodeInfo, changed: list[str]) -> UpdateFrame:
    """The frame that broadcasts a node's state after a change."""
    return UpdateFrame(seq, seq, encode(m.NodeUpdate(seq=seq, node=node, changed=changed)))


# --- reading a node's frames ---------------------------------------------------

_check_event = record_checker(m.AuthEvent)


def _check_events(events: Any, path: str) -> list[dict[str, Any]]:
    if type(events) is not list:
        raise InvalidMessage(f"{path}.events: expected array, got {type(events).__name__}")
    try:
        for event in events:
            _check_event(event, f"{path}.events")
    except InvalidMessage:  # rare: check again, naming the event's index in the error
        for index, event in enumerate(events):
            _check_event(event, f"{path}.events[{index}]")
    return events


def _event_run(raw: dict[str, Any], path: str) -> EventRun:
    events = raw.pop("events", None)
    if raw:
        raise InvalidMessage(f"{path}: unknown field {', '.join(sorted(map(str, raw)))}")
    return EventRun(_check_events(events, path))


# What a hub decodes a node's frames with: auth events as an EventRun, everything else as usual.
_NODE_CONVERTERS: dict[str, DecodedConverter] = {**CONVERTERS, m.AuthEvents.TAG: _event_run}

# An auth_events body, in either key order: tag first (as most packers write a literal
# map) or events first (as our encoder writes fields before the tag).
_TAG_ENTRY = _pack("t") + _pack(m.AuthEvents.TAG)
_TAG_FIRST = b"\x82" + _TAG_ENTRY + _pack("events")
_EVENTS_FIRST = b"\x82" + _pack("events")
# The length of a MessagePack array header, by its first byte.
_ARRAY_HEADER = {**dict.fromkeys(range(0x90, 0xA0), 1), 0xDC: 3, 0xDD: 5}
# Where the events array starts in a whole frame (header included) of either layout.
_TAG_FIRST_ARRAY = HEADER + len(_TAG_FIRST)
_EVENTS_FIRST_ARRAY = HEADER + len(_EVENTS_FIRST)
_EVENTS_PATH = f"{m.AuthEvents.TAG}.events"


def events_bytes(body: bytes) -> bytes | None:
    """Where an auth_events body keeps its events array: that array's bytes, or None.

    If the body starts with the map header, the tag entry and the "events" key, and
    the rest is exactly one MessagePack object, the body is {"t": "auth_events",
    "events": that object}. The same holds for the other key order with the minimal
    14-byte tag entry at the end (no other encoding of that entry ends in those
    bytes). The caller checks the "exactly one object" and that it is an array.
    """
    if body.startswith(_TAG_FIRST):
        return body[len(_TAG_FIRST) :]
    if body.startswith(_EVENTS_FIRST) and body.endswith(_TAG_ENTRY):
        return body[len(_EVENTS_FIRST) : -len(_TAG_ENTRY)]
    return None


class EventRunDecoder(FrameDecoder):
    """The frame decoder a hub reads a node's frames with: auth events become EventRuns.

    Every frame is judged as the typed decoder judges it (same messages accepted,
    same errors). The AuthEvents frames that follow each other in one ``feed``
    become one EventRun; any other message ends the run, and the next ``feed``
    starts a new one. A frame in the usual layout (see ``events_bytes``) is
    decoded from its events array alone and adds that array's bytes as a piece;
    one in any other layout takes the general path, and its run carries no
    bytes.
    """

    def __init__(self) -> None:
        super().__init__(converters=_NODE_CONVERTERS)
        self._run: EventRun | None = None  # what this read's last frames decoded to, if auth events
        self._pieces: list[tuple[int, bytes]] = []  # the pieces of that run (it began with one)

    def feed(self, data: bytes) -> list[Decoded]:
        self._run = None
        return super().feed(data)

    def read_events_frame(self, data: bytes) -> EventRun | None:
        """The steady state's read: ``data`` is exactly one AuthEvents frame, decoded without the general loop.

        When nothing is buffered and ``data`` is one whole frame within the limit, in the
        usual layout (see ``events_bytes``), holding at least one event and only events
        that pass the checks: the EventRun that ``feed(data)`` returns alone, with the
        same events and the same one piece. Otherwise None, and nothing has changed:
        ``feed(data)`` reads those bytes as usual (and says what is wrong with them, if
        anything is).
        """
        size = len(data) - HEADER
        if self._partial or size <= 0 or size > self.max_frame or int.from_bytes(data[:HEADER], "big") != size:
            return None
        if data.startswith(_TAG_FIRST, HEADER):
            array = data[_TAG_FIRST_ARRAY:]
        elif data.startswith(_EVENTS_FIRST, HEADER) and data.endswith(_TAG_ENTRY):
            array = data[_EVENTS_FIRST_ARRAY : -len(_TAG_ENTRY)]
        else:
            return None
        try:
            events = _unpack(array)
        except Exception:  # not exactly one object
            return None
        if type(events) is not list or not events:
            return None
        check = _check_event
        try:
            for event in events:
                check(event, _EVENTS_PATH)
        except InvalidMessage:
            return None
        return EventRun(events, [(len(events), array[_ARRAY_HEADER[array[0]] :])])

    def decode(self, body: bytes) -> Decoded | None:
        """A frame in the usual layout joins the EventRun of the frames before it, if any."""
        array = events_bytes(body)
        if array is not None:
            try:
                events = _unpack(array)
            except Exception:  # not exactly one object: the general path says what is wrong
                pass
            else:
                if type(events) is list:
                    _check_events(events, m.AuthEvents.TAG)
                    piece = (len(events), array[_ARRAY_HEADER[array[0]] :])
                    run = self._run
                    if run is None:
                        self._pieces = [piece]
                        self._run = EventRun(events, self._pieces)
                        return self._run
                    run.events += events
                    self._pieces.append(piece)
                    return None
        self._run = None
        return decode_body(body, _NODE_CONVERTERS)


# --- building the frames subscribers get -----------------------------------------

# The spliced maps hold the tag and the five fields of AuthUpdate / AuthUpdates, in this order:
# t, seq, serial, hostname, address, event(s). A reader takes a map's keys in any order.
_SPLICED_FIELDS = ("seq", "serial", "hostname", "address")
_SPLICED_MAP = _packer.pack_map_header(1 + len(_SPLICED_FIELDS) + 1)
_UPDATE_HEAD = _SPLICED_MAP + _pack("t") + _pack(m.AuthUpdate.TAG) + _pack("seq")
_UPDATES_HEAD = _SPLICED_MAP + _pack("t") + _pack(m.AuthUpdates.TAG) + _pack("seq")
_EVENT_KEY = _pack("event")
_EVENTS_KEY = _pack("events")
# With contexts, a sixth field after the events: "context" (AuthUpdate) or "contexts" (AuthUpdates).
_WITH_CONTEXT_MAP = _packer.pack_map_header(1 + len(_SPLICED_FIELDS) + 2)
_UPDATE_HEAD_CONTEXT = _WITH_CONTEXT_MAP + _pack("t") + _pack(m.AuthUpdate.TAG) + _pack("seq")
_UPDATES_HEAD_CONTEXT = _WITH_CONTEXT_MAP + _pack("t") + _pack(m.AuthUpdates.TAG) + _pack("seq")
_CONTEXT_KEY = _pack("context")
_CONTEXTS_KEY = _pack("contexts")

Contexts = list[m.EventContext | None]


# Contexts packed lately, by identity (each entry holds its context, so no id is reused while it is
# here): the hub shares one context among the events a summary covers, so most are packed once.
_PACKED_CACHE = 512  # entries at most; the cache starts over when full
_packed: dict[int, tuple[m.EventContext, bytes]] = {}


def _packed_context(context: m.EventContext | None) -> bytes:
    if context is None:
        return b"\xc0"
    known = _packed.get(id(context))
    if known is not None and known[0] is context:
        return known[1]
    packed = encode_body(context)  # type: ignore[arg-type]  # a record packs as a map, as in a message
    if len(_packed) >= _PACKED_CACHE:
        _packed.clear()
    _packed[id(context)] = (context, packed)
    return packed


def _packed_contexts(contexts: Contexts, one: bool) -> bytes:
    """The context field's key and value: one context, or the list of them."""
    if one:
        return _CONTEXT_KEY + _packed_context(contexts[0])
    return b"".join((_CONTEXTS_KEY, _packer.pack_array_header(len(contexts)), *map(_packed_context, contexts)))


def _auth_update_frame(
    origin: EventOrigin, first: int, events: list[dict[str, Any]], encoded: bytes | None,
    contexts: Contexts | None = None,
) -> bytes:  # fmt: skip
    """The frame that broadcasts a node's new events numbered from ``first``.

    An AuthUpdate for one event, AuthUpdates for several; ``encoded``, the events'
    own bytes back to back, is spliced in when known. ``contexts``, one per event,
    go after the events when any is set.
    """
    one = len(events) == 1
    if contexts is not None and not any(contexts):
        contexts = None
    if encoded is None:
        tag, key, value = (m.AuthUpdate.TAG, "event", events[0]) if one else (m.AuthUpdates.TAG, "events", events)
        wire: dict[str, Any] = {"t": tag, "seq": first, "serial": origin.serial, "hostname": origin.hostname,
                "address": origin.address, key: value}  # fmt: skip
        if contexts is not None:
            wire["context" if one else "contexts"] = contexts[0] if one else contexts
        return encode(wire)
    if contexts is not None:
        head = _UPDATE_HEAD_CONTEXT if one else _UPDATES_HEAD_CONTEXT
        key_count = _EVENT_KEY if one else _EVENTS_KEY + _packer.pack_array_header(len(events))
        body = b"".join((head, _pack(first), origin.packed, key_count, encoded, _packed_contexts(contexts, one)))
        return len(body).to_bytes(4, "big") + body
    if one:
        body = b"".join((_UPDATE_HEAD, _pack(first), origin.packed, _EVENT_KEY, encoded))
    else:
        count = _packer.pack_array_header(len(events))
        body = b"".join((_UPDATES_HEAD, _pack(first), origin.packed, _EVENTS_KEY, count, encoded))
    return len(body).to_bytes(4, "big") + body


def auth_update_frames(
    origin: EventOrigin, first: int, run: EventRun, limit: int = MAX_BATCH, contexts: Contexts | None = None
) -> list[UpdateFrame]:
    """A node's new events, numbered from ``first``, as update frames of at most ``limit`` events each.

    The run's pieces, when known, are spliced together into frames as they come;
    events without bytes, and a piece over the limit, are encoded here. Every event
    is in exactly one frame, in order, and the frames' ranges follow each other
    without a gap. ``contexts`` (one per event, None for one without) travel in the
    frames with their events: a frame carries ``context``/``contexts`` only when one
    of its events has one, so with ``contexts`` None or all None the frames are
    byte for byte those without.
    """
    events = run.events
    pieces = run.pieces
    if contexts is not None:
        if len(contexts) != len(events):
            raise ValueError(f"{len(contexts)} contexts for {len(events)} events")
        if pieces is not None and len(pieces) == 1 and pieces[0][0] <= limit:  # one read, one frame
            frame = _auth_update_frame(origin, first, events, pieces[0][1], contexts)
            return [UpdateFrame(first, first + len(events) - 1, frame)]
    elif pieces is not None and len(pieces) == 1:  # one read, one frame: the usual case
        count, piece = pieces[0]
        if count == 1:
            body = b"".join((_UPDATE_HEAD, _pack(first), origin.packed, _EVENT_KEY, piece))
            return [UpdateFrame(first, first, len(body).to_bytes(4, "big") + body)]
        if count <= limit:
            return [UpdateFrame(first, first + count - 1, _auth_update_frame(origin, first, events, piece))]
    frames: list[UpdateFrame] = []
    done = 0  # events already in frames

    def emit(count: int, body: bytes | None) -> None:
        nonlocal done
        chunk = events[done : done + count]
        seq = first + done
        chunk_contexts = contexts[done : done + count] if contexts is not None else None
        frames.append(UpdateFrame(seq, seq + count - 1, _auth_update_frame(origin, seq, chunk, body, chunk_contexts)))
        done += count

    def emit_encoded(count: int) -> None:
        while count > 0:
            size = min(count, limit)
            emit(size, None)
            count -= size

    if run.pieces is None:
        emit_encoded(len(events))
        return frames
    group: list[bytes] = []  # pieces waiting to share a frame
    grouped = 0  # events in them
    for count, piece in run.pieces:
        if group and grouped + count > limit:
            emit(grouped, b"".join(group))
            group, grouped = [], 0
        if count > limit:
            emit_encoded(count)
        else:
            group.append(piece)
            grouped += count
    if group:
        emit(grouped, b"".join(group))
    return frames
