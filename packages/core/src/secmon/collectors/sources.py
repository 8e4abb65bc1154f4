"""Where the node's data comes from: polling loops and followed logs.

Each collector runs for the life of the node and reports through two
callbacks: an attribute value (or error text) and, for auth, each event's
fields. A source that fails is retried with backoff and its error becomes
the attribute's error; nothing here ever stops the node.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import Any, BinaryIO

import anyio

from ..lines import LineSplitter
from ..protocol import messages as m
from . import trust
from .authlog import MAX_LINE, AuthLogParser
from .inotify import FileWatch
from .logind import SessionsSource, choose_sessions_source
from .positions import FilePosition, JournalCursor, Position
from .wireguard import parse_dump

log = logging.getLogger("secmon.node")

LOG_FILES = (Path("/var/log/auth.log"), Path("/var/log/secure"))
JOURNAL_SOCKET = Path("/run/systemd/journal/socket")
# Entries claiming these names are read; trust.py then decides who really wrote each one.
JOURNAL_IDENTIFIERS = tuple(trust.PROGRAMS)
# Where journald keeps its files: persistent, then volatile. With none, `journalctl -f` waits silently.
JOURNAL_DIRECTORIES = (Path("/var/log/journal"), Path("/run/log/journal"))
JOURNAL_RECHECK = 5.0  # seconds between looks for journal files while there are none
READ_CHUNK = 64 * 1024
MAX_BACKOFF = 30.0
# With a watch, look anyway this often: a safety net for changes inotify cannot see (network filesystems).
RECHECK = 10.0
# Rotated files with these endings were compressed: a new file, never the one a position is in.
COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4")
# The position of a log file that did not exist yet: no file has inode 0.
ABSENT = FilePosition("", 0, 0, 0)
# Seconds a look for the journal's newest entry may take; after that the follower starts without it.
NEWEST_TIMEOUT = 10.0
# Seconds a journalctl started again after a failure must keep running (or deliver lines) before the
# auth attribute says ok: one that dies at once would otherwise flip it between ok and failing on
# every retry, and the hub would tell each flip.
JOURNAL_STEADY = 2.0

SetAttribute = Callable[[str, Any], None]
# Each batch comes with the source's position just after it (None where the source gave none).
OnLines = Callable[[list[str], Position | None], None]
OnEvents = Callable[[list[dict[str, Any]], Position | None], object]  # what it returns is not used


async def poll_sessions(report: SetAttribute, interval: float, setting: str = "auto") -> None:
    """Report sessions from logind or utmp (SECMON_SESSIONS_SOURCE) each time the source changes.

    The source is watched with inotify (else looked at each interval) and read only when
    its stamp moved; a failed read is tried again on the next change, or after RECHECK.
    """
    source: SessionsSource | None = None
    watch: FileWatch | None = None
    last_stamp: object | None = None
    failed = False
    try:
        while True:
            chosen = choose_sessions_source(setting)
            if chosen != source:
                log.info("reading sessions from %s", chosen)
                if watch is not None:
                    watch.close()
                source, watch, last_stamp = chosen, chosen.watch(), None
            stamp = source.stamp()
            if stamp is None or stamp != last_stamp:
                sessions = await source.read()
                report("sessions", sessions)
                failed = isinstance(sessions, str)
                last_stamp = None if failed else stamp
            await _idle(watch, RECHECK if failed else interval)
    finally:
        if watch is not None:
            watch.close()


async def _idle(watch: FileWatch | None, poll: float) -> None:
    """Until the watched file changes, or for one poll interval where nothing watches it."""
    if watch is None:
        await anyio.sleep(poll)
    else:
        await watch.changed(RECHECK)


async def read_wg_peers(wg: str = "wg") -> list[m.WgPeer] | str:
    """Peers from one `wg show all dump`, or the error text."""
    try:
        result = await anyio.run_process([wg, "show", "all", "dump"], check=False, stdin=DEVNULL)
    except FileNotFoundError:
        return "wg not found: install wireguard-tools"
    except OSError as exc:
        return f"cannot run wg: {exc.strerror}"
    if result.returncode != 0:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        return f"wg failed ({result.returncode}): {reason[0] if reason else 'no message'}"[:500]
    return parse_dump(result.stdout.decode(errors="replace"))


async def poll_wireguard(report: SetAttribute, interval: float) -> None:
    while True:
        report("wg_peers", await read_wg_peers())
        await anyio.sleep(interval)


@dataclass(frozen=True, slots=True)
class JournalSource:
    """The systemd journal: the machine's own, or the journal files of ``directory``."""

    directory: Path | None = None

    def __str__(self) -> str:
        return "the journal" if self.directory is None else f"the journal in {self.directory}"


def choose_auth_source(setting: str) -> JournalSource | Path:
    """The journal or the log file to follow, for AUTH_LOG's value (auto, journal, journal:DIR, a path)."""
    if setting == "journal":
        return JournalSource()
    if setting.startswith("journal:"):
        return JournalSource(Path(setting.removeprefix("journal:")))
    if setting != "auto":
        return Path(setting)
    if JOURNAL_SOCKET.exists() and shutil.which("journalctl"):
        return JournalSource()
    return next((p for p in LOG_FILES if p.exists()), LOG_FILES[0])


def _log_splitter() -> LineSplitter:
    """A splitter for auth-log text: a line longer than a log line can be is dropped, not held."""
    return LineSplitter(MAX_LINE, drop_long=True)


def _text(lines: list[bytes]) -> list[str]:
    return [line.decode(errors="replace") for line in lines]


async def follow_file(
    path: Path, on_lines: OnLines, report: SetAttribute, poll: float, resume: FilePosition | None = None
) -> None:
    """Follow ``path`` like `tail -F`: across rotation and truncation, waiting if absent.

    It starts at the end of the file, or at ``resume``: the rest of that file, found by
    device and inode under ``path`` or, rotated away, under a sibling's name, then the
    file now at ``path`` from its start. The whole lines of each read are handed over
    together, with the position after them. With inotify the follower sleeps until
    the file changes; otherwise it looks every ``poll`` seconds.
    """
    watch = FileWatch.open(path)
    try:
        await _follow_file(path, on_lines, report, poll, watch, resume)
    finally:
        if watch is not None:
            watch.close()


async def _follow_file(
    path: Path,
    on_lines: OnLines,
    report: SetAttribute,
    poll: float,
    watch: FileWatch | None,
    resume: FilePosition | None,
) -> None:
    handle = None
    identity: tuple[int, int] | None = None  # the (dev, ino) of the file handle reads
    first = resume is None
    splitter = _log_splitter()
    if resume is not None:
        handle = _reopen(path, resume)
        if handle is None and resume.ino != ABSENT.ino:
            log.warning("%s (read up to %d) is gone; reading %s from its start", _named(resume), resume.offset, path)
        elif handle is not None:
            info = os.fstat(handle.fileno())
            identity = (info.st_dev, info.st_ino)
            report("auth", m.AUTH_OK)
    while True:
        if handle is None:
            try:
                handle = open(path, "rb")  # noqa: SIM115 - held across iterations
            except FileNotFoundError:
                report("auth", f"waiting for {path} to appear")
                if first:
                    on_lines([], replace(ABSENT, path=str(path)))  # read it from its start, even after a restart
                first = False
                await _idle(watch, poll)
                continue
            except OSError as exc:
                report("auth", f"cannot read {path}: {exc.strerror}")
                await anyio.sleep(min(poll * 50, MAX_BACKOFF))
                continue
            info = os.fstat(handle.fileno())
            identity = (info.st_dev, info.st_ino)
            splitter = _log_splitter()
            if first:
                handle.seek(0, os.SEEK_END)  # a monitor reports what happens from now on
                first = False
                on_lines([], FilePosition(str(path), *identity, handle.tell()))  # ... and remembers where that was
            report("auth", m.AUTH_OK)
        data = handle.read(READ_CHUNK)
        if data:
            assert identity is not None  # set with handle
            if lines := splitter.feed(data):
                on_lines(_text(lines), FilePosition(str(path), *identity, handle.tell() - splitter.pending))
            continue
        now: os.stat_result | None  # what is at path now
        try:
            now = os.stat(path)
        except OSError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != identity:
            handle.close()  # rotated or removed: the old file is read to its end already
            handle = None
            continue
        if now.st_size < handle.tell():
            handle.seek(0)  # truncated in place
            splitter = _log_splitter()
            continue
        await _idle(watch, poll)


def _reopen(path: Path, position: FilePosition) -> BinaryIO | None:
    """The file ``position`` is in, open at its offset: at ``path``, or a sibling rotation renamed it to."""
    try:
        names = sorted(
            p.name
            for p in path.parent.iterdir()
            if p.name.startswith(path.name) and p != path and not p.name.endswith(COMPRESSED)
        )
    except OSError:
        names = []
    for candidate in [path, *(path.parent / name for name in names)]:
        try:
            info = os.stat(candidate)
            if (info.st_dev, info.st_ino) != (position.dev, position.ino):
                continue
            handle = open(candidate, "rb")  # noqa: SIM115 - the caller keeps it
        except OSError:
            continue
        info = os.fstat(handle.fileno())
        if (info.st_dev, info.st_ino) != (position.dev, position.ino):  # replaced between stat and open
            handle.close()
            continue
        if candidate != path:
            log.info("%s was rotated to %s; reading its rest first", path, candidate)
        handle.seek(position.offset if position.offset <= info.st_size else 0)  # shorter: truncated, read it all
        return handle
    return None


def _named(position: FilePosition) -> str:
    return f"the file once at {position.path} (device {position.dev}, inode {position.ino})"


def journal_files_exist(directories: tuple[Path, ...]) -> bool:
    """Whether journald has written any journal file (in a directory, or one per machine below it)."""
    return any(next(d.glob("*.journal"), None) or next(d.glob("*/*.journal"), None) for d in directories)


async def follow_journal(
    on_lines: OnLines,
    report: SetAttribute,
    source: JournalSource | None = None,
    recheck: float = JOURNAL_RECHECK,
    resume: JournalCursor | None = None,
) -> None:
    """One long-lived `journalctl -f -o json`, restarted with backoff after the last cursor.

    It starts after ``resume``, or else after the newest entry there is now. The whole
    lines of each read are handed over together, with the cursor of the last. While
    there is no journal file to follow, the attribute says so instead of a silent
    `journalctl` looking fine.
    """
    source = source or JournalSource()
    directory = ["--directory", str(source.directory)] if source.directory else []
    directories = (source.directory,) if source.directory else JOURNAL_DIRECTORIES
    where = None if source.directory is None else str(source.directory)
    matches = [f"SYSLOG_IDENTIFIER={name}" for name in JOURNAL_IDENTIFIERS]
    cursor = resume.cursor if resume is not None else None
    delay = 0.5
    failed = False  # the last journalctl ended in failure: the next says ok only once it holds up

    def working() -> None:
        nonlocal failed
        failed = False
        report("auth", m.AUTH_OK)

    async def working_after(seconds: float) -> None:
        await anyio.sleep(seconds)
        working()

    while True:
        if not journal_files_exist(directories):
            report("auth", f"waiting for the journal: no journal files in {' or '.join(map(str, directories))}")
            await anyio.sleep(recheck)
            continue
        if cursor is None:
            cursor = await _newest_cursor(directory, matches)
            if cursor is not None:
                on_lines([], JournalCursor(where, cursor))  # from now on, and remember where that was
        position = [f"--after-cursor={cursor}"] if cursor else ["-n", "0"]
        argv = ["journalctl", *directory, "-f", "-o", "json", *position, *matches]
        read = False
        try:
            async with await anyio.open_process(argv, stdin=DEVNULL, stdout=PIPE, stderr=PIPE) as process:
                splitter = _log_splitter()
                assert process.stdout is not None  # opened with stdout=PIPE
                async with anyio.create_task_group() as steady:
                    if failed:
                        steady.start_soon(working_after, JOURNAL_STEADY)
                    else:
                        working()
                    async for chunk in process.stdout:
                        delay = 0.5
                        if failed:
                            working()
                        if lines := _text(splitter.feed(chunk)):
                            read = True
                            cursor = next(filter(None, map(_cursor, reversed(lines))), cursor)
                            on_lines(lines, JournalCursor(where, cursor) if cursor else None)
                    steady.cancel_scope.cancel()
                errors = (await process.stderr.receive(4096)).decode(errors="replace").strip() if process.stderr else ""
                code = await process.wait()
            failed = True
            report("auth", f"journalctl exited with {code}: {errors[:300] or 'no message'}")
            if not read and cursor and "cursor" in errors:
                log.warning("journalctl cannot start after cursor %r (%s); following from now on", cursor[:200], errors)
                cursor = None
        except anyio.EndOfStream:
            failed = True
            report("auth", "journalctl exited")
        except OSError as exc:
            failed = True
            report("auth", f"cannot run journalctl: {exc.strerror}")
        await anyio.sleep(delay)
        delay = min(delay * 2, MAX_BACKOFF)


async def _newest_cursor(directory: list[str], matches: list[str]) -> str | None:
    """The cursor of the newest entry the follower would read; None if there is none, or no answer in time."""
    result = None
    with anyio.move_on_after(NEWEST_TIMEOUT):
        try:
            argv = ["journalctl", *directory, "-n", "1", "-o", "json", *matches]
            result = await anyio.run_process(argv, check=False, stdin=DEVNULL)
        except OSError:
            return None
    if result is None or result.returncode != 0:
        return None
    lines = result.stdout.decode(errors="replace").splitlines()
    return next(filter(None, map(_cursor, reversed(lines))), None)


def _cursor(line: str) -> str | None:
    try:
        value = json.loads(line).get("__CURSOR")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


async def follow_auth(
    setting: str, on_events: OnEvents, report: SetAttribute, poll: float, resume: Position | None = None
) -> None:
    """Follow the auth source AUTH_LOG names, turning known lines into events, those of a read together.

    Every batch is handed over with the source's position after it, even one without
    events, so that a node which keeps positions resumes from ``resume`` after a restart.
    """

    parser = AuthLogParser()  # remembers each sshd pid's host for the lines that name none

    def on_lines(lines: list[str], position: Position | None) -> None:
        on_events([fields for fields in map(parser.parse_line, lines) if fields is not None], position)

    source = choose_auth_source(setting)
    log.info("following auth events from %s", source)
    if isinstance(source, JournalSource):
        where = None if source.directory is None else str(source.directory)
        cursor = resume if isinstance(resume, JournalCursor) and resume.directory == where else None
        _say_if_ignored(resume, cursor, source)
        await follow_journal(on_lines, report, source, resume=cursor)
    else:
        position = resume if isinstance(resume, FilePosition) and resume.path == str(source) else None
        _say_if_ignored(resume, position, source)
        await follow_file(source, on_lines, report, poll, position)


def _say_if_ignored(saved: Position | None, used: Position | None, source: JournalSource | Path) -> None:
    if saved is not None and used is None:
        log.info("the saved auth position is not in %s (AUTH_LOG changed?); starting at its end", source)
    elif used is not None:
        log.info("resuming %s where this node left it", source)
