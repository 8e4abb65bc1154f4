"""What a browser may ask of the bridge: the rules against web pages, without I/O.

A bridge on loopback is still reachable by every page its operator opens, so
each request is judged before any handler runs:

- **Host** must be a name the bridge serves. An IP address cannot be rebound,
  so any literal is fine; a name must be ``localhost`` or one listed in
  ``SERVER_NAMES``. This is what stops DNS rebinding, where a page's own name
  is made to resolve to 127.0.0.1.
- **Origin**, when a browser sends one on a request that changes state or opens
  a WebSocket, must be the bridge's own or one in ``SERVER_ORIGINS``. Scripts
  and curl send none and are judged by their token alone.
- **Bodies** must be ``application/json``, which no page can send across
  origins without a preflight, and the bridge grants no CORS.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

# Sent with every answer, errors and the WebSocket handshake included.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is turned away: the HTTP status and one line for the caller."""

    status: int
    reason: str


def host_name(host_header: str) -> str:
    """The name or address of a Host header, without port or IPv6 brackets, lower-cased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() and ":" not in name else host


def is_served_host(host_header: str | None, server_names: frozenset[str]) -> bool:
    """True when the Host header names this bridge: an IP literal, a loopback name or a configured name."""
    if not host_header:
        return False
    name = host_name(host_header).rstrip(".")
    if name in LOOPBACK_NAMES or name in server_names or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def judge(
    method: str,
    headers: Mapping[str, str],
    own_origin: str,
    server_names: frozenset[str],
    allowed_origins: frozenset[str],
) -> Refusal | None:
    """The refusal this request earns, or None when it may go on to its handler."""
    if not is_served_host(headers.get("Host"), server_names):
        return Refusal(403, "this bridge does not serve that Host name; add it to SERVER_NAMES if it should")
    upgrade = headers.get("Upgrade", "").lower() == "websocket"
    origin = headers.get("Origin")
    if (method not in SAFE_METHODS or upgrade) and origin is not None:
        origin = origin.lower().rstrip("/")
        if origin != own_origin.lower() and origin not in allowed_origins:
            return Refusal(403, "cross-origin request refused; add the origin to SERVER_ORIGINS if it is yours")
    if method not in SAFE_METHODS and _has_body(headers):
        media_type = headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media_type != "application/json":
            return Refusal(415, "a request body must be Content-Type: application/json")
    return None


def _has_body(headers: Mapping[str, str]) -> bool:
    length = headers.get("Content-Length")
    return "Transfer-Encoding" in headers or (length is not None and length.strip() not in ("", "0"))
