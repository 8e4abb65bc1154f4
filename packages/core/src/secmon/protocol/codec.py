"""Framing and MessagePack, with no I/O: bytes in, messages out, and back.

A frame is a 4-byte big-endian body length, then one MessagePack body. The
decoder takes bytes in any chunking and returns every whole message that has
arrived, so one socket read is decoded in one call.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from typing import Any, ClassVar, TypeAlias

import msgpack

from .errors import FrameTooLarge, InvalidMessage, LocalProtocolError, MalformedFrame
from .messages import MESSAGE_TYPES, Message
from .schema import record_converter


class Folded:
    """The base of what a decoder subclass yields in place of the messages of several frames.

    The hub's EventRunDecoder folds a node's AuthEvents frames into one EventRun
    (``batches``); ``TAG`` is the tag of the messages it stands for, so the rules
    that judge those messages judge it.
    """

    __slots__ = ()
    TAG: ClassVar[str]


# What a frame decodes to: a message, or what a decoder subclass folded frames into.
Decoded: TypeAlias = Message | Folded
# A converter of one tag's map (the tag passed as the path of errors) into what it decodes to.
DecodedConverter: TypeAlias = Callable[[Any, str], Decoded]
WireFunction: TypeAlias = Callable[[Any], dict[str, Any]]

# Large enough for a full node state or a whole command result, small enough that a
# hostile header cannot make us buffer gigabytes.
MAX_FRAME = 16 * 1024 * 1024
HEADER = 4
_HEADER = struct.Struct(">I")

_TO_WIRE: dict[type, WireFunction] = {}


def _wire_function(cls: type) -> WireFunction:
    """A generated function that turns one dataclass into its wire map (with its tag, if a message)."""
    names = [f.name for f in dataclasses.fields(cls)]
    items = [f"{name!r}: o.{name}" for name in names]
    tag = getattr(cls, "TAG", None)
    if tag is not None:
        items.append(f"'t': {tag!r}")
    namespace: dict[str, Any] = {}
    exec(f"def to_wire(o):\n    return {{{', '.join(items)}}}", namespace)
    to_wire: WireFunction = namespace["to_wire"]
    return to_wire


def _to_wire(obj: Any) -> dict[str, Any]:
    cls = type(obj)
    function = _TO_WIRE.get(cls)
    if function is None:
        if not dataclasses.is_dataclass(obj):
            raise LocalProtocolError(f"cannot encode {cls.__name__}")
        function = _TO_WIRE[cls] = _wire_function(cls)
    return function(obj)


_PACKER = msgpack.Packer(default=_to_wire)


def encode_body(message: Message | dict[str, Any]) -> bytes:
    """The MessagePack body of one message (or of its wire map), without the frame header."""
    try:
        return _PACKER.pack(message)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {type(message).__name__}: {exc}") from exc


def encode(message: Message | dict[str, Any]) -> bytes:
    """One whole frame: header and body."""
    body = encode_body(message)
    return _HEADER.pack(len(body)) + body


# The validating converter of every message type, by tag.
CONVERTERS: dict[str, DecodedConverter] = {tag: record_converter(cls) for tag, cls in MESSAGE_TYPES.items()}


def decode_body(body: bytes | memoryview, converters: dict[str, DecodedConverter] = CONVERTERS) -> Decoded:
    """Decode and validate one frame body; any fault raises a RemoteProtocolError."""
    try:
        raw = msgpack.unpackb(body)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise MalformedFrame(f"frame is not MessagePack: {exc.__class__.__name__}") from None
    if type(raw) is not dict:
        raise InvalidMessage(f"message: expected map, got {type(raw).__name__}")
    tag = raw.pop("t", None)
    converter = converters.get(tag) if type(tag) is str else None
    if converter is None:
        raise InvalidMessage(f"message: unknown type {tag!r}"[:200])
    return converter(raw, tag)


class FrameDecoder:
    """Turns a byte stream into messages. After an error it must not be fed again.

    ``converters`` maps tags to the functions that validate them (the default: every
    message type); a daemon may pass its own for tags it handles differently.
    """

    def __init__(self, max_frame: int = MAX_FRAME, converters: dict[str, DecodedConverter] | None = None) -> None:
        self.max_frame = max_frame
        self._converters = CONVERTERS if converters is None else converters
        self._partial = bytearray()  # the start of a frame whose end has not arrived
        self._needed = 0  # bytes _partial must hold before it is worth parsing again

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._partial)

    def decode(self, body: bytes) -> Decoded | None:
        """One frame body to one message; a subclass may fold it into the message before (None)."""
        return decode_body(body, self._converters)

    def feed(self, data: bytes) -> list[Decoded]:
        """Add bytes; return every message they complete, in order."""
        if not self._partial and len(data) > HEADER:
            (length,) = _HEADER.unpack_from(data)
            if length == len(data) - HEADER and length <= self.max_frame:
                # One read, one whole frame: what a peer sending at a steady rate brings.
                message = self.decode(data[HEADER:])
                return [] if message is None else [message]
        if self._partial:
            self._partial += data
            if len(self._partial) < self._needed:
                return []  # a large frame arriving in pieces is copied once, not once per piece
            data = bytes(self._partial)
            self._partial.clear()
        messages: list[Decoded] = []
        offset = 0
        end = len(data)
        max_frame = self.max_frame
        decode = self.decode
        needed = HEADER
        try:
            while end - offset >= HEADER:
                (length,) = _HEADER.unpack_from(data, offset)
                if length > max_frame:
                    raise FrameTooLarge(f"frame of {length} bytes exceeds the limit of {max_frame}")
                start = offset + HEADER
                if end - start < length:
                    needed = HEADER + length
                    break
                offset = start + length
                message = decode(data[start:offset])
                if message is not None:
                    messages.append(message)
        finally:
            if offset < end:
                self._partial += memoryview(data)[offset:]
                self._needed = needed
        return messages
