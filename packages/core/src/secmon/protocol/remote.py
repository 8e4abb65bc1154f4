"""The messages of commands across hubs: one hub asks, the hub holding the node answers (docs/cluster.md).

They travel over core NATS, never on a node or client link and never in the
stream. The asking hub publishes a request to ``C.cmd.<holder>``: a
``RemoteRun`` (with a reply subject of its own), then ``RemoteCancel`` or, while
the command runs, ``RemoteAlive``. The holding hub answers on the reply
subject with a ``RemoteStarted``, ``RemoteOutput`` lines, ``RemoteResultPart``
pieces of a large result, one ``RemoteResult``, and ``RemoteBeat`` while the
command is quiet. Every answer carries ``seq``, counting from 1 on its reply
subject: core NATS keeps one publisher's order but may drop messages for a
subscriber that falls behind, and a gap must end the command with an error,
not a silently shortened output.

Each message is one MessagePack map with a tag, checked like a wire message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, TypeAlias

from .codec import DecodedConverter, decode_body, encode_body
from .errors import InvalidMessage, RemoteProtocolError
from .schema import record_converter

# --- asking hub → holding hub, on C.cmd.<holder> ---------------------------


@dataclass(frozen=True, slots=True)
class RemoteRun:
    """Run ``label`` on the node ``node_id`` that the receiving hub holds.

    ``hub`` and ``run`` name the asking hub and its run, ``id`` its relay; the three
    name the command in every later message. ``keepalive`` is the asking hub's
    interval: the holding hub cancels the command after three of them without a
    word from the asker, and speaks at least once an interval itself.
    """

    TAG: ClassVar[str] = "x_run"
    hub: str
    run: str
    id: int
    node_id: str
    label: str
    stream: bool = True
    serial: int = 0  # the node's serial as the asking hub knows it, for messages
    keepalive: float = 10.0


@dataclass(frozen=True, slots=True)
class RemoteCancel:
    """The asking hub gives up on a command (its client cancelled, went away, or timed out)."""

    TAG: ClassVar[str] = "x_cancel"
    hub: str
    run: str
    id: int


@dataclass(frozen=True, slots=True)
class RemoteAlive:
    """The asking hub still waits for these commands (sent once an interval while they run)."""

    TAG: ClassVar[str] = "x_alive"
    hub: str
    run: str
    ids: list[int] = field(default_factory=list)


# --- holding hub → asking hub, on the RemoteRun's reply subject -------------


@dataclass(frozen=True, slots=True)
class RemoteStarted:
    """The holding hub took the command and passed it to the node (``serial`` in its view)."""

    TAG: ClassVar[str] = "x_started"
    seq: int
    serial: int = 0


@dataclass(frozen=True, slots=True)
class RemoteOutput:
    """Lines of a streamed command's output, in order."""

    TAG: ClassVar[str] = "x_out"
    seq: int
    lines: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RemoteResultPart:
    """A piece of a result's ``output`` too large for one NATS message; the RemoteResult holds the rest."""

    TAG: ClassVar[str] = "x_part"
    seq: int
    output: str


@dataclass(frozen=True, slots=True)
class RemoteResult:
    """The end of the command on the node, as the node reported it (or the holding hub, for an error)."""

    TAG: ClassVar[str] = "x_result"
    seq: int
    status: str
    exit_code: int | None = None
    output: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True)
class RemoteBeat:
    """The command still runs and said nothing for an interval."""

    TAG: ClassVar[str] = "x_beat"
    seq: int


RemoteRequest: TypeAlias = RemoteRun | RemoteCancel | RemoteAlive
RemoteReply: TypeAlias = RemoteStarted | RemoteOutput | RemoteResultPart | RemoteResult | RemoteBeat
REQUEST_TYPES: dict[str, type] = {cls.TAG: cls for cls in RemoteRequest.__args__}
REPLY_TYPES: dict[str, type] = {cls.TAG: cls for cls in RemoteReply.__args__}

_REQUESTS: dict[str, DecodedConverter] = {tag: record_converter(cls) for tag, cls in REQUEST_TYPES.items()}
_REPLIES: dict[str, DecodedConverter] = {tag: record_converter(cls) for tag, cls in REPLY_TYPES.items()}

# Characters of text one RemoteOutput or RemoteResultPart carries at most: 512 KiB of UTF-8 at
# worst, so a message with its envelope fits NATS's default max_payload (1 MiB) whatever the text.
MAX_PIECE = 128 * 1024


def encode_remote(message: RemoteRequest | RemoteReply) -> bytes:
    """The bytes of one request or reply."""
    return encode_body(message)  # type: ignore[arg-type]  # a tagged dataclass encodes like a message


def decode_request(data: bytes) -> RemoteRequest:
    """One request, checked; RemoteProtocolError (InvalidMessage, MalformedFrame) when not one."""
    return decode_body(data, _REQUESTS)  # type: ignore[return-value]  # only request converters given


def decode_reply(data: bytes) -> RemoteReply:
    """One reply, checked; RemoteProtocolError (InvalidMessage, MalformedFrame) when not one."""
    return decode_body(data, _REPLIES)  # type: ignore[return-value]  # only reply converters given


def output_messages(first_seq: int, lines: list[str], limit: int = MAX_PIECE) -> list[RemoteOutput]:
    """``lines`` as RemoteOutput messages of at most ``limit`` characters each (a longer line alone)."""
    messages: list[RemoteOutput] = []
    batch: list[str] = []
    size = 0
    for line in lines:
        if batch and size + len(line) > limit:
            messages.append(RemoteOutput(first_seq + len(messages), batch))
            batch, size = [], 0
        batch.append(line)
        size += len(line)
    if batch:
        messages.append(RemoteOutput(first_seq + len(messages), batch))
    return messages


def result_messages(
    first_seq: int, status: str, exit_code: int | None, output: str, message: str, limit: int = MAX_PIECE
) -> list[RemoteResultPart | RemoteResult]:
    """A result as RemoteResultPart pieces of its output, then the RemoteResult with the last piece."""
    parts: list[RemoteResultPart | RemoteResult] = []
    while len(output) > limit:
        parts.append(RemoteResultPart(first_seq + len(parts), output[:limit]))
        output = output[limit:]
    parts.append(RemoteResult(first_seq + len(parts), status, exit_code, output, message[:limit]))
    return parts


__all__ = [
    "MAX_PIECE",
    "REPLY_TYPES",
    "REQUEST_TYPES",
    "InvalidMessage",
    "RemoteAlive",
    "RemoteBeat",
    "RemoteCancel",
    "RemoteOutput",
    "RemoteProtocolError",
    "RemoteReply",
    "RemoteRequest",
    "RemoteResult",
    "RemoteResultPart",
    "RemoteRun",
    "RemoteStarted",
    "decode_reply",
    "decode_request",
    "encode_remote",
    "output_messages",
    "result_messages",
]
