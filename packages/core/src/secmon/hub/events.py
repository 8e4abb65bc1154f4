"""How the hub reads auth events and passes them on without rebuilding them.

The hub only numbers a node's events and broadcasts them, so it never needs
them as objects: each event is checked against AuthEvent (same checks, same
errors as the typed decoder) and stays a map. A node's frame in the usual
layout is decoded from its events' bytes, and those bytes are spliced into the
update sent to subscribers, so nothing is encoded again: the events one read
brought from a node go out as one AuthUpdates frame (an AuthUpdate when there
is one). This module is the flood path: profiling showed object construction,
re-encoding and per-frame work costing more than everything else the hub does
per event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from ..protocol import CONVERTERS, FrameDecoder, InvalidMessage, decode_body, encode, record_checker
from ..protocol import messages as m
from .registry import NodeEntry

_packer = msgpack.Packer()
_pack = _packer.pack
_unpack = msgpack.unpackb

# Events per update frame at most (fewer with a short subscriber queue: Hub.batch_limit): a
# frame counts as this many against a subscriber's queue, and a subscriber resuming within
# one has it decoded and encoded again, so frames stay modest.
MAX_BATCH = 1_000


@dataclass(slots=True)
class AuthEventMaps:
    """A node's auth events, each a checked map, from one frame or a run of frames in one read.

    ``encoded``, when known, holds the events' own bytes as (count, bytes) pieces, one
    per frame, each piece its events back to back.
    """

    events: list[dict[str, Any]]
    encoded: list[tuple[int, bytes]] | None = None


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


def _auth_event_maps(raw: dict[str, Any], path: str) -> AuthEventMaps:
    events = raw.pop("events", None)
    if raw:
        raise InvalidMessage(f"{path}: unknown field {', '.join(sorted(map(str, raw)))}")
    return AuthEventMaps(_check_events(events, path))


# What the hub's node links decode with: auth events stay maps, everything else as usual.
NODE_CONVERTERS = {**CONVERTERS, m.AuthEvents.TAG: _auth_event_maps}

# An auth_events body, in either key order: tag first (as most packers write a literal
# map) or events first (as our encoder writes fields before the tag).
_TAG_ENTRY = _pack("t") + _pack(m.AuthEvents.TAG)
_TAG_FIRST = b"\x82" + _TAG_ENTRY + _pack("events")
_EVENTS_FIRST = b"\x82" + _pack("events")
# The length of a MessagePack array header, by its first byte.
_ARRAY_HEADER = {**dict.fromkeys(range(0x90, 0xA0), 1), 0xDC: 3, 0xDD: 5}


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


class NodeDecoder(FrameDecoder):
    """The frame decoder of a node link: auth events as AuthEventMaps, with their bytes when it can.

    A frame in the usual layout is decoded from its events array alone and checked
    as the typed decoder would check it (same errors); anything else takes the
    general path.
    """

    def __init__(self) -> None:
        super().__init__(converters=NODE_CONVERTERS)
        self._run: AuthEventMaps | None = None  # what this read's last frames decoded to, if auth events

    def feed(self, data: bytes) -> list[m.Message]:
        self._run = None
        return super().feed(data)

    def decode(self, body: bytes) -> m.Message | None:
        """A frame in the usual layout joins the AuthEventMaps of the frames before it, if any."""
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
                        self._run = AuthEventMaps(events, [piece])
                        return self._run
                    run.events += events
                    run.encoded.append(piece)
                    return None
        self._run = None
        return decode_body(body, NODE_CONVERTERS)


_UPDATE_HEAD = b"\x86" + _pack("t") + _pack(m.AuthUpdate.TAG) + _pack("seq")
_UPDATES_HEAD = b"\x86" + _pack("t") + _pack(m.AuthUpdates.TAG) + _pack("seq")


def auth_update_frame(entry: NodeEntry, first: int, events: list[dict[str, Any]], encoded: bytes | None) -> bytes:
    """The frame that broadcasts a node's new events numbered from ``first``.

    An AuthUpdate for one event, AuthUpdates for several; ``encoded``, the events'
    own bytes back to back, is spliced in when known.
    """
    one = len(events) == 1
    if encoded is None:
        tag, key, value = (m.AuthUpdate.TAG, "event", events[0]) if one else (m.AuthUpdates.TAG, "events", events)
        wire = {"t": tag, "seq": first, "serial": entry.serial, "hostname": entry.hostname,
                "address": entry.address, key: value}  # fmt: skip
        return encode(wire)
    head = _UPDATE_HEAD if one else _UPDATES_HEAD
    fields = ("serial", entry.serial, "hostname", entry.hostname, "address", entry.address)
    parts = [head, _pack(first), *map(_pack, fields), _pack("event" if one else "events")]
    if not one:
        parts.append(_packer.pack_array_header(len(events)))
    parts.append(encoded)
    body = b"".join(parts)
    return len(body).to_bytes(4, "big") + body


def auth_update_frames(
    entry: NodeEntry,
    first: int,
    events: list[dict[str, Any]],
    encoded: list[tuple[int, bytes]] | None,
    limit: int = MAX_BATCH,
) -> list[tuple[int, int, bytes]]:
    """A node's new events, numbered from ``first``, as (first seq, last seq, frame) of at most ``limit`` each.

    ``encoded``, when all are known, holds the events' bytes as (count, bytes) pieces,
    each one or more events back to back; pieces are spliced together into frames,
    and events without bytes, or a piece over the limit, are encoded here.
    """
    frames: list[tuple[int, int, bytes]] = []
    done = 0  # events already in frames

    def emit(count: int, body: bytes | None) -> None:
        nonlocal done
        chunk = events[done : done + count]
        seq = first + done
        frames.append((seq, seq + count - 1, auth_update_frame(entry, seq, chunk, body)))
        done += count

    def emit_encoded(count: int) -> None:
        while count > 0:
            size = min(count, limit)
            emit(size, None)
            count -= size

    if encoded is None:
        emit_encoded(len(events))
        return frames
    group: list[bytes] = []  # pieces waiting to share a frame
    grouped = 0  # events in them
    for count, piece in encoded:
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


def updates_after(frame: bytes, seq: int) -> bytes:
    """An AuthUpdates frame cut to the events after ``seq`` (for a subscriber resuming mid-batch)."""
    batch = decode_body(frame[4:])
    if type(batch) is not m.AuthUpdates:
        raise ValueError(f"only an AuthUpdates frame holds several updates, not {batch.TAG!r}")
    skip = seq + 1 - batch.seq
    events = batch.events[skip:]
    if len(events) == 1:
        return encode(m.AuthUpdate(seq + 1, batch.serial, batch.hostname, batch.address, events[0]))
    return encode(m.AuthUpdates(seq + 1, batch.serial, batch.hostname, batch.address, events))
