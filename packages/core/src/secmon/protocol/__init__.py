"""The SecMon wire protocol, sans-IO: messages, their validation and framing.

Nothing here touches a socket; the hub, the node and the client library all
feed it bytes and send the bytes it returns. Messages live in
``secmon.protocol.messages``; the rules of a conversation (who sends what,
when, and the deadlines) in ``secmon.protocol.connection``.
"""

from .codec import CONVERTERS, MAX_FRAME, FrameDecoder, decode_body, encode, encode_body
from .connection import Connection, Role
from .errors import (
    FrameTooLarge,
    HandshakeTimeout,
    HelloRefused,
    InvalidMessage,
    LinkTimeout,
    LocalProtocolError,
    MalformedFrame,
    PeerNotReading,
    PeerSilent,
    ProtocolError,
    RemoteProtocolError,
    UnexpectedMessage,
)
from .schema import record_checker

__all__ = [
    "CONVERTERS",
    "MAX_FRAME",
    "Connection",
    "FrameDecoder",
    "FrameTooLarge",
    "HandshakeTimeout",
    "HelloRefused",
    "InvalidMessage",
    "LinkTimeout",
    "LocalProtocolError",
    "MalformedFrame",
    "PeerNotReading",
    "PeerSilent",
    "ProtocolError",
    "RemoteProtocolError",
    "Role",
    "UnexpectedMessage",
    "decode_body",
    "encode",
    "encode_body",
    "record_checker",
]
