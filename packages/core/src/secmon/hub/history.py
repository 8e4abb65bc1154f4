"""The hub's event history: every auth event it broadcast, kept for queries and charts.

Each event is kept with its sequence, its node as subscribers saw it (serial,
hostname, address) and the node's id, and every field of the event, so a
query answers with exactly the AuthUpdate that was broadcast. Without
SECMON_STATE_DIR the history is in memory: the runs of events as the hub
relayed them (the checked maps and their node), held in a deque, one append
per read from a node and nothing converted; a query reads them newest first in
a worker thread (from a copy of the deque's list) and counts in Python. With a
state dir it is SQLite, ``history.sqlite3`` there (WAL), with hourly and daily
rollups that answer charts and rankings over weeks without reading every
event. Either is bounded: by age (SECMON_HISTORY_DAYS) and by count
(SECMON_HISTORY_MAX_EVENTS), the oldest leaving first, a bounded number of
events at a time, so no write pays for a full scan.

On disk the relay never waits for the database. ``add`` appends a node's run
of events to a list, one append per read from a node; ``flush`` (every
FLUSH_INTERVAL, and before every query) writes what was added in one
transaction with ``executemany``, in a worker thread, the rollups counted in
Python first. Queries run in that thread too, one at a time with the writes.
Queries never return an event after the sequence they were asked at: a
subscription from ``last_seq`` follows on without a gap or a duplicate. A
crash loses at most the last interval's events from the history (the ring in
``hub.sqlite3`` still has them: ``recover`` adds them back at start).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import logging
import math
import socket
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import msgpack

from ..config import state_directory, state_error
from ..protocol import messages as m
from ..protocol.batches import EventOrigin, UpdateFrame
from ..protocol.codec import decode_body, encode_body
from ..protocol.kinds import FAILURE_KINDS, SUCCESS_KINDS
from ..protocol.queries import MAX_LIMIT
from ..protocol.queries import MAX_STATS_LIMIT as MAX_STATS_ROWS
from ..protocol.schema import record_converter

log = logging.getLogger("secmon.hub")

DATABASE = "history.sqlite3"  # in SECMON_STATE_DIR: its own file, so its writer never holds up the hub's store
FLUSH_INTERVAL = 1.0  # seconds between writes: one transaction a second, whatever the rate; rollups add up within it
# Text of the events one answer carries at most: well inside a frame (codec.MAX_FRAME, 16 MiB) however
# long the commands sudo logged; past it the oldest are left out, and ``more`` says so.
ANSWER_BUDGET = 8 * 1024 * 1024
EVENT_OVERHEAD = 200  # bytes an event takes in an answer besides its text fields


def _series_request(request: m.QueryStats) -> tuple[float, str]:
    """A series' bucket and grouping, checked."""
    bucket = request.bucket
    if not (bucket >= 1 and math.isfinite(bucket)):
        raise BadQuery(f"bucket: must be at least 1 second, got {bucket:g}")
    group = request.group
    if group and group not in ("node", "kind"):
        raise BadQuery(f"group: must be node or kind, got {group!r}")
    return bucket, group


def _buckets(query: m.EventFilter, oldest: float | None, bucket: float, now: float) -> tuple[int, int] | None:
    """The first and last bucket numbers of a series (the first holds ``since``, or the oldest event
    asked about; the last ``until``, or now); None when nothing is held and no ``since`` was given."""
    if oldest is None and query.since_time is None:
        return None
    first = math.floor((query.since_time if query.since_time is not None else oldest) / bucket)  # type: ignore[operator]
    last = math.floor((query.until_time if query.until_time is not None else now) / bucket)
    size = last - first + 1
    if size > MAX_BUCKETS:
        raise BadQuery(
            f"bucket: {bucket:g} s makes {size} buckets over this range, at most {MAX_BUCKETS}:"
            " choose a larger bucket or a later since"
        )
    return first, last


def _is_serial(node: str) -> bool:
    """A node query that names a serial: ASCII digits that fit a serial (never ``²`` or 5,000 digits)."""
    return node.isascii() and node.isdigit() and len(node) <= 18


def _within_budget(events: list[m.StoredEvent], more: bool) -> tuple[list[m.StoredEvent], bool]:
    """The newest of ``events`` (ascending) whose text fits ANSWER_BUDGET, and whether older ones pass."""
    size = 0
    for index in range(len(events) - 1, -1, -1):
        stored = events[index]
        event = stored.event
        size += EVENT_OVERHEAD + len(stored.hostname) + len(stored.address)
        size += sum(len(value) for value in (event.user, event.host, event.command, event.method, event.tty,
                                             event.target_user, event.process) if value)  # fmt: skip
        if size > ANSWER_BUDGET:
            return events[index + 1 :], True
    return events, more


MAX_BUCKETS = 10_000  # time buckets one series may have: a chart's width many times over
TRIM_STEP = 10_000  # rows one write removes at most for age or count, so no write stalls
AGE_CHECK_EVERY = 60.0  # seconds between looks for rows past their age
HOUR = 3_600
DAY = 86_400
SEEN_CACHE = 200_000  # daily_seen rows remembered as written, so a busy day's pairs are not written again
MAX_WRITE = 20_000  # events one background write takes at most: a bounded hold on the interpreter
MAX_DUTY = 0.25  # of the time the background writes may take, so a flood of events does not slow their relay
MAX_PENDING = (
    200_000  # events waiting for a write at most; past it (a flood the disk cannot follow) new ones are not kept
)

FAILURE, SUCCESS, OTHER = 1, 2, 0  # the ``outcome`` column
_OUTCOME = {**dict.fromkeys(FAILURE_KINDS, FAILURE), **dict.fromkeys(SUCCESS_KINDS, SUCCESS)}

# The event's fields after the node's, in AuthEvent order from ``node_seq`` (its ``seq``) on.
_EVENT_COLUMNS = "node_seq, time, kind, process, pid, user, host, port, method, target_user, command, tty"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events ("
    " seq INTEGER PRIMARY KEY, serial INTEGER NOT NULL, hostname TEXT NOT NULL, address TEXT NOT NULL,"
    " node_id TEXT NOT NULL, outcome INTEGER NOT NULL, ip BLOB,"
    " node_seq INTEGER NOT NULL, time REAL NOT NULL, kind TEXT NOT NULL, process TEXT NOT NULL, pid INTEGER,"
    " user TEXT, host TEXT, port INTEGER, method TEXT, target_user TEXT, command TEXT, tty TEXT, context BLOB)",
    # The one index on the events: time, which grows with the sequence, so keeping it costs
    # little. An index on a random key (user, source) cost 15-30 µs per event here; the
    # rollups below answer the heavy questions instead, and a query for the latest events of
    # one user or network reads the events newest first until it has enough.
    "CREATE INDEX IF NOT EXISTS events_time ON events (time)",
    # Events per hour and kind, and per hour, node and outcome: charts over days and weeks.
    "CREATE TABLE IF NOT EXISTS hourly_kind (hour INTEGER, kind TEXT, n INTEGER NOT NULL,"
    " PRIMARY KEY (hour, kind)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS hourly_node (hour INTEGER, hostname TEXT, outcome INTEGER, n INTEGER NOT NULL,"
    " PRIMARY KEY (hour, hostname, outcome)) WITHOUT ROWID",
    # Per day and key (a node's hostname, a kind, a source, a user): rankings, and charts by the day.
    "CREATE TABLE IF NOT EXISTS daily (by TEXT, day INTEGER, key TEXT, n INTEGER NOT NULL,"
    " failures INTEGER NOT NULL, successes INTEGER NOT NULL, first REAL NOT NULL, last REAL NOT NULL,"
    " PRIMARY KEY (by, key, day)) WITHOUT ROWID",
    # Which nodes ('n') and users ('u') each key of a day saw: the distinct counts of a ranking.
    "CREATE TABLE IF NOT EXISTS daily_seen (by TEXT, day INTEGER, key TEXT, what TEXT, value TEXT,"
    " PRIMARY KEY (by, key, day, what, value)) WITHOUT ROWID",
)
_INSERT = f"INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?, {', '.join('?' * 12)}, ?)"
_ADD_HOURLY_KIND = "INSERT INTO hourly_kind VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
_ADD_HOURLY_NODE = "INSERT INTO hourly_node VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n"
_ADD_DAILY = (
    "INSERT INTO daily (by, key, day, n, failures, successes, first, last) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO UPDATE SET n = n + excluded.n,"
    " failures = failures + excluded.failures, successes = successes + excluded.successes,"
    " first = min(first, excluded.first), last = max(last, excluded.last)"
)
_ADD_SEEN = "INSERT OR IGNORE INTO daily_seen (by, key, day, what, value) VALUES (?, ?, ?, ?, ?)"
_SELECT = f"SELECT seq, serial, hostname, address, {_EVENT_COLUMNS}, context FROM events"
# What a ranking groups by, as a column.
_KEY_COLUMNS = {"node": "hostname", "kind": "kind", "source": "host", "user": "user"}


Contexts = list[m.EventContext | None]
# A node's run of events as the hub added it: the first one's sequence, the node, its id, the event
# maps, and their contexts (one per event) or None when none has one.
Run = tuple[int, EventOrigin, str, list[dict[str, Any]], Contexts | None]
_context_of = record_converter(m.EventContext)


def _packed_context(context: m.EventContext | None) -> bytes | None:
    """An event's context as the ``context`` column keeps it: its MessagePack map, as on the wire."""
    return encode_body(context) if context is not None else None  # type: ignore[arg-type]  # a record packs as a map


def _unpacked_context(blob: bytes | None) -> m.EventContext | None:
    if blob is None:
        return None
    try:
        context: m.EventContext = _context_of(msgpack.unpackb(blob), "context")
    except Exception:  # a damaged cell: the event without it, rather than no answer
        return None
    return context


class BadQuery(ValueError):
    """A query the history cannot answer as asked; the text names the parameter."""


def address_key(host: str | None) -> bytes | None:
    """An IP address as a sortable key: a version byte, then its packed bytes; None for a name.

    The version byte keeps the two families apart, so a range of one never holds the other.
    """
    if not host:
        return None
    try:
        return b"\x04" + socket.inet_pton(socket.AF_INET, host)
    except OSError:
        pass
    try:
        return b"\x06" + socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        return None


def network_range(source: str) -> tuple[bytes, bytes] | None:
    """The first and last ``address_key`` of an IP address or CIDR network; None for a host name.

    Raises BadQuery for something with a ``/`` that is no network.
    """
    try:
        network = ipaddress.ip_network(source.strip(), strict=False)
    except ValueError:
        if "/" in source or ":" in source:
            raise BadQuery(f"source: {source!r} is not an IP address or CIDR network") from None
        return None
    tag = b"\x04" if network.version == 4 else b"\x06"
    return tag + network.network_address.packed, tag + network.broadcast_address.packed


def _where(query: m.EventFilter, last_seq: int) -> tuple[str, list[Any]]:
    """The WHERE clause of a filter, and its parameters; never past ``last_seq``."""
    clauses = ["seq <= ?"]
    params: list[Any] = [min(last_seq, query.until_seq) if query.until_seq is not None else last_seq]
    if query.since_seq is not None:
        clauses.append("seq > ?")
        params.append(query.since_seq)
    if query.since_time is not None:
        clauses.append("time >= ?")
        params.append(query.since_time)
    if query.until_time is not None:
        clauses.append("time <= ?")
        params.append(query.until_time)
    if query.nodes:
        marks = ", ".join("?" * len(query.nodes))
        serials = [int(n) for n in query.nodes if _is_serial(n)]
        either = [f"hostname IN ({marks})", f"address IN ({marks})"]
        params += [*query.nodes, *query.nodes]
        if serials:
            either.append(f"serial IN ({', '.join('?' * len(serials))})")
            params += serials
        clauses.append(f"({' OR '.join(either)})")
    if query.kinds:
        clauses.append(f"kind IN ({', '.join('?' * len(query.kinds))})")
        params += query.kinds
    if query.user is not None:
        clauses.append("user = ?")
        params.append(query.user)
    if query.source is not None:
        span = network_range(query.source)
        if span is None:
            clauses.append("host = ?")
            params.append(query.source.strip())
        else:
            clauses.append("ip BETWEEN ? AND ?")
            params += span
    if query.failures:
        clauses.append(f"outcome = {FAILURE}")
    return " AND ".join(clauses), params


def _time_only(query: m.EventFilter) -> bool:
    """Whether a filter narrows by time alone (the daily rollups can answer it)."""
    return query == m.EventFilter(since_time=query.since_time, until_time=query.until_time)


def _rollup_filter(query: m.EventFilter) -> bool:
    """Whether the hourly rollups can answer a filter: by time, hostname, kind, failures."""
    hostnames = all(not _is_serial(node) and address_key(node) is None for node in query.nodes)
    return hostnames and query == dataclasses.replace(query, since_seq=None, until_seq=None, user=None, source=None)


def _stored(row: tuple[Any, ...]) -> m.StoredEvent:
    seq, serial, hostname, address, *event, context = row
    return m.StoredEvent(seq, serial, hostname, address, m.AuthEvent(*event), _unpacked_context(context))


def _rows(batch: list[Run]) -> Iterator[tuple[Any, ...]]:
    """The table's rows for runs of events as the hub added them."""
    outcome = _OUTCOME.get
    for first, origin, node_id, events, contexts in batch:
        serial, hostname, address = origin.serial, origin.hostname, origin.address
        for index, event in enumerate(events):
            get = event.get
            kind = event["kind"]
            host = get("host")
            yield (
                first + index, serial, hostname, address, node_id, outcome(kind, OTHER), address_key(host),
                event["seq"], event["time"], kind, event["process"], get("pid"), get("user"), host, get("port"),
                get("method"), get("target_user"), get("command"), get("tty"),
                _packed_context(contexts[index]) if contexts is not None else None,
            )  # fmt: skip


# The test of one held event for each part of a filter, as ``_where`` asks SQLite; the
# values are names in the test's namespace, never text in its source.
_TESTS = {
    "since": 'event["time"] >= since',
    "until": 'event["time"] <= until',
    "kinds": 'event["kind"] in kinds',
    "user": 'event.get("user") == user',
    "host": 'event.get("host") == host',
    "network": 'low <= packed(event.get("host")) <= high',
    "failures": 'event["kind"] in failure_kinds',
}


def _matcher(query: m.EventFilter) -> Callable[[dict[str, Any]], bool] | None:
    """A filter's test of one held event's own fields (nodes and sequences aside: see ``_runs_of``),
    one compiled expression; None lets all pass."""
    names: dict[str, Any] = {"failure_kinds": FAILURE_KINDS}
    if query.since_time is not None:
        names["since"] = query.since_time
    if query.until_time is not None:
        names["until"] = query.until_time
    if query.kinds:
        names["kinds"] = frozenset(query.kinds)
    if query.user is not None:
        names["user"] = query.user
    if query.source is not None:
        span = network_range(query.source)
        if span is None:
            names["host"] = query.source.strip()
        else:
            names["network"] = True
            names["low"], names["high"] = span
            keys: dict[Any, bytes] = {}  # sources repeat: each is packed once a query

            def packed(host: str | None) -> bytes:
                key = keys.get(host)
                if key is None:
                    key = keys[host] = address_key(host) or b""  # (b"" is below every network)
                return key

            names["packed"] = packed
    if query.failures:
        names["failures"] = True
    parts = [test for name, test in _TESTS.items() if name in names]
    if not parts:
        return None
    return eval(f"lambda event: {' and '.join(parts)}", names)  # type: ignore[no-any-return]  # fixed text, values by name


def _runs_of(
    newest_first: Iterable[Run], query: m.EventFilter, last_seq: int
) -> Iterator[tuple[int, EventOrigin, list[dict[str, Any]], Contexts | None]]:
    """The held runs' events that a filter's sequences and nodes let through, newest run first, each
    run's in its order with the sequence of its first, and their contexts: runs are held in sequence
    order, and a run is one node's."""
    high = min(last_seq, query.until_seq) if query.until_seq is not None else last_seq
    low = query.since_seq if query.since_seq is not None else -1
    nodes = set(query.nodes)
    serials = {int(n) for n in query.nodes if _is_serial(n)}
    for first, origin, _node_id, events, contexts in newest_first:
        last = first + len(events) - 1
        if first > high:
            continue
        if last <= low:
            return
        if nodes and not (origin.hostname in nodes or origin.address in nodes or origin.serial in serials):
            continue
        start = max(first, low + 1)
        if start > first or last > high:
            events = events[start - first : high + 1 - first]
            if contexts is not None:
                contexts = contexts[start - first : high + 1 - first]
        yield start, origin, events, contexts


def _ranking_of(
    pieces: Iterable[tuple[int, EventOrigin, list[dict[str, Any]], Contexts | None]],
    test: Callable[[dict[str, Any]], bool] | None,
    by: str,
    limit: int,
) -> list[m.StatsRow]:
    """A ranking counted from held events: count, failures, nodes, users, first and last per key."""
    column = _KEY_COLUMNS[by]
    totals: dict[Any, list[Any]] = {}
    failing = FAILURE_KINDS
    for _start, origin, events, _contexts in pieces:
        hostname = origin.hostname
        for event in events:
            if test is not None and not test(event):
                continue
            key = hostname if by == "node" else event.get(column)
            if key is None:
                continue
            when = event["time"]
            total = totals.get(key)
            if total is None:
                total = totals[key] = [0, 0, set(), set(), when, when]
            total[0] += 1
            if event["kind"] in failing:
                total[1] += 1
            total[2].add(hostname)
            user = event.get("user")
            if user is not None:
                total[3].add(user)
            if when < total[4]:
                total[4] = when
            elif when > total[5]:
                total[5] = when
    top = sorted(totals, key=lambda key: (-totals[key][0], key))[:limit]
    return [m.StatsRow(key, t[0], t[1], len(t[2]), len(t[3]), t[4], t[5]) for key in top for t in (totals[key],)]


@dataclass(frozen=True, slots=True)
class Retention:
    """How long and how much the history keeps."""

    days: float = 30.0
    max_events: int = 2_000_000


class EventHistory:
    """The hub's auth events, in SQLite: on disk in ``directory``, or in memory when it is None."""

    def __init__(self, directory: Path | None, retention: Retention) -> None:
        """Open (or create) the history; ConfigError with one line when its file cannot be used."""
        self.retention = retention
        self.path = state_directory(directory) / DATABASE if directory is not None else None
        self._pending: list[Run] = []
        self._pending_events = 0
        self._skipped = 0  # events not kept since the last write: the writes fell MAX_PENDING behind
        self._lock = anyio.Lock()  # one writer or reader at a time, in the order they asked
        self._next_age_check = 0.0
        self._pruned_hour = self._pruned_day = -1  # the rollups hold nothing before these
        self._seen: set[tuple[str, str, int, str, str]] = set()  # daily_seen rows known to be there
        self.rolled_up = self.path is not None
        # In memory the runs themselves, as the hub added them, oldest first: keeping an event is
        # an append, and a query reads them (a full scan of the bound is a fraction of a second).
        self._runs: deque[Run] | None = None
        if self.path is None:
            self._runs = deque()
            self.count = self.last_seq = 0
            return
        with self._read_errors():
            # One connection, used by one thread at a time (the lock), whichever thread that is.
            self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                self.db.execute(statement)
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(events)")}
            if "context" not in columns:  # a history from before event context
                self.db.execute("ALTER TABLE events ADD COLUMN context BLOB")
            self.count = self.db.execute("SELECT count(*) FROM events").fetchone()[0]
            self.last_seq = self.db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]

    @contextmanager
    def _read_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise state_error(self.path or Path(":memory:"), exc) from None

    # --- the hot path ----------------------------------------------------------

    def add(
        self, first: int, origin: EventOrigin, node_id: str, events: list[dict[str, Any]],
        contexts: Contexts | None = None,
    ) -> None:  # fmt: skip
        """Keep a node's events, numbered from ``first`` (checked maps, as the hub relays them), with their
        contexts (one per event) when they have any.

        An append: they are written at the next flush. Past MAX_PENDING waiting (the disk
        cannot follow a flood), events are not kept, and the log says how many once a write.
        """
        runs = self._runs
        if runs is not None:
            runs.append((first, origin, node_id, events, contexts))
            self.count += len(events)
            self.last_seq = first + len(events) - 1
            if self.count > self.retention.max_events:
                self._drop(self.count - self.retention.max_events, math.inf)
            return
        if self._pending_events < MAX_PENDING:
            self._pending.append((first, origin, node_id, events, contexts))
            self._pending_events += len(events)
        else:
            self._skipped += len(events)

    def recover(self, frames: list[UpdateFrame]) -> int:
        """Add the auth updates of held frames newer than the history (a crash lost them); how many."""
        runs: list[Run] = []
        for frame in frames:
            if frame.last <= self.last_seq:
                continue
            update = decode_body(frame.frame[4:])
            if isinstance(update, m.AuthUpdate | m.AuthUpdates):
                events = [update.event] if isinstance(update, m.AuthUpdate) else update.events
                maps = [{f: getattr(e, f) for f in e.__slots__} for e in events]
                origin = EventOrigin(update.serial, update.hostname, update.address)
                cut = max(0, self.last_seq + 1 - update.seq)
                contexts = [update.context] if isinstance(update, m.AuthUpdate) else update.contexts
                kept = contexts[cut:] if contexts is not None and any(contexts) else None
                runs.append((update.seq + cut, origin, "", maps[cut:], kept))
        self._write(runs)
        return sum(len(run[3]) for run in runs)

    # --- writing -----------------------------------------------------------------

    async def run_flusher(self) -> None:
        """Write what was added every FLUSH_INTERVAL, until cancelled; then the rest, at once.

        A write holds the interpreter's lock for its Python part, and the relay waits for it
        each time it comes back from a system call: so the writes take at most MAX_DUTY of
        the time, MAX_WRITE events at a time. A flood they cannot follow fills MAX_PENDING,
        and what comes past it is not kept (the log says how much), rather than the relay slowed.
        """
        if self._runs is not None:  # in memory nothing waits: only the age check, once a while
            while True:
                await anyio.sleep(FLUSH_INTERVAL)
                self._write([])
        pause = FLUSH_INTERVAL
        try:
            while True:
                await anyio.sleep(pause)
                if self._pending:
                    started = time.monotonic()
                    await self.flush(MAX_WRITE)
                    pause = max(FLUSH_INTERVAL, (time.monotonic() - started) * (1 / MAX_DUTY - 1))
        finally:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    self._write(self._take())

    async def flush(self, most: int | None = None) -> None:
        """Write what was added (the oldest ``most`` events or so, if given), in a worker thread."""
        async with self._lock:
            batch = self._take(most)
            if batch:
                await anyio.to_thread.run_sync(self._write, batch)

    def _take(self, most: int | None = None) -> list[Run]:
        """What was added, or its first runs up to ``most`` events (at least one run)."""
        if self._skipped:  # said at every write, a flood's partial ones included
            log.warning(
                "history: %d events were not kept: its writes fell %d events behind", self._skipped, MAX_PENDING
            )
            self._skipped = 0
        if most is not None and self._pending_events > most:
            taken = count = 0
            for _first, _origin, _node_id, events, _contexts in self._pending:
                taken += 1
                count += len(events)
                if count >= most:
                    break
            batch, self._pending = self._pending[:taken], self._pending[taken:]
            self._pending_events -= count
            return batch
        batch, self._pending, self._pending_events = self._pending, [], 0
        return batch

    def _write(self, batch: list[Run], now: float | None = None) -> None:
        """One transaction: the batch's rows and rollups, and what retention removes.

        Errors are logged, not raised: the history must never take the relay down with it.
        """
        now = time.time() if now is None else now
        if self._runs is not None:
            for run in batch:
                self.add(*run)
            self._trim_memory(now)
            return
        db = self.db
        try:
            with db:
                db.execute("BEGIN")
                if batch:
                    rows = list(_rows(batch))
                    before = db.total_changes
                    db.executemany(_INSERT, rows)
                    self.count += db.total_changes - before
                    if self.rolled_up:
                        self._roll_up(rows)
                    self.last_seq = max(self.last_seq, batch[-1][0] + len(batch[-1][3]) - 1)
                self._trim(now)
        except sqlite3.Error as exc:
            self._seen = set()  # what it remembers may have been rolled back
            log.error("history: could not write %d runs of events: %s", len(batch), exc)

    def _roll_up(self, rows: list[tuple[Any, ...]]) -> None:
        """Add the rows to the hourly and daily rollups, counted here first: one upsert per key,
        in the order of the tables' keys (each B-tree page is then visited once a write, not once
        a row: the pairs seen, in random order, were most of a write's cost)."""
        by_kind: dict[tuple[int, str], int] = {}
        by_node: dict[tuple[int, str, int], int] = {}
        daily: dict[tuple[str, str, int], list[Any]] = {}  # (by, key, day): n, failures, successes, first, last
        seen: set[tuple[str, str, int, str, str]] = set()  # (by, key, day, 'n' or 'u', hostname or user)
        get, add = daily.get, seen.add

        def count(slot: tuple[str, str, int], failed: bool, succeeded: bool, when: float) -> None:
            entry = get(slot)
            if entry is None:
                daily[slot] = [1, int(failed), int(succeeded), when, when]
                return
            entry[0] += 1
            entry[1] += failed
            entry[2] += succeeded
            if when < entry[3]:
                entry[3] = when
            elif when > entry[4]:
                entry[4] = when

        for row in rows:
            hostname, outcome, when, kind, user, host = row[2], row[5], row[8], row[9], row[12], row[13]
            hour = int(when // HOUR)
            slot = (hour, kind)
            by_kind[slot] = by_kind.get(slot, 0) + 1
            node_slot = (hour, hostname, outcome)
            by_node[node_slot] = by_node.get(node_slot, 0) + 1
            day = int(when // DAY)
            failed, succeeded = outcome == FAILURE, outcome == SUCCESS
            count(("node", hostname, day), failed, succeeded, when)
            count(("kind", kind, day), failed, succeeded, when)
            add(("kind", kind, day, "n", hostname))
            if host is not None:
                count(("source", host, day), failed, succeeded, when)
                add(("source", host, day, "n", hostname))
            if user is not None:
                count(("user", user, day), failed, succeeded, when)
                add(("user", user, day, "n", hostname))
                add(("node", hostname, day, "u", user))
                add(("kind", kind, day, "u", user))
                if host is not None:
                    add(("source", host, day, "u", user))
        db = self.db
        db.executemany(_ADD_HOURLY_KIND, [(*slot, n) for slot, n in by_kind.items()])
        db.executemany(_ADD_HOURLY_NODE, [(*slot, n) for slot, n in by_node.items()])
        db.executemany(_ADD_DAILY, [(*slot, *entry) for slot, entry in sorted(daily.items())])
        new = seen - self._seen
        if len(self._seen) + len(new) > SEEN_CACHE:
            self._seen = set()
        self._seen |= new
        db.executemany(_ADD_SEEN, sorted(new))

    def _trim_memory(self, now: float) -> None:
        """In memory: events past their age leave (every AGE_CHECK_EVERY, TRIM_STEP at most), oldest first."""
        if now < self._next_age_check:
            return
        self._next_age_check = now + AGE_CHECK_EVERY
        if self._drop(TRIM_STEP, now - self.retention.days * DAY) == TRIM_STEP:
            self._next_age_check = 0.0  # more to do: at the next write too

    def _drop(self, most: int, before: float) -> int:
        """In memory: remove up to ``most`` of the first events held, stopping at one from ``before`` or
        later; how many left."""
        runs = self._runs
        if runs is None:
            return 0
        removed = 0
        while runs and removed < most:
            first, origin, node_id, events, contexts = runs[0]
            going = 0
            for event in itertools.islice(events, most - removed):
                if event["time"] >= before:
                    break
                going += 1
            removed += going
            if going == len(events):
                runs.popleft()
            else:
                if going:
                    rest = contexts[going:] if contexts is not None else None
                    runs[0] = (first + going, origin, node_id, events[going:], rest)
                break
        self.count -= removed
        return removed

    def _trim(self, now: float) -> None:
        """Remove events past their age (every AGE_CHECK_EVERY) and over the count, TRIM_STEP at most,
        oldest first by time; rollups of hours and days before the oldest event left go with them."""
        db = self.db
        removed = 0
        order = "time"  # (the rollups need the oldest by time gone first)
        if now >= self._next_age_check:
            self._next_age_check = now + AGE_CHECK_EVERY
            cursor = db.execute(
                f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE time < ? ORDER BY {order} LIMIT ?)",
                (now - self.retention.days * DAY, TRIM_STEP),
            )
            removed += cursor.rowcount
            if cursor.rowcount == TRIM_STEP:
                self._next_age_check = 0.0  # more to do: at the next write too
        excess = self.count - removed - self.retention.max_events
        if excess > 0:
            cursor = db.execute(
                f"DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY {order} LIMIT ?)",
                (min(excess, TRIM_STEP),),
            )
            removed += cursor.rowcount
        if removed:
            self.count -= removed
            oldest = db.execute("SELECT min(time) FROM events").fetchone()[0]
            if oldest is None:
                return
            # Rollups are read only for units after the oldest event's own: those before go, once a unit.
            hour, day = math.floor(oldest / HOUR), math.floor(oldest / DAY)
            if hour > self._pruned_hour:
                self._pruned_hour = hour
                db.execute("DELETE FROM hourly_kind WHERE hour < ?", (hour,))
                db.execute("DELETE FROM hourly_node WHERE hour < ?", (hour,))
            if day > self._pruned_day:  # by key first: a look at every row, once a day
                self._pruned_day = day
                db.execute("DELETE FROM daily WHERE day < ?", (day,))
                db.execute("DELETE FROM daily_seen WHERE day < ?", (day,))

    # --- queries -----------------------------------------------------------------

    async def events(
        self, query: m.EventFilter, limit: int, latest: Callable[[], int]
    ) -> tuple[int, list[m.StoredEvent], bool]:
        """The latest ``limit`` events that pass ``query``, in ascending order, and whether older ones
        pass too; none after ``latest()``, the hub's sequence once the history is ours (returned first)."""
        if self._runs is not None:  # read in a worker thread from a copy of the list of runs held now
            last_seq, runs = latest(), list(self._runs)
            events, more = await anyio.to_thread.run_sync(self._scan_events, reversed(runs), query, limit, last_seq)
            return (last_seq, *_within_budget(events, more))
        async with self._lock:
            last_seq = latest()
            events, more = await anyio.to_thread.run_sync(self._events_now, self._take(), query, limit, last_seq)
            return (last_seq, *_within_budget(events, more))

    def _events_now(
        self, batch: list[Run], query: m.EventFilter, limit: int, last_seq: int
    ) -> tuple[list[m.StoredEvent], bool]:
        self._write(batch)
        return self.select_events(query, limit, last_seq)

    def select_events(self, query: m.EventFilter, limit: int, last_seq: int) -> tuple[list[m.StoredEvent], bool]:
        """``events`` without the flush, for a caller that holds the history (tests, benches)."""
        if self._runs is not None:
            return self._scan_events(reversed(self._runs), query, limit, last_seq)
        if not 1 <= limit <= MAX_LIMIT:
            raise BadQuery(f"limit: must be 1 to {MAX_LIMIT}, got {limit}")
        where, params = _where(query, last_seq)
        rows = self.db.execute(f"{_SELECT} WHERE {where} ORDER BY seq DESC LIMIT ?", (*params, limit + 1)).fetchall()
        more = len(rows) > limit
        return [_stored(row) for row in reversed(rows[:limit])], more

    def _scan_events(
        self, newest_first: Iterable[Run], query: m.EventFilter, limit: int, last_seq: int
    ) -> tuple[list[m.StoredEvent], bool]:
        """``select_events`` over runs held in memory, newest first."""
        if not 1 <= limit <= MAX_LIMIT:
            raise BadQuery(f"limit: must be 1 to {MAX_LIMIT}, got {limit}")
        test = _matcher(query)
        found: list[tuple[int, EventOrigin, dict[str, Any], m.EventContext | None]] = []
        for start, origin, events, contexts in _runs_of(newest_first, query, last_seq):
            for index in range(len(events) - 1, -1, -1):
                event = events[index]
                if test is None or test(event):
                    found.append((start + index, origin, event, contexts[index] if contexts is not None else None))
            if len(found) > limit:
                break
        events_found = [
            m.StoredEvent(seq, origin.serial, origin.hostname, origin.address, m.AuthEvent(**event), context)
            for seq, origin, event, context in reversed(found[:limit])
        ]
        return events_found, len(found) > limit

    async def stats(self, request: m.QueryStats, latest: Callable[[], int], now: float) -> m.EventStats:
        """The counts a QueryStats asks for, up to the sequence ``latest()`` gives once the history is ours;
        ``now`` ends an open time range."""
        if self._runs is not None:
            last_seq, runs = latest(), list(self._runs)
            return await anyio.to_thread.run_sync(self._scan_stats, reversed(runs), request, last_seq, now)
        async with self._lock:
            last_seq = latest()
            return await anyio.to_thread.run_sync(self._stats_now, self._take(), request, last_seq, now)

    def _stats_now(self, batch: list[Run], request: m.QueryStats, last_seq: int, now: float) -> m.EventStats:
        self._write(batch)
        return self.select_stats(request, last_seq, now)

    def select_stats(self, request: m.QueryStats, last_seq: int, now: float, rollups: bool = True) -> m.EventStats:
        """``stats`` without the flush. ``rollups=False`` counts from the events alone (the plain way,
        which tests hold the rollups against; in memory there are none)."""
        if self._runs is not None:
            return self._scan_stats(reversed(self._runs), request, last_seq, now)
        rollups = rollups and self.rolled_up
        if request.by == m.BY_TIME:
            return self._series(request, last_seq, now, rollups)
        column = _KEY_COLUMNS.get(request.by)
        if column is None:
            raise BadQuery(f"by: must be {m.BY_TIME} or one of {', '.join(m.STATS_KEYS)}, got {request.by!r}")
        if not 1 <= request.limit <= MAX_STATS_ROWS:
            raise BadQuery(f"limit: must be 1 to {MAX_STATS_ROWS}, got {request.limit}")
        query = request.filter
        where, params = _where(query, last_seq)
        if rollups and _time_only(query):
            rows = self._ranking(request.by, column, query, where, params, request.limit)
        else:
            rows = self.db.execute(
                f"SELECT {column}, count(*), sum(outcome = {FAILURE}), count(DISTINCT hostname),"
                f" count(DISTINCT user), min(time), max(time) FROM events WHERE {where} AND {column} IS NOT NULL"
                f" GROUP BY {column} ORDER BY 2 DESC, 1 LIMIT ?",
                (*params, request.limit),
            ).fetchall()
        return m.EventStats(request.request_id, request.by, request.bucket, rows=[m.StatsRow(*row) for row in rows])

    def _oldest(self, last_seq: int, since_seq: int | None = None) -> float | None:
        """The time of the oldest event held (after ``since_seq``, if given): rollups are exact only for
        whole units after its own."""
        oldest: float | None = self.db.execute(
            "SELECT min(time) FROM events WHERE seq <= ? AND seq > ?", (last_seq, since_seq or -1)
        ).fetchone()[0]
        return oldest

    def _ranking(
        self, by: str, column: str, query: m.EventFilter, where: str, params: list[Any], limit: int
    ) -> list[tuple[Any, ...]]:
        """A ranking from the daily rollups for the whole days inside the range, the events for the rest."""
        oldest = self._oldest(params[0])
        if oldest is None:
            return []
        low = query.since_time if query.since_time is not None else -math.inf
        high = query.until_time if query.until_time is not None else math.inf
        first_day = max(math.ceil(low / DAY) if low > -math.inf else 0, math.floor(oldest / DAY) + 1)
        last_day = math.floor(high / DAY) - 1 if high < math.inf else 2**40  # whole days end by ``high``
        totals: dict[str, list[Any]] = {}
        # The parts of the range the rollups do not cover, each a range of the time index.
        edges: list[tuple[str, list[Any]]] = [("", [])]
        if first_day <= last_day:
            edges = [(" AND time < ?", [first_day * DAY])]
            if high < math.inf:
                edges.append((" AND time >= ?", [(last_day + 1) * DAY]))
            for key, count, failures, earliest, latest in self.db.execute(
                "SELECT key, sum(n), sum(failures), min(first), max(last) FROM daily"
                " WHERE by = ? AND day BETWEEN ? AND ? GROUP BY key",
                (by, first_day, last_day),
            ):
                totals[key] = [count, failures, earliest, latest]
        for key, count, failures, earliest, latest in (
            row
            for edge, edge_params in edges
            for row in self.db.execute(
                f"SELECT {column}, count(*), sum(outcome = {FAILURE}), min(time), max(time) FROM events"
                f" WHERE {where}{edge} AND {column} IS NOT NULL GROUP BY {column}",
                (*params, *edge_params),
            )
        ):
            total = totals.get(key)
            if total is None:
                totals[key] = [count, failures, earliest, latest]
            else:
                total[0] += count
                total[1] += failures
                total[2] = min(total[2], earliest)
                total[3] = max(total[3], latest)
        top = sorted(totals, key=lambda key: (-totals[key][0], key))[:limit]
        if not top:
            return []
        nodes: dict[str, set[str]] = {key: set() for key in top}
        users: dict[str, set[str]] = {key: set() for key in top}
        marks = ", ".join("?" * len(top))
        if first_day <= last_day:
            for key, what, value in self.db.execute(
                f"SELECT key, what, value FROM daily_seen WHERE by = ? AND day BETWEEN ? AND ? AND key IN ({marks})",
                (by, first_day, last_day, *top),
            ):
                (nodes if what == "n" else users)[key].add(value)
        for key, hostname, user in (
            row
            for edge, edge_params in edges
            for row in self.db.execute(
                f"SELECT {column}, hostname, user FROM events WHERE {where}{edge} AND {column} IN ({marks})",
                (*params, *edge_params, *top),
            )
        ):
            nodes[key].add(hostname)
            if user is not None:
                users[key].add(user)
        rows = []
        for key in top:
            count, failures, earliest, latest = totals[key]
            node_count = 1 if by == "node" else len(nodes[key])
            user_count = 1 if by == "user" else len(users[key])
            rows.append((key, count, failures, node_count, user_count, earliest, latest))
        return rows

    def _series(self, request: m.QueryStats, last_seq: int, now: float, rollups: bool) -> m.EventStats:
        """Counts per bucket (whole buckets: the first holds ``since``, the last ``until`` or now)."""
        bucket, group = _series_request(request)
        query = request.filter
        # whole buckets: the time bounds become the buckets' own (below)
        where, params = _where(dataclasses.replace(query, since_time=None, until_time=None), last_seq)
        oldest = self._oldest(last_seq, query.since_seq)  # a chart from a sequence starts at its first event
        span = _buckets(query, oldest, bucket, now)
        if span is None:
            return m.EventStats(request.request_id, m.BY_TIME, bucket)
        first, last = span
        size = last - first + 1
        low, high = first * bucket, (last + 1) * bucket  # whole buckets
        key = _KEY_COLUMNS[group] if group else "'all'"
        counts: list[tuple[str, float, int, int]] = []  # key, a time in the bucket, outcome, count
        raw_high = high
        if rollups and oldest is not None and _rollup_filter(query):
            rolled = self._rolled_up(query, group, bucket, oldest, low, high)
            if rolled is not None:
                raw_high, counts = rolled
        counts += self.db.execute(
            f"SELECT {key}, min(time), outcome, count(*) FROM events WHERE {where} AND time >= ? AND time < ?"
            " GROUP BY 1, CAST(time / ? AS INTEGER), 3",
            (*params, low, raw_high, bucket),
        ).fetchall()
        columns: dict[str, list[list[int]]] = {}
        for name, when, outcome, count in counts:
            lists = columns.get(name)
            if lists is None:
                lists = columns[name] = [[0] * size for _ in range(3)]
            lists[outcome][math.floor(when / bucket) - first] += count
        if not group and not columns:
            columns["all"] = [[0] * size for _ in range(3)]
        ranked = sorted(columns.items(), key=lambda item: (-sum(map(sum, item[1])), item[0]))
        series = [
            m.StatsSeries(name, first * bucket, lists[FAILURE], lists[SUCCESS], lists[OTHER]) for name, lists in ranked
        ]
        return m.EventStats(request.request_id, m.BY_TIME, bucket, series=series)

    def _rolled_up(
        self, query: m.EventFilter, group: str, bucket: float, oldest: float, low: float, high: float
    ) -> tuple[float, list[tuple[str, float, int, int]]] | None:
        """Counts of whole hours or days from the rollups, for the units after the oldest event's own:
        where the events take over, and the counts (key, a time in the bucket, outcome, count).
        None when no rollup answers this query."""
        unit = DAY if bucket % DAY == 0 else HOUR if bucket % HOUR == 0 else None
        by_node = group == "node" or bool(query.nodes)
        by_kind = group == "kind" or bool(query.kinds)
        if unit is None or (by_node and by_kind):
            return None
        start = max(math.floor(oldest / unit) + 1, math.ceil(low / unit))
        end = math.floor(high / unit)  # exclusive; ``high`` ends a whole bucket
        if start >= end:
            return None
        keys = query.nodes if by_node else query.kinds
        narrow = f" AND {{}} IN ({', '.join('?' * len(keys))})" if keys else ""
        name = "{}" if group else "'all'"
        counted: list[tuple[str, float, int, int]] = []
        if unit == HOUR and by_node:
            sql = (f"SELECT {name.format('hostname')}, hour * {HOUR}, outcome, sum(n) FROM hourly_node"
                   f" WHERE hour >= ? AND hour < ?{narrow.format('hostname')} GROUP BY 1, 2, 3")  # fmt: skip
            counted = self.db.execute(sql, (start, end, *keys)).fetchall()
        elif unit == HOUR:
            sql = (f"SELECT {name.format('kind')}, hour * {HOUR}, kind, sum(n) FROM hourly_kind"
                   f" WHERE hour >= ? AND hour < ?{narrow.format('kind')} GROUP BY 1, 2, 3")  # fmt: skip
            for key, when, kind, count in self.db.execute(sql, (start, end, *keys)):
                counted.append((key, when, _OUTCOME.get(kind, OTHER), count))
        else:
            by = "node" if by_node else "kind"
            sql = (f"SELECT {name.format('key')}, day * {DAY}, sum(n), sum(failures), sum(successes) FROM daily"
                   f" WHERE by = ? AND day >= ? AND day < ?{narrow.format('key')} GROUP BY 1, 2")  # fmt: skip
            for key, when, count, failures, successes in self.db.execute(sql, (by, start, end, *keys)):
                counted += [(key, when, FAILURE, failures), (key, when, SUCCESS, successes)]
                counted.append((key, when, OTHER, count - failures - successes))
        if query.failures:
            counted = [row for row in counted if row[2] == FAILURE]
        return start * unit, [row for row in counted if row[3]]

    def _scan_stats(
        self, newest_first: Iterable[Run], request: m.QueryStats, last_seq: int, now: float
    ) -> m.EventStats:
        """``select_stats`` over runs held in memory, newest first: the same answers, counted here."""
        query = request.filter
        if request.by != m.BY_TIME:
            if request.by not in _KEY_COLUMNS:
                raise BadQuery(f"by: must be {m.BY_TIME} or one of {', '.join(m.STATS_KEYS)}, got {request.by!r}")
            if not 1 <= request.limit <= MAX_STATS_ROWS:
                raise BadQuery(f"limit: must be 1 to {MAX_STATS_ROWS}, got {request.limit}")
            rows = _ranking_of(_runs_of(newest_first, query, last_seq), _matcher(query), request.by, request.limit)
            return m.EventStats(request.request_id, request.by, request.bucket, rows=rows)
        bucket, group = _series_request(request)
        runs = newest_first if isinstance(newest_first, list) else list(newest_first)
        after = m.EventFilter(since_seq=query.since_seq)  # a chart from a sequence starts at its first event
        times = [event["time"] for _start, _origin, events, _ in _runs_of(runs, after, last_seq) for event in events]
        oldest = min(times, default=None)
        del times
        span = _buckets(query, oldest, bucket, now)
        if span is None:
            return m.EventStats(request.request_id, m.BY_TIME, bucket)
        first, last = span
        size = last - first + 1
        # whole buckets: the time bounds are the buckets' own
        test = _matcher(dataclasses.replace(query, since_time=None, until_time=None))
        low, high = first * bucket, (last + 1) * bucket
        columns: dict[str, list[list[int]]] = {}
        outcome_of = _OUTCOME.get
        floor = math.floor
        for _start, origin, events, _contexts in _runs_of(runs, query, last_seq):
            for event in events:
                when = event["time"]
                if not low <= when < high or (test is not None and not test(event)):
                    continue
                name = origin.hostname if group == "node" else event["kind"] if group == "kind" else "all"
                lists = columns.get(name)
                if lists is None:
                    lists = columns[name] = [[0] * size for _ in range(3)]
                lists[outcome_of(event["kind"], OTHER)][floor(when / bucket) - first] += 1
        if not group and not columns:
            columns["all"] = [[0] * size for _ in range(3)]
        ranked = sorted(columns.items(), key=lambda item: (-sum(map(sum, item[1])), item[0]))
        series = [
            m.StatsSeries(name, first * bucket, lists[FAILURE], lists[SUCCESS], lists[OTHER]) for name, lists in ranked
        ]
        return m.EventStats(request.request_id, m.BY_TIME, bucket, series=series)

    def close(self) -> None:
        """Write what is left and close the database."""
        if self._runs is not None:
            return
        self._write(self._take())
        self.db.close()
