"""Environment variables → typed settings, with one-line errors for bad values.

Names and defaults follow the original SecMon (the README lists them all).
Tuning knobs that are not in the original (keepalive interval, handshake
deadline, poll intervals) are prefixed ``SECMON_`` and exist so tests can run
with short timeouts.

Every variable any SecMon program reads goes through one of the ``env_*``
helpers here, so a value means the same everywhere: a boolean is one of
1/0/true/false/yes/no (any case), a number is checked against its range, and
anything else is a ConfigError naming the variable (exit status 2).
"""

from __future__ import annotations

import grp
import ipaddress
import logging
import os
import re
import socket
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import ConfigError, StateCorrupt

TRUE_WORDS = ("1", "true", "yes")
FALSE_WORDS = ("0", "false", "no")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMAT = "%(asctime)s %(name)s: %(message)s"
# SQLite result codes that mean "this file cannot be used here", not "this file is damaged".
_UNUSABLE_CODES = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_FULL")


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    """The stripped value, or ``default`` when unset or blank."""
    return _get(env, name) or default


def env_optional(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value, or None when unset or blank."""
    return _get(env, name)


def env_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0, unit: str = "seconds") -> float:
    """A finite number ≥ ``minimum`` of ``unit`` (seconds, mostly)."""
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of {unit}, got {raw!r}", name) from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number ≥ {minimum:g}, got {raw!r}", name)
    return value


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
    """An integer between ``minimum`` and ``maximum``."""
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}", name) from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {raw!r}", name)
    return value


def env_port(env: Mapping[str, str], name: str, default: int) -> int:
    """A TCP port; 0 asks the system for a free one."""
    return env_int(env, name, default, 0, 65535)


def env_ip(env: Mapping[str, str], name: str, default: str) -> str:
    """An IPv4 or IPv6 address, normalised."""
    raw = _get(env, name) or default
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigError(f"{name} must be an IP address, got {raw!r}", name) from None


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """1/true/yes or 0/false/no, in any case; any other value is refused rather than guessed."""
    raw = _get(env, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in TRUE_WORDS:
        return True
    if lowered in FALSE_WORDS:
        return False
    raise ConfigError(f"{name} must be true or false (1/0, true/false, yes/no, in any case); got {raw!r}", name)


def env_path(env: Mapping[str, str], name: str) -> Path | None:
    """A path, or None when unset; whether it exists is for the caller to say."""
    raw = _get(env, name)
    return Path(raw) if raw else None


def env_choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    """One of ``choices`` (any case, given back lower-cased); anything else is a ConfigError."""
    raw = _get(env, name) or default
    if raw.lower() not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {raw!r}", name)
    return raw.lower()


def env_log_level(env: Mapping[str, str], name: str = "SECMON_LOG_LEVEL", default: str = "INFO") -> int:
    """A logging level by name (debug, info, warning, error, critical; any case)."""
    raw = _get(env, name) or default
    level = "WARNING" if raw.upper() == "WARN" else raw.upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{name} must be one of {', '.join(LOG_LEVELS).lower()}; got {raw!r}", name)
    return logging.getLevelNamesMapping()[level]


def env_group(env: Mapping[str, str], name: str) -> str | None:
    """The name of a group that exists on this machine, or None when unset."""
    group = _get(env, name)
    if group is None:
        return None
    try:
        grp.getgrnam(group)
    except KeyError:
        raise ConfigError(f"{name}: no group named {group!r}", name) from None
    return group


def configure_logging(env: Mapping[str, str] | None = None, default_level: str = "INFO") -> None:
    """Log to stderr at SECMON_LOG_LEVEL (``default_level`` when unset); every SecMon program starts with this."""
    env = os.environ if env is None else env
    logging.basicConfig(level=env_log_level(env, default=default_level), format=LOG_FORMAT, stream=sys.stderr)


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    """The stripped content of the file named by ``name``, or None when unset (see read_private_text)."""
    text = read_private_text(env, name)
    return None if text is None else text.strip()


def read_private_text(env: Mapping[str, str], name: str) -> str | None:
    """The UTF-8 text of the file named by ``name``, as it is, or None when unset; it may not be blank.

    Like the allowlist, the file must be private: a secret that others may read
    is no longer one, and one that others may write lets them choose it. Its
    group may read it (a service's group shares a root-owned token that way).
    """
    path = env_path(env, name)
    if path is None:
        return None
    try:
        info = path.stat()
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}", name) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}: {path} is not UTF-8 text", name) from None
    if info.st_mode & stat.S_IROTH:
        raise ConfigError(f"{name}: {path} is readable by others; refusing it (chmod o-rwx {path})", name)
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(f"{name}: {path} is writable by group or others; refusing it (chmod go-w {path})", name)
    if info.st_uid not in (0, os.getuid()):
        raise ConfigError(f"{name}: {path} is owned by uid {info.st_uid}, not root or us; refusing it", name)
    if not text.strip():
        raise ConfigError(f"{name}: {path} is empty", name)
    return text


def state_directory(path: Path, name: str = "SECMON_STATE_DIR") -> Path:
    """Create the state directory (mode 0700) when missing; a ConfigError names ``name`` when it cannot be used."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{name}: {path} exists and is not a directory", name) from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot create {path}: {exc.strerror}", name) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}: {path} is not writable by uid {os.getuid()}", name)
    return path


def state_error(path: Path, exc: Exception) -> ConfigError:
    """The one-line error for a state database that failed to open or read (an sqlite3 or decoding error)."""
    code = getattr(exc, "sqlite_errorname", "")
    if code in ("SQLITE_BUSY", "SQLITE_LOCKED"):
        return ConfigError(f"SECMON_STATE_DIR: {path} is locked by another process using the same directory")
    if code in _UNUSABLE_CODES or code.startswith("SQLITE_IOERR"):
        return ConfigError(f"SECMON_STATE_DIR: cannot use {path}: {exc}")
    return StateCorrupt(path, str(exc) or type(exc).__name__)


def socket_path(env: Mapping[str, str] | None = None) -> Path:
    """The hub's Unix socket: SECMON_SOCKET, else /run/secmon.sock for root, else /run/user/UID."""
    env = os.environ if env is None else env
    override = _get(env, "SECMON_SOCKET")
    if override:
        return Path(override)
    uid = os.getuid()
    return Path("/run/secmon.sock") if uid == 0 else Path(f"/run/user/{uid}/secmon.sock")


def runtime_dir_problem(env: Mapping[str, str]) -> str | None:
    """Why a hub cannot use its default socket directory (/run/user/UID missing), or None.

    Only logind makes that directory, for users with a session; a service
    account or an ``su`` shell often has none, and the hub cannot create it.
    """
    if _get(env, "SECMON_SOCKET") or os.getuid() == 0:
        return None
    directory = socket_path(env).parent
    if directory.is_dir():
        return None
    return (
        f"{directory} does not exist (uid {os.getuid()} has no runtime directory: no login session?); "
        "set SECMON_SOCKET to a socket path in a directory of your own"
    )


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """Timing shared by both ends of a link."""

    keepalive: float  # seconds of silence before we send a keepalive; 3 missed = dead peer
    handshake_timeout: float  # seconds a peer has to complete its hello

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LinkSettings:
        return cls(
            keepalive=env_float(env, "SECMON_KEEPALIVE_INTERVAL", 10.0, 0.05),
            handshake_timeout=env_float(env, "SECMON_HANDSHAKE_TIMEOUT", 5.0, 0.05),
        )


HISTORY_MAX_EVENTS = 2_000_000
HISTORY_MAX_EVENTS_IN_MEMORY = 100_000
HISTORY_MIN_DAYS = 1 / 24  # an hour: less keeps too little to ask about
NATS_SCHEMES = ("nats", "tls")
_CLUSTER_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class NatsSettings:
    """How a hub joins a cluster of hubs through NATS JetStream (docs/cluster.md)."""

    servers: tuple[str, ...]  # nats:// or tls:// URLs
    creds: Path | None  # a credentials file (JWT and NKey seed)
    tls_ca: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    cluster: str  # prefixes the stream and subjects
    hub_name: str  # this hub's name in the cluster, unique in it
    max_age: float  # seconds the stream keeps a message
    max_bytes: int  # bytes the stream keeps at most
    replicas: int  # stream replicas when this hub creates the stream
    outbox: int  # messages kept while NATS cannot be reached
    timeout: float  # seconds for a connect, a publish acknowledgement, a stream request

    @classmethod
    def from_env(cls, env: Mapping[str, str], bind_port: int) -> NatsSettings | None:
        """None without SECMON_NATS_URL: a hub alone."""
        raw = _get(env, "SECMON_NATS_URL")
        if raw is None:
            return None
        servers = tuple(_nats_url(url.strip()) for url in raw.split(",") if url.strip())
        if not servers:
            raise ConfigError(f"SECMON_NATS_URL names no server: {raw!r}", "SECMON_NATS_URL")
        files = {}
        for name in ("SECMON_NATS_CREDS", "SECMON_NATS_TLS_CA", "SECMON_NATS_TLS_CERT", "SECMON_NATS_TLS_KEY"):
            path = env_path(env, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}: {path} is not a readable file", name)
            files[name] = path
        if (files["SECMON_NATS_TLS_CERT"] is None) != (files["SECMON_NATS_TLS_KEY"] is None):
            raise ConfigError("SECMON_NATS_TLS_CERT and SECMON_NATS_TLS_KEY go together: set both or neither")
        cluster = env_str(env, "SECMON_NATS_CLUSTER", "secmon")
        if not _CLUSTER_NAME.fullmatch(cluster):
            raise ConfigError(
                f"SECMON_NATS_CLUSTER must be 1-64 letters, digits, _ or -; got {cluster!r}", "SECMON_NATS_CLUSTER"
            )
        hub_name = env_str(env, "SECMON_HUB_NAME", f"{socket.gethostname()}:{bind_port}")
        if len(hub_name) > 128 or not hub_name.isprintable():
            text = f"SECMON_HUB_NAME must be 1-128 printable characters; got {hub_name!r}"
            raise ConfigError(text, "SECMON_HUB_NAME")
        return cls(
            servers=servers,
            creds=files["SECMON_NATS_CREDS"],
            tls_ca=files["SECMON_NATS_TLS_CA"],
            tls_cert=files["SECMON_NATS_TLS_CERT"],
            tls_key=files["SECMON_NATS_TLS_KEY"],
            cluster=cluster,
            hub_name=hub_name,
            max_age=env_float(env, "SECMON_NATS_MAX_AGE", 7 * 86400.0, 1.0),
            max_bytes=env_int(env, "SECMON_NATS_MAX_BYTES", 1 << 30, 1 << 20, 1 << 50),
            replicas=env_int(env, "SECMON_NATS_REPLICAS", 1, 1, 5),
            # at most the spare sequence numbers between two stream positions (docs/cluster.md)
            outbox=env_int(env, "SECMON_NATS_OUTBOX", 50_000, 1, 65_000),
            timeout=env_float(env, "SECMON_NATS_TIMEOUT", 5.0, 0.05),
        )


def _nats_url(url: str) -> str:
    """One server URL of SECMON_NATS_URL, checked: nats:// or tls://, a host, a port if any."""
    try:
        parts = urlsplit(url)
        good = parts.scheme in NATS_SCHEMES and bool(parts.hostname) and parts.path in ("", "/")
        parts.port  # noqa: B018  # a port that is not a number from 0 to 65535 raises here
    except ValueError:
        good = False
    if not good:
        raise ConfigError(
            f"SECMON_NATS_URL: {url!r} is not a NATS server URL (nats://HOST:PORT or tls://HOST:PORT)",
            "SECMON_NATS_URL",
        )
    return url


NODE_DOWN_AFTER = 60.0  # seconds; when unset and the grace period is under two minutes, half of it
AUDIT_MAX = 10_000  # command records kept: months of an operator's commands
NOTICES_MAX = 10_000  # notices kept for QueryNotices: days of a busy fleet's


@dataclass(frozen=True, slots=True)
class HubSettings:
    bind_ip: str
    bind_port: int
    disconnect_grace: float
    hostname_unique: bool
    socket: Path
    link: LinkSettings
    ring_size: int  # updates kept for subscribers that resume
    subscriber_queue: int  # updates a subscriber may fall behind before it is dropped
    max_nodes: int  # connected nodes; more are refused, so a flood cannot exhaust the hub
    socket_group: str | None  # a group whose members may use the socket too
    state_dir: Path | None  # where the update ring and event dedup state survive a restart
    uvloop: bool  # run on uvloop when it is installed
    history_days: float  # auth events older than this leave the history
    history_max_events: int  # the history keeps at most this many, the oldest leaving first
    nats: NatsSettings | None = None  # set: this hub is one of a cluster (SECMON_NATS_URL)
    # --- notices and the command audit (issue #19) ---
    node_down_after: float = NODE_DOWN_AFTER  # seconds a node's link may be gone before a node_down notice
    audit_max: int = AUDIT_MAX  # command records the audit keeps, the oldest leaving first
    notices_max: int = NOTICES_MAX  # notices the hub keeps for QueryNotices, the oldest leaving first
    context: ContextSettings = field(default_factory=lambda: ContextSettings())  # event context (GeoIP, ...)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSettings:
        env = os.environ if env is None else env
        state_dir = env_path(env, "SECMON_STATE_DIR")
        # On disk, 30 days of a fleet twice as busy as the million events a month the history is
        # measured with (about 200 bytes an event with its rollups: 400 MB); in memory, what a hub
        # holds without a thought (about 20 MB).
        most = HISTORY_MAX_EVENTS if state_dir else HISTORY_MAX_EVENTS_IN_MEMORY
        bind_port = env_port(env, "BIND_PORT", 9992)
        return cls(
            bind_ip=env_ip(env, "BIND_IP", "127.0.0.1"),
            bind_port=bind_port,
            disconnect_grace=env_float(env, "DISCONNECT_GRACE_PERIOD", 300.0),
            hostname_unique=env_bool(env, "ASSUME_HOSTNAME_UNIQUE", True),
            socket=socket_path(env),
            link=LinkSettings.from_env(env),
            ring_size=env_int(env, "SECMON_RING_SIZE", 100_000, 1),
            subscriber_queue=env_int(env, "SECMON_SUBSCRIBER_QUEUE", 10_000, 1),
            max_nodes=env_int(env, "SECMON_MAX_NODES", 20_000, 1),
            socket_group=env_group(env, "SECMON_SOCKET_GROUP"),
            state_dir=state_dir,
            uvloop=env_bool(env, "SECMON_UVLOOP", True),
            history_days=env_history_days(env),
            history_max_events=env_int(env, "SECMON_HISTORY_MAX_EVENTS", most, 1, 10**9),
            nats=NatsSettings.from_env(env, bind_port),
            node_down_after=node_down_after(env),
            audit_max=env_int(env, "SECMON_AUDIT_MAX", AUDIT_MAX, 1, 10**7),
            notices_max=env_int(env, "SECMON_NOTICES_MAX", NOTICES_MAX, 1, 10**7),
            context=ContextSettings.from_env(env),
        )


# --- event context: GeoIP, first seen, fleet-wide failures -------------------------

FLEET_MAX_FAILURES = 1_000_000  # a threshold past any window's reach: a typo, not a setting
FLEET_MAX_NODES = 100_000
FLEET_MIN_WINDOW = 1.0  # seconds: less watches nothing
SEEN_MAX_LIMIT = 10_000_000  # pairs first seen remembers at most (about 1 GB in memory): a typo past it


@dataclass(frozen=True, slots=True)
class ContextSettings:
    """What the hub adds to the auth events it broadcasts (hub/context.py)."""

    geoip_city_db: Path | None = None  # GEOIP_CITY_DB: a MaxMind-format City (or Country) database
    geoip_asn_db: Path | None = None  # GEOIP_ASN_DB: a MaxMind-format ASN database
    fleet_failures: int = 20  # SECMON_FLEET_FAILURES: failures from one source that make it failing (0: off)
    fleet_nodes: int = 3  # SECMON_FLEET_NODES: ... over at least this many nodes
    fleet_window: float = 600.0  # SECMON_FLEET_WINDOW: ... within this many seconds
    seen_max: int = 100_000  # SECMON_SEEN_MAX: (user, host/ASN/country) pairs first seen remembers

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ContextSettings:
        window = env_float(env, "SECMON_FLEET_WINDOW", 600.0)
        if window < FLEET_MIN_WINDOW:
            raise ConfigError(f"SECMON_FLEET_WINDOW must be at least 1 second, got {window:g}", "SECMON_FLEET_WINDOW")
        return cls(
            geoip_city_db=env_path(env, "GEOIP_CITY_DB"),
            geoip_asn_db=env_path(env, "GEOIP_ASN_DB"),
            fleet_failures=env_int(env, "SECMON_FLEET_FAILURES", 20, 0, FLEET_MAX_FAILURES),
            fleet_nodes=env_int(env, "SECMON_FLEET_NODES", 3, 1, FLEET_MAX_NODES),
            fleet_window=window,
            seen_max=env_int(env, "SECMON_SEEN_MAX", 100_000, 1, SEEN_MAX_LIMIT),
        )


def node_down_after(env: Mapping[str, str]) -> float:
    """NODE_DOWN_AFTER: more than 0 and shorter than DISCONNECT_GRACE_PERIOD (a node forgotten first
    would never be said down). Unset, 60 s, or half a grace period shorter than two minutes."""
    grace = env_float(env, "DISCONNECT_GRACE_PERIOD", 300.0)
    if _get(env, "NODE_DOWN_AFTER") is None:  # a short grace set before this setting existed still starts
        down_after = min(NODE_DOWN_AFTER, grace / 2)
    else:
        down_after = env_float(env, "NODE_DOWN_AFTER", NODE_DOWN_AFTER)
    if down_after <= 0 and _get(env, "NODE_DOWN_AFTER") is not None:
        raise ConfigError(f"NODE_DOWN_AFTER must be more than 0 seconds, got {down_after:g}", "NODE_DOWN_AFTER")
    if down_after >= grace and down_after > 0:
        raise ConfigError(
            f"NODE_DOWN_AFTER ({down_after:g} s) must be shorter than DISCONNECT_GRACE_PERIOD ({grace:g} s): "
            "a node forgotten before it is said down would never be",
            "NODE_DOWN_AFTER",
        )
    return down_after


def env_history_days(env: Mapping[str, str]) -> float:
    """SECMON_HISTORY_DAYS: at least an hour (1/24), since a history that keeps nothing is a mistake."""
    days = env_float(env, "SECMON_HISTORY_DAYS", 30.0, unit="days")
    if days < HISTORY_MIN_DAYS:
        raise ConfigError(
            f"SECMON_HISTORY_DAYS must be at least 0.0417 days (an hour; 0 would keep nothing), got {days:g}",
            "SECMON_HISTORY_DAYS",
        )
    return days


SESSIONS_SOURCES = ("auto", "logind", "utmp")  # auto: logind where systemd runs it, else utmp


@dataclass(frozen=True, slots=True)
class NodeSettings:
    hubs: tuple[HubAddress, ...]  # the hubs to use in turn, first first (HUB_ADDRS, else HUB_IP:HUB_PORT)
    hubs_variable: str  # the variable they came from, for the words of a failure: HUB_ADDRS or HUB_IP
    hostname: str | None  # the name the node reports; None: the machine's host name
    allowlist: Path | None
    execute_timeout: float
    auth_log: str  # "auto", "journal", "journal:DIR", or a file path
    link: LinkSettings
    sessions_interval: float
    wg_interval: float
    follow_interval: float  # seconds between looks at a followed log file where inotify is unavailable
    sessions_source: str  # SESSIONS_SOURCES: where logged-in sessions are read
    max_commands: int  # commands running at once; the rest queue
    reconnect_max: float  # cap of the reconnect backoff
    state_dir: Path | None  # where unacknowledged events survive a restart

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NodeSettings:
        env = os.environ if env is None else env
        return cls(
            hubs=hub_addresses(env),
            hubs_variable="HUB_ADDRS" if _get(env, "HUB_ADDRS") else "HUB_IP",
            hostname=env_optional(env, "SECMON_HOSTNAME"),
            allowlist=env_path(env, "COMMAND_ALLOWLIST_FILE"),
            execute_timeout=env_float(env, "COMMAND_EXECUTE_TIMEOUT", 0.0),
            auth_log=_auth_log(env),
            link=LinkSettings.from_env(env),
            sessions_interval=env_float(env, "SECMON_SESSIONS_INTERVAL", 1.0, 0.01),
            wg_interval=env_float(env, "SECMON_WG_INTERVAL", 5.0, 0.01),
            follow_interval=env_float(env, "SECMON_FOLLOW_INTERVAL", 0.1, 0.01),
            sessions_source=env_choice(env, "SECMON_SESSIONS_SOURCE", SESSIONS_SOURCES, "auto"),
            max_commands=env_int(env, "SECMON_MAX_COMMANDS", 4, 1, 1024),
            reconnect_max=env_float(env, "SECMON_RECONNECT_MAX", 30.0, 0.01),
            state_dir=env_path(env, "SECMON_STATE_DIR"),
        )


def _auth_log(env: Mapping[str, str]) -> str:
    value = env_str(env, "AUTH_LOG", "auto")
    if value == "journal:":
        raise ConfigError("AUTH_LOG=journal: names no directory: write journal:DIR, or journal for this machine's")
    return value


# --- where the node finds its hubs ----------------------------------------------------------

# Hubs a node may list: a fleet runs a handful; a longer list is a mistake, and each entry costs
# an attempt per round.
MAX_HUB_ADDRS = 64
_HOST_LABEL = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")


@dataclass(frozen=True, slots=True)
class HubAddress:
    """One hub a node may connect to: a host name or IP address (IPv6 without brackets) and a port.

    ``str()`` is how logs and errors name it: ``host:port``, ``[v6]:port`` for IPv6.
    """

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_hub_address(item: str, variable: str = "HUB_ADDRS") -> HubAddress:
    """``host:port`` or ``[v6]:port`` → HubAddress; a ConfigError naming ``variable`` and the item otherwise."""

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{variable}: {item!r} {why}", variable)

    if item.startswith("["):
        inside, bracket, rest = item[1:].partition("]")
        if not bracket:
            raise bad("has no closing bracket (write [IPv6]:port, e.g. [::1]:9992)")
        try:
            host = str(ipaddress.IPv6Address(inside))
        except ValueError:
            raise bad("has no IPv6 address between its brackets") from None
        if not rest.startswith(":"):
            raise bad("has no port (write [IPv6]:port, e.g. [::1]:9992)")
        port_text = rest[1:]
    else:
        host, colon, port_text = item.rpartition(":")
        if not colon:
            raise bad("has no port (write host:port, e.g. hub1:9992)")
        if ":" in host:
            raise bad("looks like an IPv6 address: put it in brackets, e.g. [::1]:9992")
        if not host:
            raise bad("has no host before its port")
        if not _valid_host(host):
            raise bad("has no valid host name or IP address before its port")
        host = host.lower()
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise bad("has no valid port (1 to 65535) after its colon")
    return HubAddress(host, int(port_text))


def _valid_host(host: str) -> bool:
    if len(host) > 253:
        return False
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    return all(_HOST_LABEL.fullmatch(label) and len(label) <= 63 for label in labels)


def parse_hub_addrs(raw: str, variable: str = "HUB_ADDRS") -> tuple[HubAddress, ...]:
    """A comma-separated list of hub addresses, in order; empty items, bad ones and repeats are ConfigErrors.

    A repeat is the same host (any case; an IPv6 address in any of its spellings) and port twice.
    """
    items = [item.strip() for item in raw.split(",")]
    if len(items) > MAX_HUB_ADDRS:
        raise ConfigError(f"{variable} lists {len(items)} hubs; at most {MAX_HUB_ADDRS} are allowed", variable)
    hubs: list[HubAddress] = []
    for number, item in enumerate(items, 1):
        if not item:
            raise ConfigError(f"{variable}: item {number} of {len(items)} is empty (a stray comma?)", variable)
        address = parse_hub_address(item, variable)
        if address in hubs:
            raise ConfigError(f"{variable}: {item!r} is listed twice (as {address})", variable)
        hubs.append(address)
    return tuple(hubs)


def hub_addresses(env: Mapping[str, str]) -> tuple[HubAddress, ...]:
    """The hubs a node uses: HUB_ADDRS when set, else the one at HUB_IP:HUB_PORT (defaults 127.0.0.1:9992)."""
    raw = _get(env, "HUB_ADDRS")
    if raw is not None:
        return parse_hub_addrs(raw)
    host = env_str(env, "HUB_IP", "127.0.0.1")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return (HubAddress(host, env_port(env, "HUB_PORT", 9992)),)


def ignored_hub_variables(env: Mapping[str, str]) -> list[str]:
    """HUB_IP and HUB_PORT, those of them set, when HUB_ADDRS is set too and so wins over them."""
    if _get(env, "HUB_ADDRS") is None:
        return []
    return [name for name in ("HUB_IP", "HUB_PORT") if _get(env, name) is not None]
