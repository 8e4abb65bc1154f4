"""A stand-in for systemd's `loginctl`, printing what systemd 252 or 257 print.

A test describes sessions as files in a directory, one per session, named by
its id and holding its D-Bus properties as JSON; ``write_session`` puts a new
file in place with a rename, as logind does with its own session files, so a
node watching the directory wakes as it would for logind. ``install`` writes
an executable ``loginctl`` serving them:

- ``list-sessions``: the text table (252: SESSION UID USER SEAT TTY; 257 adds
  LEADER CLASS IDLE SINCE and prints "-" for an empty cell), with or without
  the legend.
- ``show-session ID… [-p NAME]…``: ``Name=value`` lines in the order of
  logind's D-Bus interface, a blank line between sessions, booleans as
  yes/no, ``Timestamp`` in the local zone (``Sun 2026-11-29 19:25:24 UTC``),
  and loginctl's complaint and exit status 1 for an unknown id.
- with ``down``: the error loginctl prints when the system bus is not there.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # systemd prints English ones, whatever the locale


def session_properties(
    session_id: str,
    user: str,
    *,
    uid: int = 1000,
    tty: str = "pts/0",
    remote_host: str = "",
    seat: str = "",
    session_class: str = "user",
    state: str = "active",
    service: str = "sshd",
    login: float = 1764443124.0,
    leader: int = 4242,
) -> dict:
    """A session's org.freedesktop.login1.Session properties, in the interface's order (257)."""
    return {
        "Id": session_id,
        "User": uid,
        "Name": user,
        "Timestamp": int(login * 1_000_000),
        "TimestampMonotonic": 86_000_000_000,
        "VTNr": 0,
        "Seat": seat,
        "TTY": tty,
        "Display": "",
        "Remote": bool(remote_host),
        "RemoteHost": remote_host,
        "RemoteUser": "",
        "Service": service,
        "Desktop": "",
        "Scope": f"session-{session_id}.scope",
        "Leader": leader,
        "Audit": 0,
        "Type": "tty",
        "Class": session_class,
        "Active": state == "active",
        "State": state,
        "IdleHint": False,
        "IdleSinceHint": 0,
        "IdleSinceHintMonotonic": 0,
        "CanIdle": True,
        "CanLock": True,
        "LockedHint": False,
    }


def write_session(directory: Path, props: dict) -> None:
    """Put a session's file in place the way logind does: a new file renamed over the old."""
    temporary = directory / f".#{props['Id']}.tmp"
    temporary.write_text(json.dumps(props))
    temporary.rename(directory / props["Id"])


def remove_session(directory: Path, session_id: str) -> None:
    (directory / session_id).unlink()


def install(bin_dir: Path, directory: Path, version: int = 257, down: bool = False) -> Path:
    """An executable `loginctl` in ``bin_dir`` serving the sessions in ``directory``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "loginctl"
    here = str(Path(__file__).parent)
    script.write_text(
        f"#!{sys.executable} -S\nimport sys\nsys.path.insert(0, {here!r})\nfrom fake_loginctl import main\n"
        f"sys.exit(main(sys.argv[1:], {str(directory)!r}, {version}, {down}))\n"
    )
    script.chmod(0o755)
    return script


def _sessions(directory: Path) -> dict[str, dict]:
    found = {}
    for path in directory.iterdir():
        if not path.name.startswith("."):
            found[path.name] = json.loads(path.read_text())
    return found


def _table(rows: list[list[str]], right: int, legend: bool) -> str:
    """systemd's text table: one space between columns, the first ``right`` right-aligned."""
    shown = rows if legend else rows[1:]
    widths = [max(len(row[c]) for row in shown) for c in range(len(rows[0]))] if shown else []
    lines = []
    for row in shown:
        pairs = enumerate(zip(row, widths, strict=True))
        cells = [cell.rjust(width) if c < right else cell.ljust(width) for c, (cell, width) in pairs]
        lines.append(" ".join(cells).rstrip())
    return "".join(line + "\n" for line in lines)


def _version_key(session_id: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", session_id))


def list_sessions(sessions: dict[str, dict], version: int, legend: bool) -> str:
    if version >= 256:
        rows = [["SESSION", "UID", "USER", "SEAT", "LEADER", "CLASS", "TTY", "IDLE", "SINCE"]]
        for s in sorted(sessions.values(), key=lambda s: _version_key(s["Id"])):
            idle = "yes" if s["IdleHint"] else "no"
            rows.append([s["Id"], str(s["User"]), s["Name"], s["Seat"] or "-", str(s["Leader"]), s["Class"],
                         s["TTY"] or "-", idle, "-"])  # fmt: skip
    else:
        rows = [["SESSION", "UID", "USER", "SEAT", "TTY"]]
        for s in sorted(sessions.values(), key=lambda s: _version_key(s["Id"])):
            rows.append([s["Id"], str(s["User"]), s["Name"], s["Seat"], s["TTY"]])
    out = _table(rows, 2, legend) if len(rows) > 1 or legend else ""
    if legend:
        out += "No sessions.\n" if len(rows) == 1 else f"\n{len(rows) - 1} sessions listed.\n"
    return out


def format_timestamp(usec: int) -> str:
    """systemd's FORMAT_TIMESTAMP in the local zone (TZ), or "" for an unset one."""
    if usec == 0:
        return ""
    tm = time.localtime(usec / 1_000_000)
    return f"{WEEKDAYS[tm.tm_wday]} {time.strftime('%Y-%m-%d %H:%M:%S', tm)} {tm.tm_zone}"


def _value(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name.endswith("Timestamp"):
        return format_timestamp(int(value))
    return str(value)


def show_session(props: dict, wanted: list[str], version: int) -> str:
    lines = []
    for name, value in props.items():
        if version < 256 and name in ("CanIdle", "CanLock"):
            continue  # not in 252's interface
        if wanted and name not in wanted:
            continue
        text = _value(name, value)
        if text or wanted:  # -p shows a property even when empty
            lines.append(f"{name}={text}\n")
    return "".join(lines)


def main(argv: list[str], directory: str, version: int, down: bool) -> int:
    legend, wanted, words = True, [], []
    args = iter(argv)
    for arg in args:
        if arg == "--no-legend":
            legend = False
        elif arg == "--no-pager":
            pass
        elif arg in ("-p", "--property"):
            wanted.append(next(args))
        elif arg.startswith("--property="):
            wanted.append(arg.removeprefix("--property="))
        elif arg.startswith("-"):
            sys.stderr.write(f"loginctl: unrecognized option '{arg}'\n")
            return 1
        else:
            words.append(arg)
    if down:
        transport = "system scope bus via local transport" if version >= 256 else "bus"
        sys.stderr.write(f"Failed to connect to {transport}: No such file or directory\n")
        return 1
    sessions = _sessions(Path(directory))
    verb, ids = (words[0] if words else "list-sessions"), words[1:]
    if verb == "list-sessions":
        sys.stdout.write(list_sessions(sessions, version, legend))
        return 0
    if verb == "show-session":
        for index, session_id in enumerate(ids):
            if session_id not in sessions:
                sys.stdout.flush()
                reason = f"No session '{session_id}' known"
                if version >= 256:
                    sys.stderr.write(f"Failed to get path for session '{session_id}': {reason}\n")
                else:
                    sys.stderr.write(f"Failed to get session path: {reason}\n")
                return 1
            if index:
                sys.stdout.write("\n")
            sys.stdout.write(show_session(sessions[session_id], wanted, version))
        return 0
    sys.stderr.write(f"Unknown command verb '{verb}'.\n")
    return 1
