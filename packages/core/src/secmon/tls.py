"""TLS contexts for the node link, from SECMON_TLS_CERT, SECMON_TLS_KEY and SECMON_TLS_CA.

Hub: a certificate and key turn TLS on; a CA as well requires every node to
present a client certificate signed by it (mutual TLS). Node: a CA turns TLS
on and verifies the hub's certificate against it, including that it names
the host dialled (HUB_IP, or each HUB_ADDRS item's host); a certificate and key are presented to the hub.
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


# --- a failed handshake, in the words of whoever must fix it ------------------------------
# OpenSSL names failures by reason code; these are the ones a misconfigured node or hub meets.

_SEEN_BY_NODE = {
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "requires a client certificate: set SECMON_TLS_CERT and SECMON_TLS_KEY",
    "SSLV3_ALERT_HANDSHAKE_FAILURE": (
        "refused the TLS handshake (does it require a client certificate? set SECMON_TLS_CERT and SECMON_TLS_KEY)"
    ),
    "TLSV1_ALERT_UNKNOWN_CA": (
        "does not accept our certificate (unknown ca): "
        "SECMON_TLS_CERT must be signed by the CA in the hub's SECMON_TLS_CA"
    ),
    "SSLV3_ALERT_BAD_CERTIFICATE": "does not accept our certificate (bad certificate): check SECMON_TLS_CERT",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "does not accept our certificate (expired): renew SECMON_TLS_CERT",
    "TLSV1_ALERT_DECRYPT_ERROR": "does not accept our certificate (decrypt error): does SECMON_TLS_KEY match it?",
    "WRONG_VERSION_NUMBER": (
        "does not speak TLS: give the hub SECMON_TLS_CERT and SECMON_TLS_KEY, or unset SECMON_TLS_CA here"
    ),
    "RECORD_LAYER_FAILURE": (
        "does not speak TLS: give the hub SECMON_TLS_CERT and SECMON_TLS_KEY, or unset SECMON_TLS_CA here"
    ),
}

_SEEN_BY_HUB = {
    "PEER_DID_NOT_RETURN_A_CERTIFICATE": (
        "the node sent no certificate, and this hub requires one (SECMON_TLS_CA is set): "
        "give the node SECMON_TLS_CERT and SECMON_TLS_KEY"
    ),
    "WRONG_VERSION_NUMBER": "the node does not speak TLS: set SECMON_TLS_CA on it",
    "HTTP_REQUEST": "an HTTP client, not a node",
    "NO_SHARED_CIPHER": "no cipher in common with the node (TLS 1.2 is the floor)",
    "UNSUPPORTED_PROTOCOL": "the node offers only TLS versions below 1.2",
}


def node_side_tls_failure(exc: ssl.SSLError, where: str) -> str:
    """What a node's failed TLS handshake with the hub at ``where`` means, and what to change."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"TLS with the hub at {where}: the hub's certificate is not trusted ({exc.verify_message}): "
            "SECMON_TLS_CA must be the CA that signed it, and the certificate must name the host dialled "
            "(HUB_IP, or the host of the HUB_ADDRS item)"
        )
    known = _SEEN_BY_NODE.get(exc.reason or "")
    if known is not None:
        return f"the hub at {where} {known}"
    return f"TLS with the hub at {where} failed: {exc.reason or exc}"


def hub_side_tls_failure(exc: ssl.SSLError) -> str:
    """Why a node's TLS handshake with the hub failed, for the hub's log."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        verify = exc.verify_message or "certificate verify failed"
        if "issuer" in verify or "self-signed" in verify or "self signed" in verify:
            return f"the node's certificate is not signed by the CA in SECMON_TLS_CA ({verify})"
        return f"the node's certificate was rejected: {verify}"
    return _SEEN_BY_HUB.get(exc.reason or "", str(exc.reason or exc))
