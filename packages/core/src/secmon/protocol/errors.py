"""Protocol errors, named by whose fault they are (as h11 does).

ProtocolError
├── RemoteProtocolError      the peer sent something we cannot accept
│   ├── FrameTooLarge        a frame header declared more than the limit
│   ├── MalformedFrame       a frame body is not MessagePack
│   └── InvalidMessage       a body decoded but is not a valid message
└── LocalProtocolError       we tried to send something invalid (a bug)
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error the protocol package raises."""

    code = "protocol"


class RemoteProtocolError(ProtocolError):
    """Raised while decoding: the peer broke the protocol."""


class FrameTooLarge(RemoteProtocolError):
    """Raised from a frame header that declares a body over the size limit."""

    code = "too_large"


class MalformedFrame(RemoteProtocolError):
    """Raised when a frame body is not a single MessagePack object."""

    code = "malformed"


class InvalidMessage(RemoteProtocolError):
    """Raised when a decoded body is not a valid message; the text names the field."""

    code = "invalid"


class LocalProtocolError(ProtocolError):
    """Raised when asked to encode something that is not a message."""
