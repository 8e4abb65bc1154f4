"""The messages of a cluster's stream: what one hub tells all (docs/cluster.md).

Each is one MessagePack map with a tag, like a wire message, and is checked
the same way when read. They never travel on a node or client link: hubs
publish them to the JetStream stream and apply them, in stream order, to their
cluster view. Every one names the hub that published it and the node it is
about (``node_id``, with the ``serial`` the publisher's view gave it, 0 if
none yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from .codec import DecodedConverter, decode_body, encode_body
from .errors import InvalidMessage, RemoteProtocolError
from .messages import AuthEvent, Session, WgPeer
from .schema import record_checker, record_converter


@dataclass(frozen=True, slots=True)
class NodeJoined:
    """A node completed its hello on ``hub``; ``serial`` and ``next_serial`` are that hub's hints.

    ``run`` names the hub's run (a new one at every start), so a HubStarted of a later
    run disconnects the node and one of the same run does not.
    """

    TAG: ClassVar[str] = "c_join"
    hub: str
    run: str
    node_id: str
    hostname: str
    address: str
    time: float
    monitors: list[str] = field(default_factory=list)
    serial: int = 0
    next_serial: int = 1
    hostname_unique: bool = True  # the hub's ASSUME_HOSTNAME_UNIQUE: every hub applies the join by it


@dataclass(frozen=True, slots=True)
class NodeChanged:
    """A node's StateUpdate, as its hub received it (None: not in the update)."""

    TAG: ClassVar[str] = "c_state"
    hub: str
    node_id: str
    time: float
    serial: int = 0
    sessions: list[Session] | str | None = None
    wg_peers: list[WgPeer] | str | None = None
    auth: str | None = None
    labels: list[str] | None = None


@dataclass(frozen=True, slots=True)
class NodeAuthEvent:
    """One auth event of a node; ``event`` is the AuthEvent's checked map, as the node sent it."""

    TAG: ClassVar[str] = "c_auth"
    hub: str
    node_id: str
    hostname: str
    address: str
    event: dict[str, Any]
    serial: int = 0


@dataclass(frozen=True, slots=True)
class NodeLeft:
    """A node's link on ``hub`` ended."""

    TAG: ClassVar[str] = "c_left"
    hub: str
    node_id: str
    time: float
    serial: int = 0


@dataclass(frozen=True, slots=True)
class NodeForgotten:
    """A node was disconnected from ``hub`` for the whole grace period."""

    TAG: ClassVar[str] = "c_forget"
    hub: str
    node_id: str
    serial: int = 0


@dataclass(frozen=True, slots=True)
class HubStarted:
    """``hub`` (re)started: the links it held before died with its previous run."""

    TAG: ClassVar[str] = "c_hub"
    hub: str
    run: str
    time: float


@dataclass(frozen=True, slots=True)
class HubLost:
    """Hub ``by`` has not heard from ``hub`` for several heartbeats: its node links are taken as gone."""

    TAG: ClassVar[str] = "c_lost"
    hub: str
    by: str
    time: float


ClusterMessage: TypeAlias = NodeJoined | NodeChanged | NodeAuthEvent | NodeLeft | NodeForgotten | HubStarted | HubLost
CLUSTER_TYPES: dict[str, type] = {cls.TAG: cls for cls in ClusterMessage.__args__}


_check_event = record_checker(AuthEvent)

# Serials and seqs a view may take from a message: below 2**53 (exact as a float in JSON too), so
# every number it gives on (a serial, next_serial + 1) stays encodable. One hub's bad message must
# not stop every hub that applies it.
MAX_NUMBER = 2**53


def _check_numbers(message: Any, path: str) -> None:
    for name in ("serial", "next_serial"):
        value = getattr(message, name, 0)
        if not 0 <= value < MAX_NUMBER:
            raise InvalidMessage(f"{path}.{name}: {value} is out of range (0 to 2**53 - 1)")


def _converters() -> dict[str, DecodedConverter]:
    converters: dict[str, DecodedConverter] = {}
    for tag, cls in CLUSTER_TYPES.items():
        plain = record_converter(cls)

        def checked(raw: Any, path: str, plain: DecodedConverter = plain) -> Any:
            message: Any = plain(raw, path)
            _check_numbers(message, path)
            if isinstance(message, NodeAuthEvent):
                _check_event(message.event, f"{path}.event")
                seq = message.event["seq"]
                if not 0 <= seq < MAX_NUMBER:
                    raise InvalidMessage(f"{path}.event.seq: {seq} is out of range (0 to 2**53 - 1)")
            return message

        converters[tag] = checked
    return converters


_CONVERTERS = _converters()


def encode_cluster(message: ClusterMessage) -> bytes:
    """The bytes of one stream message."""
    return encode_body(message)  # type: ignore[arg-type]  # a tagged dataclass encodes like a message


def decode_cluster(data: bytes) -> ClusterMessage:
    """One stream message, checked; InvalidMessage or MalformedFrame (RemoteProtocolError) when not one."""
    message = decode_body(data, _CONVERTERS)
    if type(message) not in CLUSTER_TYPES.values():
        raise InvalidMessage(f"not a cluster message: {type(message).__name__}")
    return message  # type: ignore[return-value]


__all__ = [
    "CLUSTER_TYPES",
    "ClusterMessage",
    "HubLost",
    "HubStarted",
    "NodeAuthEvent",
    "NodeChanged",
    "NodeForgotten",
    "NodeJoined",
    "NodeLeft",
    "RemoteProtocolError",
    "decode_cluster",
    "encode_cluster",
]
