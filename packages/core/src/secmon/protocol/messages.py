"""Every message of the SecMon wire protocol, one frozen dataclass each.

On the wire a message is a MessagePack map of its fields plus ``"t"``, its
tag. Records (Session, WgPeer, AuthEvent, NodeInfo) travel inside messages as
maps without a tag.

Who sends what:

    node → hub     Hello, StateUpdate, AuthEvents, CommandOutput, CommandResult
    hub → node     Welcome, Ack, RunCommand, CancelCommand
    client → hub   Hello, ListNodes, FindNode, Subscribe, Execute, Cancel,
                   QueryEvents, QueryStats, GetStatus, AddMute, ListMutes,
                   RemoveMute, QueryAudit, QueryNotices
    hub → client   Welcome, NodeList, Subscribed, NodeUpdate, AuthUpdate,
                   AuthUpdates, NoticeUpdate, Started, CommandOutput,
                   CommandResult, EventList, EventStats, HubStatus, MuteRules,
                   AuditList, NoticeList
    any            Keepalive, Error
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

PROTOCOL_VERSION = 1

# Values a stored attribute carries instead of data (any other string is a collection error).
INITIALIZING = "initializing"
NOT_MONITORED = "not_monitored"
AUTH_OK = "ok"

# Command statuses.
SUCCESS = "success"
FAILURE = "failure"
TIMEOUT = "timeout"
CANCELLED = "cancelled"
NOT_ALLOWED = "not_allowed"
ERROR = "error"

# The error a hub closes a node link with when another connection takes over the node's entry
# (same node id, or same hostname); the node reports it in its own words.
REPLACED = "replaced"

ROLE_NODE = "node"
ROLE_CLIENT = "client"

ALL_NODES = "-"

# The error a hub answers a history query with when the query itself is wrong (a bucket too small
# for its range, a source that is no address); its text names what.
BAD_QUERY = "bad_query"

# What a stats query groups by; BY_TIME counts per time bucket, the others rank keys.
BY_TIME = "time"
STATS_KEYS = ("node", "kind", "source", "user")


# --- records ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Session:
    """One logged-in user, as utmp records it."""

    user: str
    tty: str
    host: str | None
    login_time: float


@dataclass(frozen=True, slots=True)
class WgPeer:
    """One WireGuard peer; handshake None means never."""

    interface: str
    public_key: str
    endpoint: str | None
    latest_handshake: float | None


@dataclass(frozen=True, slots=True)
class AuthEvent:
    """One recognised auth-log line. ``seq`` numbers events per node from 1."""

    seq: int
    time: float
    kind: str
    process: str
    pid: int | None = None
    user: str | None = None
    host: str | None = None
    port: int | None = None
    method: str | None = None
    target_user: str | None = None
    command: str | None = None
    tty: str | None = None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """The hub's view of one node. An attribute is a list, or a string error."""

    serial: int
    hostname: str
    address: str
    connected: bool
    last_state_update: float | None
    sessions: list[Session] | str
    wg_peers: list[WgPeer] | str
    auth: str
    monitors: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # the command labels the node's allowlist offers
    hub: str = ""  # the name of the hub that holds the node, in a cluster of hubs ("" for a hub alone)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which stored auth events a history query is about; each field set narrows it.

    ``since_seq`` is exclusive, the other bounds inclusive; times are Unix seconds (the
    event's own). ``nodes`` match a serial, hostname or address, any of them; ``source``
    is an IP address or a CIDR network (or a host name, matched exactly).
    """

    since_seq: int | None = None
    since_time: float | None = None
    until_seq: int | None = None
    until_time: float | None = None
    nodes: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    user: str | None = None
    source: str | None = None
    failures: bool = False


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An auth event from the hub's history: what its AuthUpdate carried when it was broadcast."""

    seq: int
    serial: int
    hostname: str
    address: str
    event: AuthEvent
    context: EventContext | None = None


@dataclass(frozen=True, slots=True)
class StatsSeries:
    """Counts per time bucket for one key, from the bucket starting at ``start``, gaps as zeros."""

    key: str
    start: float
    failures: list[int]
    successes: list[int]
    other: list[int]


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One key's events in a ranking: how many, how many failed, on how many nodes, for how many users."""

    key: str
    count: int
    failures: int
    nodes: int
    users: int
    first: float
    last: float


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What the hub's GeoIP databases say of an event's source address; None where they say nothing.

    ``country`` is the ISO 3166 code, ``country_name`` its English name; ``asn`` and
    ``org`` the autonomous system and its organisation.
    """

    country: str | None = None
    country_name: str | None = None
    city: str | None = None
    asn: int | None = None
    org: str | None = None


@dataclass(frozen=True, slots=True)
class EventContext:
    """What the hub adds to an auth event it broadcasts, decided once for every client.

    ``source``: GeoIP context of the event's host. ``new``: for an accepted login, what
    was never seen before for that user on any node, of "host", "asn" and "country"
    (notices.NEW_*). ``after_failures``: for a success, the failures from its source
    (fleet-wide) in the watch window before it. ``muted``: the ids of the mute rules that
    match it (notifiers skip it; everyone else shows it marked). ``summarized``: the seq
    of the source_failing notice that covers this failure (notifiers skip it).
    """

    source: SourceContext | None = None
    new: list[str] = field(default_factory=list)
    after_failures: int = 0
    muted: list[int] = field(default_factory=list)
    summarized: int = 0


@dataclass(frozen=True, slots=True)
class MuteRule:
    """A rule that mutes the auth events it matches: every field set must match (None: any).

    ``source`` is an address or CIDR network; ``node`` a serial, hostname or address;
    ``kind`` an event kind. ``expires`` is a Unix time, None for never. ``by`` is who
    made it (see Requester.describe).
    """

    id: int
    source: str | None = None
    user: str | None = None
    node: str | None = None
    kind: str | None = None
    created: float = 0.0
    expires: float | None = None
    reason: str = ""
    by: str = ""


@dataclass(frozen=True, slots=True)
class Requester:
    """Who asked for something: the Unix user of the client's socket (peer credentials) and,
    when that client acts for someone else, who (``on_behalf``: "telegram:ID @name",
    "http:TOKEN-NAME")."""

    uid: int
    user: str
    on_behalf: str = ""


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """How a command ended on one node (``status`` as in CommandResult)."""

    serial: int
    hostname: str
    status: str
    exit_code: int | None = None
    finished: float | None = None


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """One command request as the hub's audit keeps it: who, what, where, how it ended.

    ``target`` is what was asked for (a node query, or "-"); ``outcomes`` one per node
    it ran on; ``finished`` is None while a node has not answered.
    """

    id: int
    time: float
    requester: Requester
    label: str
    target: str
    outcomes: list[CommandOutcome] = field(default_factory=list)
    finished: float | None = None


@dataclass(frozen=True, slots=True)
class NodeRef:
    """The node a notice is about."""

    serial: int
    hostname: str
    address: str


@dataclass(frozen=True, slots=True)
class Outage:
    """A node's absence: gone since ``since`` (Unix time, its link ended); for node_back,
    ``away`` seconds in all and ``events`` the auth events it then delivered that were
    written while it was away."""

    since: float
    down_after: float
    away: float | None = None
    events: int = 0


@dataclass(frozen=True, slots=True)
class CollectorState:
    """A node's collector (``sessions``, ``wg_peers`` or ``auth``) failing (why), or working again ("")."""

    collector: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class MuteChange:
    """A mute rule added, removed or expired, and who did it ("" for the hub itself)."""

    rule: MuteRule
    by: str = ""


@dataclass(frozen=True, slots=True)
class SourceFailures:
    """Failures from one source across the fleet within the watch window.

    ``nodes`` and ``users`` list the first few (notices.MAX_LISTED); the counts say how
    many in all. ``ended``: the source has been quiet for a whole window; these are its totals.
    """

    source: str
    failures: int
    node_count: int
    user_count: int
    first: float
    last: float
    nodes: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    context: SourceContext | None = None
    ended: bool = False


# --- messages --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """First message of every connection, both ways of a node link and from clients."""

    TAG: ClassVar[str] = "hello"
    version: int
    role: str
    hostname: str = ""
    node_id: str = ""
    monitors: list[str] = field(default_factory=list)
    token: str = ""


@dataclass(frozen=True, slots=True)
class Welcome:
    """The hub's answer to a hello.

    ``last_event_seq`` is the last auth event the hub holds from this node id;
    ``keepalive`` is the interval both ends use, so the hub's setting rules the link.
    """

    TAG: ClassVar[str] = "welcome"
    version: int
    serial: int = 0
    last_event_seq: int = 0
    keepalive: float = 10.0


@dataclass(frozen=True, slots=True)
class Error:
    """An error the sender reports; with a request id it ends that request only."""

    TAG: ClassVar[str] = "error"
    code: str
    message: str
    request_id: int | None = None


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Sent when a link has been quiet for one interval."""

    TAG: ClassVar[str] = "keepalive"


@dataclass(frozen=True, slots=True)
class StateUpdate:
    """The attributes that changed on a node, applied atomically. None means unchanged."""

    TAG: ClassVar[str] = "state"
    sessions: list[Session] | str | None = None
    wg_peers: list[WgPeer] | str | None = None
    auth: str | None = None
    labels: list[str] | None = None


@dataclass(frozen=True, slots=True)
class AuthEvents:
    """A batch of auth events from a node, in sequence order."""

    TAG: ClassVar[str] = "auth_events"
    events: list[AuthEvent]


@dataclass(frozen=True, slots=True)
class Ack:
    """The hub holds every auth event of this node up to ``seq``."""

    TAG: ClassVar[str] = "ack"
    seq: int


@dataclass(frozen=True, slots=True)
class RunCommand:
    """Hub asks a node to run the command its allowlist names ``label``."""

    TAG: ClassVar[str] = "run"
    request_id: int
    label: str
    stream: bool


@dataclass(frozen=True, slots=True)
class CancelCommand:
    """Hub asks a node to kill a running command."""

    TAG: ClassVar[str] = "cancel_command"
    request_id: int


@dataclass(frozen=True, slots=True)
class CommandOutput:
    """One line of a streamed command's output. The hub fills in the node's serial."""

    TAG: ClassVar[str] = "output"
    request_id: int
    data: str
    serial: int = 0


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The end of one command on one node."""

    TAG: ClassVar[str] = "result"
    request_id: int
    status: str
    exit_code: int | None = None
    output: str = ""
    message: str = ""
    serial: int = 0


@dataclass(frozen=True, slots=True)
class ListNodes:
    TAG: ClassVar[str] = "list"
    request_id: int


@dataclass(frozen=True, slots=True)
class FindNode:
    """Find one node by serial, hostname or address."""

    TAG: ClassVar[str] = "find"
    request_id: int
    query: str


@dataclass(frozen=True, slots=True)
class NodeList:
    TAG: ClassVar[str] = "nodes"
    request_id: int
    nodes: list[NodeInfo]


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Start receiving updates; with ``since``, first those after that sequence."""

    TAG: ClassVar[str] = "subscribe"
    request_id: int
    since: int | None = None


@dataclass(frozen=True, slots=True)
class Subscribed:
    """``seq`` is the hub's latest sequence; ``missed`` counts updates no longer held."""

    TAG: ClassVar[str] = "subscribed"
    request_id: int
    seq: int
    missed: int = 0


@dataclass(frozen=True, slots=True)
class NodeUpdate:
    """A node's state after a change; ``changed`` names what changed."""

    TAG: ClassVar[str] = "node_update"
    seq: int
    node: NodeInfo
    changed: list[str]


@dataclass(frozen=True, slots=True)
class AuthUpdate:
    """An auth event as the hub broadcasts it, with the node it came from."""

    TAG: ClassVar[str] = "auth_update"
    seq: int
    serial: int
    hostname: str
    address: str
    event: AuthEvent
    context: EventContext | None = None


@dataclass(frozen=True, slots=True)
class AuthUpdates:
    """Several auth events of one node, numbered ``seq``, ``seq`` + 1, ... in order.

    The hub sends this instead of one AuthUpdate per event when a node's frame
    brought several; the client library hands them on as AuthUpdates one by one.
    ``contexts``, when present, has one entry per event (None for an event with none).
    """

    TAG: ClassVar[str] = "auth_updates"
    seq: int
    serial: int
    hostname: str
    address: str
    events: list[AuthEvent]
    contexts: list[EventContext | None] | None = None

    def updates(self) -> list[AuthUpdate]:
        """One AuthUpdate per event, as if each had come alone."""
        contexts = self.contexts
        return [
            AuthUpdate(
                self.seq + index,
                self.serial,
                self.hostname,
                self.address,
                event,
                contexts[index] if contexts is not None and index < len(contexts) else None,
            )
            for index, event in enumerate(self.events)
        ]


@dataclass(frozen=True, slots=True)
class NoticeUpdate:
    """Something the hub noticed, broadcast like an update: sequenced, resumable, in the ring.

    ``kind`` is one of notices.NOTICE_KINDS and says which fields are set:
    node_down, node_back: ``node`` and ``outage``; collector_failed, collector_ok:
    ``node`` and ``collector``; mute_added, mute_removed, mute_expired: ``mute``;
    source_failing: ``source``; command_run: ``command``.
    """

    TAG: ClassVar[str] = "notice"
    seq: int
    time: float
    kind: str
    node: NodeRef | None = None
    outage: Outage | None = None
    collector: CollectorState | None = None
    mute: MuteChange | None = None
    source: SourceFailures | None = None
    command: CommandRecord | None = None


@dataclass(frozen=True, slots=True)
class GetStatus:
    """Ask the hub how it stands: the nodes it holds, and its cluster link in a cluster."""

    TAG: ClassVar[str] = "get_status"
    request_id: int


@dataclass(frozen=True, slots=True)
class HubStatus:
    """The hub's answer to GetStatus. ``hub`` is "" for a hub alone; the other fields then stay as they are.

    In a cluster: the hub's name, the cluster's, whether its link to NATS is up and
    since when (Unix time), the messages waiting in its outbox, and the last cluster
    sequence it applied from the stream.
    """

    TAG: ClassVar[str] = "hub_status"
    request_id: int
    nodes: int  # nodes connected to this hub
    hub: str = ""
    cluster: str = ""
    connected: bool = False
    since: float | None = None
    outbox: int = 0
    applied: int = 0


@dataclass(frozen=True, slots=True)
class Execute:
    """Run ``label`` on ``target`` (a node query, or "-" for every connected node)."""

    TAG: ClassVar[str] = "execute"
    request_id: int
    target: str
    label: str
    stream: bool = True
    wait: float = 0.0
    on_behalf: str = ""  # who the client asks for (Requester.on_behalf), "" for its own Unix user


@dataclass(frozen=True, slots=True)
class Started:
    """The nodes an Execute runs on; one CommandResult follows for each."""

    TAG: ClassVar[str] = "started"
    request_id: int
    serials: list[int]


@dataclass(frozen=True, slots=True)
class Cancel:
    """A client gives up on a request."""

    TAG: ClassVar[str] = "cancel"
    request_id: int


@dataclass(frozen=True, slots=True)
class QueryEvents:
    """Ask the hub's history for the latest ``limit`` events that pass ``filter``."""

    TAG: ClassVar[str] = "query_events"
    request_id: int
    filter: EventFilter
    limit: int = 100


@dataclass(frozen=True, slots=True)
class EventList:
    """The answer to QueryEvents, in ascending sequence.

    ``last_seq`` is the hub's latest sequence when the query ran: no event after it is
    included, so a subscription from it misses and repeats nothing. ``more``: older
    events pass the filter too.
    """

    TAG: ClassVar[str] = "event_list"
    request_id: int
    last_seq: int
    more: bool
    events: list[StoredEvent]

    def updates(self) -> list[AuthUpdate]:
        """Each event as the AuthUpdate that broadcast it."""
        return [AuthUpdate(e.seq, e.serial, e.hostname, e.address, e.event, e.context) for e in self.events]


@dataclass(frozen=True, slots=True)
class QueryStats:
    """Ask for counts of the events that pass ``filter``.

    ``by`` is BY_TIME (counts per ``bucket`` seconds, per ``group`` key when one of
    STATS_KEYS is given) or one of STATS_KEYS (the ``limit`` keys with most events).
    """

    TAG: ClassVar[str] = "query_stats"
    request_id: int
    filter: EventFilter
    by: str = BY_TIME
    bucket: float = 3600.0
    group: str = ""
    limit: int = 10


@dataclass(frozen=True, slots=True)
class EventStats:
    """The answer to QueryStats: ``series`` for BY_TIME, ``rows`` otherwise."""

    TAG: ClassVar[str] = "event_stats"
    request_id: int
    by: str
    bucket: float
    series: list[StatsSeries] = field(default_factory=list)
    rows: list[StatsRow] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class AddMute:
    """Add a mute rule (fields as in MuteRule); ``duration`` seconds until it expires, None for never."""

    TAG: ClassVar[str] = "add_mute"
    request_id: int
    source: str | None = None
    user: str | None = None
    node: str | None = None
    kind: str | None = None
    duration: float | None = None
    reason: str = ""
    on_behalf: str = ""


@dataclass(frozen=True, slots=True)
class ListMutes:
    """Ask for the mute rules in force."""

    TAG: ClassVar[str] = "list_mutes"
    request_id: int


@dataclass(frozen=True, slots=True)
class RemoveMute:
    """Remove the mute rule ``id``."""

    TAG: ClassVar[str] = "remove_mute"
    request_id: int
    id: int
    on_behalf: str = ""


@dataclass(frozen=True, slots=True)
class MuteRules:
    """The answer to AddMute (the new rule), RemoveMute (the removed one) and ListMutes (all in force)."""

    TAG: ClassVar[str] = "mute_rules"
    request_id: int
    rules: list[MuteRule]


@dataclass(frozen=True, slots=True)
class QueryAudit:
    """Ask for the latest ``limit`` command records started at or after ``since`` (Unix time)."""

    TAG: ClassVar[str] = "query_audit"
    request_id: int
    since: float | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class AuditList:
    """The answer to QueryAudit, oldest first; ``more``: older records pass too."""

    TAG: ClassVar[str] = "audit_list"
    request_id: int
    records: list[CommandRecord]
    more: bool = False


@dataclass(frozen=True, slots=True)
class QueryNotices:
    """Ask for the latest ``limit`` notices at or after ``since`` (Unix time)."""

    TAG: ClassVar[str] = "query_notices"
    request_id: int
    since: float | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class NoticeList:
    """The answer to QueryNotices, oldest first; ``last_seq`` as in EventList."""

    TAG: ClassVar[str] = "notice_list"
    request_id: int
    last_seq: int
    notices: list[NoticeUpdate]
    more: bool = False


Message = (
    Hello
    | Welcome
    | Error
    | Keepalive
    | StateUpdate
    | AuthEvents
    | Ack
    | RunCommand
    | CancelCommand
    | CommandOutput
    | CommandResult
    | ListNodes
    | FindNode
    | NodeList
    | Subscribe
    | Subscribed
    | NodeUpdate
    | AuthUpdate
    | AuthUpdates
    | Execute
    | Started
    | Cancel
    | QueryEvents
    | EventList
    | QueryStats
    | EventStats
    | GetStatus
    | HubStatus
    | NoticeUpdate
    | AddMute
    | ListMutes
    | RemoveMute
    | MuteRules
    | QueryAudit
    | AuditList
    | QueryNotices
    | NoticeList
)

MESSAGE_TYPES: dict[str, type] = {cls.TAG: cls for cls in Message.__args__}
