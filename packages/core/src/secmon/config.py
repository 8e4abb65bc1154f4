"""Environment variables → typed settings, with one-line errors for bad values.

Names and defaults follow SPEC.md. Tuning knobs that are not in the original
(keepalive interval, handshake deadline, poll intervals) are prefixed
``SECMON_`` and exist so tests can run with short timeouts.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    return None if value is None or value.strip() == "" else value.strip()


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    return _get(env, name) or default


def env_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not value >= minimum or value == float("inf"):
        raise ConfigError(f"{name} must be a finite number ≥ {minimum:g}, got {raw!r}")
    return value


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int = 2**31) -> int:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {raw!r}")
    return value


def env_port(env: Mapping[str, str], name: str, default: int) -> int:
    return env_int(env, name, default, 0, 65535)


def env_ip(env: Mapping[str, str], name: str, default: str) -> str:
    raw = _get(env, name) or default
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        raise ConfigError(f"{name} must be an IP address, got {raw!r}") from None


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _get(env, name)
    if raw is None:
        return default
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_path(env: Mapping[str, str], name: str) -> Path | None:
    raw = _get(env, name)
    return Path(raw) if raw else None


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    """The stripped content of the file named by ``name``, or None when unset."""
    path = env_path(env, name)
    if path is None:
        return None
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise ConfigError(f"{name}: {path} is empty")
    return secret


def socket_path(env: Mapping[str, str] | None = None) -> Path:
    """The hub's Unix socket: SECMON_SOCKET, else /run/secmon.sock for root, else /run/user/UID."""
    env = os.environ if env is None else env
    override = _get(env, "SECMON_SOCKET")
    if override:
        return Path(override)
    uid = os.getuid()
    return Path("/run/secmon.sock") if uid == 0 else Path(f"/run/user/{uid}/secmon.sock")


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


@dataclass(frozen=True, slots=True)
class HubSettings:
    bind_ip: str
    bind_port: int
    disconnect_grace: float
    hostname_unique: bool
    socket: Path
    link: LinkSettings
    ring_size: int  # updates kept for subscribers that resume
    subscriber_queue: int  # frames a subscriber may fall behind before it is dropped
    max_nodes: int  # connected nodes; more are refused, so a flood cannot exhaust the hub
    socket_group: str | None  # a group whose members may use the socket too
    state_dir: Path | None  # where the update ring and event dedup state survive a restart

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HubSettings:
        env = os.environ if env is None else env
        return cls(
            bind_ip=env_ip(env, "BIND_IP", "127.0.0.1"),
            bind_port=env_port(env, "BIND_PORT", 9992),
            disconnect_grace=env_float(env, "DISCONNECT_GRACE_PERIOD", 300.0),
            hostname_unique=env_bool(env, "ASSUME_HOSTNAME_UNIQUE", True),
            socket=socket_path(env),
            link=LinkSettings.from_env(env),
            ring_size=env_int(env, "SECMON_RING_SIZE", 100_000, 1),
            subscriber_queue=env_int(env, "SECMON_SUBSCRIBER_QUEUE", 10_000, 1),
            max_nodes=env_int(env, "SECMON_MAX_NODES", 20_000, 1),
            socket_group=_get(env, "SECMON_SOCKET_GROUP"),
            state_dir=env_path(env, "SECMON_STATE_DIR"),
        )


@dataclass(frozen=True, slots=True)
class NodeSettings:
    hub_ip: str
    hub_port: int
    allowlist: Path | None
    execute_timeout: float
    auth_log: str  # "auto", "journal", or a file path
    link: LinkSettings
    sessions_interval: float
    wg_interval: float
    max_commands: int  # commands running at once; the rest queue
    reconnect_max: float  # cap of the reconnect backoff
    state_dir: Path | None  # where unacknowledged events survive a restart

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NodeSettings:
        env = os.environ if env is None else env
        return cls(
            hub_ip=env_str(env, "HUB_IP", "127.0.0.1"),
            hub_port=env_port(env, "HUB_PORT", 9992),
            allowlist=env_path(env, "COMMAND_ALLOWLIST_FILE"),
            execute_timeout=env_float(env, "COMMAND_EXECUTE_TIMEOUT", 0.0),
            auth_log=env_str(env, "AUTH_LOG", "auto"),
            link=LinkSettings.from_env(env),
            sessions_interval=env_float(env, "SECMON_SESSIONS_INTERVAL", 1.0, 0.01),
            wg_interval=env_float(env, "SECMON_WG_INTERVAL", 5.0, 0.01),
            max_commands=env_int(env, "SECMON_MAX_COMMANDS", 4, 1, 1024),
            reconnect_max=env_float(env, "SECMON_RECONNECT_MAX", 30.0, 0.01),
            state_dir=env_path(env, "SECMON_STATE_DIR"),
        )
