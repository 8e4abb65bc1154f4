"""Sessions from systemd-logind, and the choice between logind and utmp.

systemd 257 and later (Debian 13) no longer write utmp, so there `who` is
empty while people are logged in. logind knows every session opened through
pam_systemd, including ssh sessions without a terminal, which utmp never
recorded. We ask it through `loginctl`, its command-line client, so the node
needs no D-Bus library:

- ``loginctl list-sessions --no-legend`` for the session ids: the first column
  in every version (252 prints SESSION UID USER SEAT TTY, 256+ adds LEADER,
  CLASS, IDLE, SINCE). Its JSON is no help: 252 prints it with ``-o json``,
  256+ only with ``--json=`` (there ``-o`` is the journal's output mode), and
  it lacks the remote host and login time anyway.
- ``loginctl show-session ID… -p …`` for the properties, one ``Name=value`` a
  line and a blank line between sessions: the form loginctl documents for
  programs. ``Timestamp=`` is printed in the local zone, so loginctl runs
  with TZ=UTC.

Only user sessions that are online or active count: not greeters, lock
screens, cron's background sessions, or the per-user service manager's own
session (class ``manager``, 256+); a ``closing`` session is one whose user
has logged out. A node that cannot ask logind says so (an error naming the
source), never "no sessions".

The node runs loginctl only when logind's session directory changes: logind
rewrites a session's file (a new file renamed into place) on every state
change, so the directory's (name, inode) pairs change with every login and
logout, and an inotify watch on it wakes the node. The files themselves are
logind's private state ("Do not parse", they say): watched, never read.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from subprocess import DEVNULL

import anyio

from ..config import env_str
from ..protocol.messages import Session
from .inotify import FILE_EVENTS, IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO, FileWatch
from .sessions import read_sessions, utmp_path

log = logging.getLogger("secmon.node")

# logind's own layout (systemd's logind_running() and sd_booted() test the first two).
BOOTED = Path("/run/systemd/system")
SEATS = Path("/run/systemd/seats")
SESSIONS_DIR = Path("/run/systemd/sessions")
PROPERTIES = ("Id", "Name", "Timestamp", "TimestampMonotonic", "Seat", "TTY", "RemoteHost", "Class", "State")
USER_CLASSES = ("user", "user-early", "user-incomplete")  # 256+ split "user" in three
LIVE_STATES = ("online", "active")  # not "opening" (not logged in yet) nor "closing" (logged out)
# logind refuses sessions beyond SessionsMax= (8192 by default): the ids we pass on stay within it.
MAX_SESSIONS = 8192
# A D-Bus call answers in milliseconds; one that hangs is reported, not waited for.
LOGINCTL_TIMEOUT = 10.0
MAX_ERROR = 300  # characters of loginctl's complaint kept in the attribute's error
ATTEMPTS = 3  # a session may end between listing and showing it; then list again
SESSION_ID = re.compile(r"[A-Za-z0-9]+")  # logind's session ids are alphanumeric
STAMP = re.compile(r"\w{3} (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) UTC")
USEC = 1_000_000


def parse_session_ids(text: str) -> list[str]:
    """Session ids from `loginctl list-sessions --no-legend`: each line's first column (the second is the UID)."""
    ids = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and SESSION_ID.fullmatch(fields[0]) and fields[1].isdigit():  # then the UID
            ids.append(fields[0])
    return ids


def parse_properties(text: str) -> list[dict[str, str]]:
    """The blocks of `loginctl show-session ID… -p Id -p …`: one dict per session, started by its Id= line."""
    blocks: list[dict[str, str]] = []
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if not sep:
            continue
        if name == "Id" or not blocks:
            blocks.append({})
        blocks[-1][name] = value
    return blocks


def parse_timestamp(value: str) -> float | None:
    """Seconds since the epoch from loginctl's ``Sun 2026-11-29 19:25:24 UTC`` (printed with TZ=UTC)."""
    match = STAMP.fullmatch(value.strip())
    if match is None:
        return None
    return datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def login_time(props: Mapping[str, str], wall: float, monotonic: float) -> float:
    """When the session began: Timestamp=, else TimestampMonotonic= against the two clocks now."""
    stamp = parse_timestamp(props.get("Timestamp", ""))
    if stamp is not None:
        return stamp
    try:
        since_boot = int(props.get("TimestampMonotonic", "")) / USEC
    except ValueError:
        return 0.0
    return wall - (monotonic - since_boot) if since_boot else 0.0


def to_session(props: Mapping[str, str], wall: float, monotonic: float) -> Session | None:
    """A user's live session as a Session; None for other classes, other states, or no user."""
    if props.get("Class") not in USER_CLASSES or props.get("State") not in LIVE_STATES:
        return None
    user = props.get("Name", "")
    if not user:
        return None
    tty = props.get("TTY") or props.get("Seat") or "-"
    host = props.get("RemoteHost") or None
    return Session(user, tty, host, login_time(props, wall, monotonic))


def parse_sessions(text: str, wall: float, monotonic: float) -> list[Session]:
    """The live user sessions in `loginctl show-session` output, in its order (the clocks are now's)."""
    found = (to_session(props, wall, monotonic) for props in parse_properties(text))
    return [session for session in found if session is not None]


class LoginctlFailed(Exception):
    """Raised when loginctl cannot be run or exits non-zero; ``str()`` says why, in one line."""


def _complaint(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    return "; ".join(lines)[:MAX_ERROR] or "no message"


async def _loginctl(loginctl: str, *args: str) -> str:
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C", "SYSTEMD_COLORS": "0"}
    argv = [loginctl, "--no-pager", *args]
    try:
        with anyio.fail_after(LOGINCTL_TIMEOUT):
            result = await anyio.run_process(argv, check=False, stdin=DEVNULL, env=env)
    except TimeoutError:
        raise LoginctlFailed(f"loginctl {args[0]} did not answer within {LOGINCTL_TIMEOUT:g} s") from None
    except FileNotFoundError:
        raise LoginctlFailed("loginctl not found") from None
    except OSError as exc:
        raise LoginctlFailed(f"cannot run loginctl: {exc.strerror}") from None
    if result.returncode != 0:
        raise LoginctlFailed(f"loginctl {args[0]} exited with {result.returncode}: {_complaint(result.stderr)}")
    return result.stdout.decode(errors="replace")


async def read_logind_sessions(loginctl: str = "loginctl") -> list[Session] | str:
    """Live user sessions from logind, or the attribute's error text naming the source."""
    properties = [f"--property={name}" for name in PROPERTIES]
    try:
        for _ in range(ATTEMPTS):
            ids = parse_session_ids(await _loginctl(loginctl, "list-sessions", "--no-legend"))
            if len(ids) > MAX_SESSIONS:
                log.warning("logind lists %d sessions; reporting the first %d", len(ids), MAX_SESSIONS)
                ids = ids[:MAX_SESSIONS]
            if not ids:
                return []
            try:
                text = await _loginctl(loginctl, "show-session", *properties, *ids)
            except LoginctlFailed as exc:
                problem = exc  # most likely a session that ended after the listing: list again
                continue
            return parse_sessions(text, time.time(), time.monotonic())
        raise problem
    except LoginctlFailed as exc:
        return f"cannot see sessions from logind: {exc}"


def logind_running(booted: Path = BOOTED, seats: Path = SEATS) -> bool:
    """Booted by systemd and logind up, as sd_booted() and logind_running() decide."""
    return booted.is_dir() and seats.is_dir()


@dataclass(frozen=True, slots=True)
class UtmpSource:
    """The utmp file: ``who``'s source, no longer written by systemd 257+."""

    path: Path

    def __str__(self) -> str:
        return f"utmp {self.path}"

    def stamp(self) -> object | None:
        """Changes when the file does (None when it cannot be looked at: read it anyway)."""
        try:
            info = self.path.stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size)

    def watch(self) -> FileWatch | None:
        return FileWatch.open(self.path)

    async def read(self) -> list[Session] | str:
        sessions = read_sessions(self.path)
        return f"cannot see sessions from utmp: {sessions}" if isinstance(sessions, str) else sessions


class SessionsDirectoryWatch(FileWatch):
    """A watch on logind's session directory that also wakes when a session's file appears or goes."""

    def _watch_file(self) -> None:
        entries = IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO
        self._libc.inotify_add_watch(self._fd, self._path, FILE_EVENTS | entries)


@dataclass(frozen=True, slots=True)
class LogindSource:
    """systemd-logind, asked through loginctl; ``directory`` is where it keeps a file per session."""

    directory: Path = SESSIONS_DIR
    loginctl: str = "loginctl"

    def __str__(self) -> str:
        return "logind (loginctl)"

    def stamp(self) -> object | None:
        """The (name, inode) of every entry: logind renames a new file into place on each change."""
        try:
            with os.scandir(self.directory) as entries:
                return frozenset((entry.name, entry.inode()) for entry in entries)
        except OSError:
            return None

    def watch(self) -> FileWatch | None:
        return SessionsDirectoryWatch.open(self.directory)

    async def read(self) -> list[Session] | str:
        return await read_logind_sessions(self.loginctl)


SessionsSource = UtmpSource | LogindSource


def choose_sessions_source(
    setting: str,
    env: Mapping[str, str] | None = None,
    running: Callable[[], bool] = logind_running,
    which: Callable[[str], str | None] = shutil.which,
) -> SessionsSource:
    """Where sessions come from for SECMON_SESSIONS_SOURCE's value (auto, logind, utmp).

    auto: utmp when SECMON_UTMP names a file (the operator chose it), else logind when
    it runs and loginctl is installed, else utmp.
    """
    env = os.environ if env is None else env
    logind = LogindSource(Path(env_str(env, "SECMON_LOGIND_SESSIONS", str(SESSIONS_DIR))))
    if setting == "logind":
        return logind
    if setting == "auto" and not env_str(env, "SECMON_UTMP", "") and running() and which("loginctl"):
        return logind
    return UtmpSource(utmp_path())
