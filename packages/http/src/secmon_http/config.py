"""secmon-http settings from the environment, checked before anything binds.

The bridge always has a token unless the operator turns it off on loopback:
``HTTP_TOKEN_FILE`` names a file of one token or of named ones (see tokens.py),
otherwise one is generated at first start and kept, mode 0600, in
``SECMON_STATE_DIR`` or the user's configuration directory, the way Jupyter
Server does it.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from secmon.config import env_bool, env_ip, env_path, env_port, env_str, read_private_text
from secmon.errors import ConfigError

from .tokens import TokenSet, parse_token_file, single

TOKEN_BYTES = 32  # 256 bits: guessing is hopeless, and it still fits in a URL comfortably
TOKEN_FILE_NAME = "http-token"


@dataclass(frozen=True, slots=True)
class HttpSettings:
    server_ip: str
    server_port: int
    tokens: TokenSet | None  # None only when the operator turned them off on loopback
    token_file: Path | None  # where the tokens live, to tell the operator
    server_names: frozenset[str]  # host names the bridge answers to, besides loopback names and IPs
    allowed_origins: frozenset[str]  # origins besides the bridge's own that may send commands

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HttpSettings:
        env = os.environ if env is None else env
        server_ip = env_ip(env, "SERVER_IP", "127.0.0.1")
        loopback = ipaddress.ip_address(server_ip).is_loopback
        no_token = env_bool(env, "HTTP_NO_TOKEN", False)
        token_file = env_path(env, "HTTP_TOKEN_FILE")
        if no_token and token_file is not None:
            raise ConfigError("HTTP_NO_TOKEN and HTTP_TOKEN_FILE are both set: choose one")
        if no_token and not loopback:
            raise ConfigError(
                f"HTTP_NO_TOKEN is refused with SERVER_IP={server_ip}, which is not loopback: "
                "anyone who can reach it could see the fleet and run commands"
            )
        tokens: TokenSet | None
        if no_token:
            tokens = None
        elif token_file is not None:
            tokens = read_token_file(env, token_file)
        else:
            token_file = default_token_file(env)
            tokens = single(load_or_create_token(token_file))
        return cls(
            server_ip=server_ip,
            server_port=env_port(env, "SERVER_PORT", 9993),
            tokens=tokens,
            token_file=token_file,
            server_names=frozenset(_names(env_str(env, "SERVER_NAMES", ""), "SERVER_NAMES", _check_name)),
            allowed_origins=frozenset(
                map(_origin, _names(env_str(env, "SERVER_ORIGINS", ""), "SERVER_ORIGINS", _check_origin))
            ),
        )


def read_token_file(env: Mapping[str, str], path: Path) -> TokenSet:
    """The tokens of ``HTTP_TOKEN_FILE`` (``path``): a private UTF-8 file of one token or named ones."""
    text = read_private_text(env, "HTTP_TOKEN_FILE") or ""  # read once: line numbers are the file's own
    try:
        return parse_token_file(text, f"HTTP_TOKEN_FILE {path}")
    except ConfigError as exc:
        raise ConfigError(str(exc), "HTTP_TOKEN_FILE") from None


def default_token_file(env: Mapping[str, str]) -> Path:
    """``SECMON_STATE_DIR/http-token``, else ``$XDG_CONFIG_HOME/secmon/http-token`` (``~/.config``)."""
    state_dir = env_path(env, "SECMON_STATE_DIR")
    if state_dir is not None:
        return state_dir / TOKEN_FILE_NAME
    config_home = env_path(env, "XDG_CONFIG_HOME") or Path.home() / ".config"
    return config_home / "secmon" / TOKEN_FILE_NAME


def load_or_create_token(path: Path) -> str:
    """The token kept in ``path``, made (0600, in a 0700 directory if new) at first start."""
    try:
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(TOKEN_BYTES) + "\n")
        mode = path.stat().st_mode
        token = path.read_text().strip()
    except FileExistsError:  # another bridge made it between our look and our create
        return load_or_create_token(path)
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not UTF-8 text: remove it and a new token is made at start") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot keep the HTTP token in {path}: {exc.strerror} (set SECMON_STATE_DIR or HTTP_TOKEN_FILE)"
        ) from None
    if mode & 0o077:
        raise ConfigError(f"{path} is readable by others (mode {mode & 0o777:04o}): chmod 600 it")
    if not token:
        raise ConfigError(f"{path} is empty: remove it and a new token is made at start")
    return token


def _names(raw: str, variable: str, check: Callable[[str], bool]) -> list[str]:
    names = [part.strip().lower().rstrip("/") for part in raw.split(",") if part.strip()]
    for name in names:
        if not check(name):
            raise ConfigError(f"{variable}: {name!r} is not valid")
    return names


def _check_name(name: str) -> bool:
    return all(part and len(part) < 64 and part.replace("-", "").isalnum() for part in name.split("."))


def _check_origin(origin: str) -> bool:
    scheme, sep, rest = origin.partition("://")
    host = rest.rsplit(":", 1)[0] if rest.rsplit(":", 1)[-1].isdigit() else rest
    if host.startswith("[") and host.endswith("]"):
        try:
            return scheme in ("http", "https") and ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    return scheme in ("http", "https") and bool(sep) and "/" not in rest and _check_name(host)


def _origin(origin: str) -> str:
    """An origin as browsers send it: without the scheme's default port."""
    for scheme, port in (("http://", ":80"), ("https://", ":443")):
        if origin.startswith(scheme) and origin.endswith(port):
            return origin.removesuffix(port)
    return origin
