"""What a person asks of the hub's event history, from text to a protocol query.

The CLI (``secmon events``) and the HTTP bridge (``GET /events``,
``GET /events/stats``) read their parameters here, so the same words mean the
same everywhere:

- a time is ISO 8601 (``2026-11-29T10:00:00Z``; without a zone, this machine's
  local time) or how long ago: ``30s``, ``15m``, ``2h``, ``7d``, ``2w``;
- ``since`` is a time or a sequence number (digits only; exclusive), ``until``
  a time or a sequence (inclusive);
- a source is an IP address or a CIDR network (or a host name, matched as written);
- a bucket is ``1m``, ``5m``, ``1h``, ``1d`` (any count of s/m/h/d/w) or seconds.

Every fault is a QueryError whose one line names the parameter.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from datetime import datetime

from .protocol import messages as m
from .protocol import queries

MAX_LIMIT = queries.MAX_LIMIT  # the hub's bounds, named here for the CLI and the bridge
MAX_STATS_LIMIT = queries.MAX_STATS_LIMIT

_AGO = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")
UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800}
TRUE = ("1", "true", "yes")
FALSE = ("0", "false", "no", "")
_MAX_DIGITS = 18  # a count or sequence longer than this is past any bound (and int() of it stays cheap)


class QueryError(ValueError):
    """A parameter of a history query that does not read; the text names it."""


def parse_time(text: str, now: float, name: str = "time") -> float:
    """Unix seconds of an ISO 8601 time, or of ``now`` minus a duration like ``15m``."""
    text = text.strip()
    ago = _AGO.fullmatch(text)
    try:
        moment = None if ago else datetime.fromisoformat(text)
    except ValueError:
        raise QueryError(
            f"{name}: {text!r} is neither an ISO 8601 time nor a duration ago like 30s, 15m, 2h, 7d"
        ) from None
    out_of_range = QueryError(f"{name}: {text!r} is not a time from 1970-01-01 to 9998-12-31")
    try:
        # an ISO time without a zone is this machine's local time
        value = moment.timestamp() if moment is not None else now - float(ago[1]) * UNITS[ago[2]]  # type: ignore[index]
    except (ValueError, OverflowError, OSError):
        raise out_of_range from None
    if queries.time_problem(value, name):
        raise out_of_range
    return value


def _digits(text: str) -> bool:
    """Whether ``text`` is plain 0-9 digits, few enough to be a count or a sequence."""
    return text.isascii() and text.isdigit() and len(text) <= _MAX_DIGITS


def parse_point(text: str, now: float, name: str) -> tuple[int | None, float | None]:
    """A sequence (digits only) or a time: ``(seq, None)`` or ``(None, time)``."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        if not _digits(text):
            raise QueryError(f"{name}: sequence {text[:30]}{'...' if len(text) > 30 else ''} is too large")
        return int(text), None
    return None, parse_time(text, now, name)


def parse_bucket(text: str) -> float:
    """A bucket's length in whole seconds: ``1m``, ``5m``, ``1h``, ``1d``, or a number of seconds."""
    text = text.strip()
    ago = _AGO.fullmatch(text)
    try:
        seconds = float(ago[1]) * UNITS[ago[2]] if ago else float(text)
    except ValueError:
        raise QueryError(f"bucket: {text!r} is not a duration like 1m, 5m, 1h, 1d or a number of seconds") from None
    if queries.bucket_problem(seconds):
        raise QueryError(f"bucket: must be whole seconds from 1 s to 366 days, got {text!r}")
    return float(seconds)


def parse_limit(text: str | int, maximum: int = MAX_LIMIT) -> int:
    """A count from 1 to ``maximum``."""
    value = str(text).strip()
    if not _digits(value) or not 1 <= int(value) <= maximum:
        raise QueryError(f"limit: must be a whole number from 1 to {maximum}, got {value!r}")
    return int(value)


def parse_flag(text: str, name: str) -> bool:
    """``1``/``true``/``yes`` or ``0``/``false``/``no`` (any case); present and empty is false."""
    lowered = text.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise QueryError(f"{name}: must be 1/true or 0/false, got {text!r}")


def check_source(text: str) -> str:
    """An IP address or CIDR network, written as the user wrote it; a host name as it is."""
    text = text.strip()
    if not text:
        raise QueryError("source: empty")
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError:
        if "/" in text or ":" in text:
            raise QueryError(f"source: {text!r} is not an IP address or CIDR network") from None
    return text


def event_filter(
    *,
    now: float,
    since: str | None = None,
    until: str | None = None,
    nodes: Sequence[str] = (),
    kinds: Sequence[str] = (),
    user: str | None = None,
    source: str | None = None,
    failures: bool = False,
) -> m.EventFilter:
    """The protocol filter for the words a person gave; QueryError names the first that does not read."""
    since_seq, since_time = parse_point(since, now, "since") if since is not None else (None, None)
    until_seq, until_time = parse_point(until, now, "until") if until is not None else (None, None)
    query = m.EventFilter(
        since_seq=since_seq,
        since_time=since_time,
        until_seq=until_seq,
        until_time=until_time,
        nodes=[node.strip() for node in nodes if node.strip()],
        kinds=[kind.strip() for kind in kinds if kind.strip()],
        user=user,
        source=check_source(source) if source is not None else None,
        failures=failures,
    )
    if problem := queries.filter_problem(query):
        raise QueryError(problem)
    return query
