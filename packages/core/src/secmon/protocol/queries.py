"""What a history query (QueryEvents, QueryStats) may ask: the bounds, and the one check of them.

The hub checks every query it is sent here before its history sees it, and
``secmon.eventquery`` checks what a person typed against the same bounds, so a
query the CLI or the bridge lets through is one the hub answers. A query out of
bounds is answered with a ``bad_query`` error naming the field; the connection
that sent it goes on.
"""

from __future__ import annotations

import math

from . import messages as m

MAX_LIMIT = 10_000  # events one query returns at most; more is a download, not a look
MAX_STATS_LIMIT = 1_000  # keys one ranking returns at most
MAX_SEQ = 2**63 - 1  # a sequence is a SQLite INTEGER: a signed 64-bit number
MAX_BUCKET = 366 * 86_400  # seconds a time bucket spans at most: a year
# Times a query may name: from the Unix epoch to the start of year 9999, so a bucket
# around any of them is still a time an ISO 8601 text (and Python's datetime) can say.
EARLIEST = 0.0  # 1970-01-01T00:00:00Z
LATEST = 253_370_764_800.0  # 9999-01-01T00:00:00Z
SERIES_GROUPS = ("node", "kind")


def time_problem(value: float, name: str) -> str | None:
    """Why ``value`` is no time a query may name, or None."""
    if not math.isfinite(value):
        return f"{name}: must be a finite time, got {value!r}"
    if not EARLIEST <= value < LATEST:
        return f"{name}: must be a time from 1970-01-01 to 9998-12-31, got {value:.0f} s since 1970"
    return None


def seq_problem(value: int, name: str) -> str | None:
    """Why ``value`` is no sequence number, or None."""
    if not 0 <= value <= MAX_SEQ:
        return f"{name}: a sequence must be a whole number from 0 to {MAX_SEQ}, got {value}"
    return None


def node_problem(node: str) -> str | None:
    """Why ``node`` names no node: digits that are no serial; a name or address is matched as written."""
    if node.isdigit() and not (node.isascii() and len(node) <= 18):
        return f"node: {node!r} is not a serial (digits 0-9, at most 18), a hostname or an address"
    return None


def filter_problem(query: m.EventFilter) -> str | None:
    """The first field of ``query`` out of bounds, in one line naming it; None if every one is fine."""
    for name, seq in (("since", query.since_seq), ("until", query.until_seq)):
        if seq is not None and (problem := seq_problem(seq, name)):
            return problem
    for name, when in (("since", query.since_time), ("until", query.until_time)):
        if when is not None and (problem := time_problem(when, name)):
            return problem
    if query.since_time is not None and query.until_time is not None and query.since_time > query.until_time:
        return "since: is later than until, so nothing could match"
    if query.since_seq is not None and query.until_seq is not None and query.since_seq > query.until_seq:
        return f"since: sequence {query.since_seq} is after until {query.until_seq}"
    for node in query.nodes:
        if problem := node_problem(node):
            return problem
    return None


def bucket_problem(bucket: float) -> str | None:
    """Why ``bucket`` is no bucket length: whole seconds from 1 to a year (MAX_BUCKET)."""
    if not (math.isfinite(bucket) and bucket == int(bucket) and 1 <= bucket <= MAX_BUCKET):
        return f"bucket: must be a whole number of seconds from 1 to {MAX_BUCKET} (366 days), got {bucket!r}"
    return None


def query_problem(request: m.QueryEvents | m.QueryStats) -> str | None:
    """The first thing out of bounds in a history query, in one line naming the field; None if it may run."""
    if problem := filter_problem(request.filter):
        return problem
    if isinstance(request, m.QueryEvents):
        if not 1 <= request.limit <= MAX_LIMIT:
            return f"limit: must be a whole number from 1 to {MAX_LIMIT}, got {request.limit}"
        return None
    if request.by != m.BY_TIME and request.by not in m.STATS_KEYS:
        return f"by: must be {m.BY_TIME} or one of {', '.join(m.STATS_KEYS)}, got {request.by!r}"
    if request.by == m.BY_TIME:
        if request.group and request.group not in SERIES_GROUPS:
            return f"group: must be {' or '.join(SERIES_GROUPS)}, got {request.group!r}"
        return bucket_problem(request.bucket)
    if not 1 <= request.limit <= MAX_STATS_LIMIT:
        return f"limit: must be a whole number from 1 to {MAX_STATS_LIMIT}, got {request.limit}"
    return None
