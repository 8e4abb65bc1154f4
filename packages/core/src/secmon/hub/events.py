"""How the hub reads auth events and passes them on without rebuilding them.

The hub only numbers a node's events and broadcasts them, so it never needs
them as objects: each event is checked against AuthEvent (same checks, same
errors as the typed decoder) and stays a map. When a frame carries a single
event, as a node's frames usually do, the event's own bytes are spliced into
the AuthUpdate frame, so nothing is encoded again. This module is the flood
path: profiling showed object construction and re-encoding costing more than
everything else the hub does per event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from ..protocol import CONVERTERS, FrameDecoder, InvalidMessage, decode_body, encode, record_checker
from ..protocol import messages as m
from .registry import NodeEntry

_pack = msgpack.Packer().pack


@dataclass(slots=True)
class AuthEventMaps:
    """A node's auth_events, each event a checked map; ``encoded`` is a lone event's own bytes."""

    events: list[dict[str, Any]]
    encoded: bytes | None = None


_check_event = record_checker(m.AuthEvent)


def _auth_event_maps(raw: dict[str, Any], path: str) -> AuthEventMaps:
    events = raw.pop("events", None)
    if raw:
        raise InvalidMessage(f"{path}: unknown field {', '.join(sorted(map(str, raw)))}")
    if type(events) is not list:
        raise InvalidMessage(f"{path}.events: expected array, got {type(events).__name__}")
    try:
        for event in events:
            _check_event(event, f"{path}.events")
    except InvalidMessage:  # rare: check again, naming the event's index in the error
        for index, event in enumerate(events):
            _check_event(event, f"{path}.events[{index}]")
    return AuthEventMaps(events)


# What the hub's node links decode with: auth events stay maps, everything else as usual.
NODE_CONVERTERS = {**CONVERTERS, m.AuthEvents.TAG: _auth_event_maps}

# A one-event auth_events body, in either key order: tag first (as most packers write a
# literal map) or events first (as our encoder writes fields before the tag).
_TAG_ENTRY = _pack("t") + _pack(m.AuthEvents.TAG)
_LONE_TAG_FIRST = b"\x82" + _TAG_ENTRY + _pack("events") + b"\x91"
_LONE_EVENTS_FIRST = b"\x82" + _pack("events") + b"\x91"


def lone_event_bytes(body: bytes) -> bytes | None:
    """Where a one-event auth_events body keeps its event: those bytes, or None.

    If the body starts with the map header, the tag entry, the "events" key and a
    one-item array header, and the rest is exactly one MessagePack object, the body
    is {"t": "auth_events", "events": [that object]}. The same holds for the other
    key order with the minimal 14-byte tag entry at the end (no other encoding of
    that entry ends in those bytes). The caller checks the "exactly one object".
    """
    if body.startswith(_LONE_TAG_FIRST):
        return body[len(_LONE_TAG_FIRST) :]
    if body.startswith(_LONE_EVENTS_FIRST) and body.endswith(_TAG_ENTRY):
        return body[len(_LONE_EVENTS_FIRST) : -len(_TAG_ENTRY)]
    return None


class NodeDecoder(FrameDecoder):
    """The frame decoder of a node link: auth events as AuthEventMaps, a lone event with its bytes.

    A frame with one event, the usual kind, is decoded from the event's bytes alone
    and checked as the typed decoder would check it (same errors); anything else
    takes the general path.
    """

    def __init__(self) -> None:
        super().__init__(converters=NODE_CONVERTERS)

    def decode(self, body: bytes) -> m.Message:
        encoded = lone_event_bytes(body)
        if encoded is not None:
            try:
                event = _unpack(encoded)
            except Exception:  # not exactly one object: the general path says what is wrong
                pass
            else:
                _check_event(event, _LONE_PATH)
                return AuthEventMaps([event], encoded)
        return decode_body(body, NODE_CONVERTERS)


_unpack = msgpack.unpackb
_LONE_PATH = f"{m.AuthEvents.TAG}.events[0]"
_UPDATE_HEAD = b"\x86" + _pack("t") + _pack(m.AuthUpdate.TAG) + _pack("seq")


def auth_update_frames(
    entry: NodeEntry, seqs: range, events: list[tuple[dict[str, Any], bytes | None]]
) -> list[tuple[int, bytes]]:
    """The AuthUpdate frames for a node's new events, numbered ``seqs``; spliced where bytes are known."""
    tail = b"".join(
        _pack(x) for x in ("serial", entry.serial, "hostname", entry.hostname, "address", entry.address, "event")
    )
    fixed = len(_UPDATE_HEAD) + len(tail)
    frames = []
    for seq, (event, encoded) in zip(seqs, events, strict=True):
        if encoded is None:
            wire = {"t": m.AuthUpdate.TAG, "seq": seq, "serial": entry.serial, "hostname": entry.hostname,
                    "address": entry.address, "event": event}  # fmt: skip
            frames.append((seq, encode(wire)))
        else:
            packed_seq = _pack(seq)
            size = fixed + len(packed_seq) + len(encoded)
            frames.append((seq, b"".join((size.to_bytes(4, "big"), _UPDATE_HEAD, packed_seq, tail, encoded))))
    return frames
