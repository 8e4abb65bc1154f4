"""TLS contexts for the node link, from SECMON_TLS_CERT, SECMON_TLS_KEY and SECMON_TLS_CA.

Hub: a certificate and key turn TLS on; a CA as well requires every node to
present a client certificate signed by it (mutual TLS). Node: a CA turns TLS
on and verifies the hub's certificate against it, including that it names
the address in HUB_IP; a certificate and key are presented to the hub.
TLS 1.2 is the floor.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import env_path
from .errors import ConfigError


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert: Path | None
    key: Path | None
    ca: Path | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TlsFiles:
        files = cls(env_path(env, "SECMON_TLS_CERT"), env_path(env, "SECMON_TLS_KEY"), env_path(env, "SECMON_TLS_CA"))
        if (files.cert is None) != (files.key is None):
            raise ConfigError("SECMON_TLS_CERT and SECMON_TLS_KEY go together: set both or neither")
        for name, path in (("SECMON_TLS_CERT", files.cert), ("SECMON_TLS_KEY", files.key), ("SECMON_TLS_CA", files.ca)):
            if path is not None and not path.is_file():
                raise ConfigError(f"{name}: {path} is not a readable file")
        return files


def _load(context: ssl.SSLContext, files: TlsFiles) -> ssl.SSLContext:
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        if files.cert is not None:
            context.load_cert_chain(files.cert, files.key)
        if files.ca is not None:
            context.load_verify_locations(cafile=files.ca)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"cannot load TLS files: {exc}") from None
    return context


def hub_context(files: TlsFiles) -> ssl.SSLContext | None:
    """The hub's server context, or None for plain TCP (no certificate configured)."""
    if files.cert is None:
        if files.ca is not None:
            raise ConfigError("SECMON_TLS_CA on the hub needs SECMON_TLS_CERT and SECMON_TLS_KEY as well")
        return None
    context = _load(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), files)
    if files.ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no connection
    return context


def node_context(files: TlsFiles) -> ssl.SSLContext | None:
    """The node's client context, or None for plain TCP (no CA to verify the hub with)."""
    if files.ca is None:
        if files.cert is not None:
            raise ConfigError("SECMON_TLS_CERT on a node needs SECMON_TLS_CA to verify the hub")
        return None
    context = _load(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), files)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context
