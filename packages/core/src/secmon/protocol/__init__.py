"""The SecMon wire protocol, sans-IO: messages, their validation and framing.

Nothing here touches a socket; the hub, the node and the client library all
feed it bytes and send the bytes it returns. Messages live in
``secmon.protocol.messages``.
"""

from .codec import CONVERTERS, MAX_FRAME, FrameDecoder, decode_body, encode, encode_body
from .errors import (
    FrameTooLarge,
    InvalidMessage,
    LocalProtocolError,
    MalformedFrame,
    ProtocolError,
    RemoteProtocolError,
)
from .schema import record_checker

__all__ = [
    "CONVERTERS",
    "MAX_FRAME",
    "FrameDecoder",
    "FrameTooLarge",
    "InvalidMessage",
    "LocalProtocolError",
    "MalformedFrame",
    "ProtocolError",
    "RemoteProtocolError",
    "decode_body",
    "encode",
    "encode_body",
    "record_checker",
]
