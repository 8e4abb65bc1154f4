"""Framing and MessagePack, with no I/O: bytes in, messages out, and back.

A frame is a 4-byte big-endian body length, then one MessagePack body. The
decoder takes bytes in any chunking and returns every whole message that has
arrived, so one socket read is decoded in one call.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from .errors import FrameTooLarge, InvalidMessage, LocalProtocolError, MalformedFrame
from .messages import MESSAGE_TYPES, Message
from .schema import record_converter

# Large enough for a full node state or a whole command result, small enough that a
# hostile header cannot make us buffer gigabytes.
MAX_FRAME = 16 * 1024 * 1024
HEADER = 4

_TO_WIRE: dict[type, Any] = {}


def _wire_function(cls: type) -> Any:
    """A generated function that turns one dataclass into its wire map (with its tag, if a message)."""
    names = [f.name for f in dataclasses.fields(cls)]
    items = [f"{name!r}: o.{name}" for name in names]
    tag = getattr(cls, "TAG", None)
    if tag is not None:
        items.append(f"'t': {tag!r}")
    namespace: dict[str, Any] = {}
    exec(f"def to_wire(o):\n    return {{{', '.join(items)}}}", namespace)
    return namespace["to_wire"]


def _to_wire(obj: Any) -> dict[str, Any]:
    cls = type(obj)
    function = _TO_WIRE.get(cls)
    if function is None:
        if not dataclasses.is_dataclass(obj):
            raise LocalProtocolError(f"cannot encode {cls.__name__}")
        function = _TO_WIRE[cls] = _wire_function(cls)
    return function(obj)


_PACKER = msgpack.Packer(default=_to_wire)


def encode_body(message: Message) -> bytes:
    """The MessagePack body of one message, without the frame header."""
    try:
        return _PACKER.pack(message)
    except (TypeError, ValueError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {type(message).__name__}: {exc}") from exc


def encode(message: Message) -> bytes:
    """One whole frame: header and body."""
    body = encode_body(message)
    return len(body).to_bytes(HEADER, "big") + body


_CONVERTERS = {tag: record_converter(cls) for tag, cls in MESSAGE_TYPES.items()}


def decode_body(body: bytes) -> Message:
    """Decode and validate one frame body; any fault raises a RemoteProtocolError."""
    try:
        raw = msgpack.unpackb(body)
    except Exception as exc:  # msgpack raises several unrelated types for bad input
        raise MalformedFrame(f"frame is not MessagePack: {exc.__class__.__name__}") from None
    if type(raw) is not dict:
        raise InvalidMessage(f"message: expected map, got {type(raw).__name__}")
    tag = raw.pop("t", None)
    converter = _CONVERTERS.get(tag) if type(tag) is str else None
    if converter is None:
        raise InvalidMessage(f"message: unknown type {tag!r}"[:200])
    return converter(raw, tag)


class FrameDecoder:
    """Turns a byte stream into messages. After an error it must not be fed again."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes held while waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes; return every message they complete, in order."""
        buffer = self._buffer
        buffer += data
        messages: list[Message] = []
        offset = 0
        end = len(buffer)
        try:
            while end - offset >= HEADER:
                length = int.from_bytes(buffer[offset : offset + HEADER], "big")
                if length > self.max_frame:
                    raise FrameTooLarge(f"frame of {length} bytes exceeds the limit of {self.max_frame}")
                if end - offset - HEADER < length:
                    break
                start = offset + HEADER
                offset = start + length
                messages.append(decode_body(bytes(buffer[start:offset])))
        finally:
            del buffer[:offset]
        return messages
