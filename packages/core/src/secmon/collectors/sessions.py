"""Logged-in sessions, read straight from the utmp database (no `who` per poll).

utmp is an array of fixed 384-byte records (glibc, Linux, all 64- and 32-bit
ABIs since the 2.x days use the same layout for utmp files). Only
USER_PROCESS records are sessions.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

from ..config import env_path
from ..protocol.messages import Session

UTMP_PATHS = (Path("/run/utmp"), Path("/var/run/utmp"))
USER_PROCESS = 7
# type, pid, line, id, user, host, exit (2 shorts), session, tv_sec, tv_usec, addr_v6, reserved
RECORD = struct.Struct("<h2xi32s4s32s256s2hi2i16s20x")
assert RECORD.size == 384


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def parse_utmp(data: bytes) -> list[Session]:
    """Sessions in a utmp file's bytes, in file order; a torn last record is ignored."""
    sessions = []
    for offset in range(0, len(data) - RECORD.size + 1, RECORD.size):
        kind, _pid, line, _id, user, host, _t, _e, _sid, sec, usec, _addr = RECORD.unpack_from(data, offset)
        if kind != USER_PROCESS or not user.strip(b"\0"):
            continue
        host_text = _text(host)
        sessions.append(Session(_text(user), _text(line), host_text or None, sec + usec / 1e6))
    return sessions


def utmp_path() -> Path:
    override = env_path(os.environ, "SECMON_UTMP")
    if override is not None:
        return override
    return next((p for p in UTMP_PATHS if p.exists()), UTMP_PATHS[0])


def read_sessions(path: Path | None = None) -> list[Session] | str:
    """Current sessions, or an error message for the attribute."""
    path = path or utmp_path()
    try:
        data = path.read_bytes()
    except OSError as exc:  # missing too: then logins are recorded nowhere we look, which is not "nobody"
        return f"cannot read {path}: {exc.strerror}"
    return parse_utmp(data)


def make_record(
    user: str, tty: str, host: str = "", login: float = 0.0, kind: int = USER_PROCESS, pid: int = 1
) -> bytes:
    """One utmp record's bytes, as login programs write them (tests and tools use this)."""
    return RECORD.pack(
        kind,
        pid,
        tty.encode(),
        tty[-4:].encode(),
        user.encode(),
        host.encode(),
        0,
        0,
        0,
        int(login),
        int(login % 1 * 1e6),
        b"",
    )
