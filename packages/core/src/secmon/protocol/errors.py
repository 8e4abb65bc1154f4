"""Protocol errors, named by whose fault they are (as h11 does).

ProtocolError
├── RemoteProtocolError      the peer sent something we cannot accept, or went quiet
│   ├── FrameTooLarge        a frame header declared more than the limit
│   ├── MalformedFrame       a frame body is not MessagePack
│   ├── InvalidMessage       a body decoded but is not a valid message
│   ├── UnexpectedMessage    a valid message the peer may not send, or not now
│   ├── HelloRefused         a hello of another version or role, or without what its role needs
│   └── LinkTimeout          a deadline passed (raised from ``tick``)
│       ├── HandshakeTimeout the peer's opening did not arrive in time
│       ├── PeerSilent       nothing from the peer for three keepalive intervals
│       └── PeerNotReading   after we closed, the peer did not take our last frames in time
└── LocalProtocolError       we tried to send something invalid, or not now (a bug)

A remote error's ``code`` is what the peer is told in an Error message before the
link closes, unless ``tell_peer`` is false (a peer that does not listen).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error the protocol package raises."""

    code = "protocol"


class RemoteProtocolError(ProtocolError):
    """Raised while receiving, or from a deadline: the peer broke the protocol."""

    tell_peer = True  # the link ends with an Error carrying ``code`` and the text

    @property
    def reason(self) -> str:
        """Why the link ended, as the log says it."""
        return f"protocol error: {self}"


class FrameTooLarge(RemoteProtocolError):
    """Raised from a frame header that declares a body over the size limit."""

    code = "too_large"


class MalformedFrame(RemoteProtocolError):
    """Raised when a frame body is not a single MessagePack object."""

    code = "malformed"


class InvalidMessage(RemoteProtocolError):
    """Raised when a decoded body is not a valid message; the text names the field."""

    code = "invalid"


class UnexpectedMessage(RemoteProtocolError):
    """Raised when a peer sends a message its role may not send, or not in this state."""

    code = "unexpected"


class HelloRefused(RemoteProtocolError):
    """Raised when the opening hello names another protocol version or role, or lacks a hostname."""

    code = "refused"

    @property
    def reason(self) -> str:
        return f"refused: {self}"


class LinkTimeout(RemoteProtocolError):
    """Base of the deadlines ``tick`` enforces; the reason is the text alone."""

    code = "timeout"

    @property
    def reason(self) -> str:
        return str(self)


class HandshakeTimeout(LinkTimeout):
    """Raised from ``tick`` when the peer's opening message has not arrived by the deadline."""


class PeerSilent(LinkTimeout):
    """Raised from ``tick`` when nothing has come from the peer for three keepalive intervals."""

    tell_peer = False


class PeerNotReading(LinkTimeout):
    """Raised from ``tick`` when a link we closed is still open a keepalive interval later."""

    tell_peer = False


class LocalProtocolError(ProtocolError):
    """Raised when asked to send something that is not a message, or that our role may not send now."""
