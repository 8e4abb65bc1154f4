"""Pure parsers for auth-log lines: syslog text and journal JSON in, event fields out.

``parse_line`` takes one line of either form (decided per line) and returns
the fields of an AuthEvent without its sequence number, or None for a line of
no known shape. Nothing here raises on odd input: a line an attacker shaped
(a user name with spaces, ``from`` or markup in it) is matched from the right,
where sshd puts the parts the attacker does not control.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

from . import trust

# Kinds of auth events. Failures are what an operator wants highlighted and folded.
SSH_ACCEPTED = "ssh_accepted"
SSH_FAILED_PASSWORD = "ssh_failed_password"
SSH_FAILED_PUBLICKEY = "ssh_failed_publickey"
SSH_FAILED_KBDINT = "ssh_failed_keyboard_interactive"
SSH_INVALID_USER = "ssh_invalid_user"
SSH_PAM_FAILURE = "ssh_pam_failure"
SSH_USER_REFUSED = "ssh_user_refused"
SSH_ROOT_REFUSED = "ssh_root_refused"
SSH_TOO_MANY_FAILURES = "ssh_too_many_failures"
SSH_CLOSED_PREAUTH = "ssh_closed_preauth"
SSH_DISCONNECTED = "ssh_disconnected"
SU_OPENED = "su_opened"
SU_FAILED = "su_failed"
SU_CLOSED = "su_closed"
SUDO_COMMAND = "sudo_command"
SUDO_FAILURE = "sudo_failure"
FORGED_AUTH_LINE = trust.FORGED_AUTH_LINE  # a line claiming sshd/su/sudo that they did not write

FAILURE_KINDS = frozenset(
    {
        SSH_FAILED_PASSWORD,
        SSH_FAILED_PUBLICKEY,
        SSH_FAILED_KBDINT,
        SSH_INVALID_USER,
        SSH_PAM_FAILURE,
        SSH_USER_REFUSED,
        SSH_ROOT_REFUSED,
        SSH_TOO_MANY_FAILURES,
        SSH_CLOSED_PREAUTH,
        SU_FAILED,
        SUDO_FAILURE,
        FORGED_AUTH_LINE,
    }
)

SSHD = ("sshd", "sshd-session")
MAX_LINE = 8 * 1024  # syslog lines are ≤ 8 KiB in practice; longer input is junk, not a login

_TAIL = r" from (?P<host>\S+) port (?P<port>\d+)"
_TAIL2 = r" (?P<host>\S+) port (?P<port>\d+)"  # "user NAME HOST port N": no "from"
_PREAUTH = r"(?: \[preauth\])?$"

# (kind, pattern) tried in order on sshd messages; the user part is greedy so the
# rightmost "from HOST port N" wins.
_SSHD_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        SSH_ACCEPTED,
        re.compile(r"^Accepted (?P<method>\S+) for (?P<user>.*)" + _TAIL + r"(?: ssh2)?(?:: .*)?$"),
    ),
    (
        "failed",
        re.compile(
            r"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>.*)" + _TAIL + r"(?: ssh2)?(?:: .*)?$"
        ),
    ),
    (SSH_INVALID_USER, re.compile(r"^Invalid user (?P<user>.*)" + _TAIL + "$")),
    (
        SSH_TOO_MANY_FAILURES,
        re.compile(
            r"^error: maximum authentication attempts exceeded for (?:invalid user )?(?P<user>.*)"
            + _TAIL
            + r"(?: ssh2)?"
            + _PREAUTH
        ),
    ),
    (
        SSH_TOO_MANY_FAILURES,
        re.compile(
            r"^Disconnecting (?:authenticating|invalid) user (?P<user>.*)"
            + _TAIL2
            + r": Too many authentication failures"
            + _PREAUTH
        ),
    ),
    (
        SSH_USER_REFUSED,
        re.compile(r"^User (?P<user>.*) from (?P<host>\S+) not allowed because (?P<reason>.+)$"),
    ),
    (SSH_ROOT_REFUSED, re.compile(r"^ROOT LOGIN REFUSED FROM (?P<host>\S+?)(?: port (?P<port>\d+))?" + _PREAUTH)),
    (
        SSH_CLOSED_PREAUTH,
        re.compile(r"^Connection (?:closed|reset) by (?:authenticating|invalid) user (?P<user>.*)" + _TAIL2 + _PREAUTH),
    ),
    (
        SSH_DISCONNECTED,
        re.compile(r"^Disconnected from (?:user )?(?P<user>.*)" + _TAIL2 + "$"),
    ),
    (
        SSH_CLOSED_PREAUTH,
        re.compile(r"^Disconnected from (?:authenticating|invalid) user (?P<user>.*)" + _TAIL2 + _PREAUTH),
    ),
    (
        SSH_PAM_FAILURE,
        re.compile(r"^pam_unix\(sshd:auth\): authentication failure;.* rhost=(?P<host>\S*)(?:\s+user=(?P<user>.*))?$"),
    ),
]

_SU_OPENED = re.compile(
    r"^pam_unix\(su(?:-l)?:session\): session opened for user (?P<target>.+?)(?:\(uid=\d+\))?"
    r" by (?P<user>.*?)(?:\(uid=\d+\))?$"
)
_SU_CLOSED = re.compile(r"^pam_unix\(su(?:-l)?:session\): session closed for user (?P<target>.+)$")
_SU_AUTHFAIL = re.compile(
    r"^pam_unix\(su(?:-l)?:auth\): authentication failure;.* ruser=(?P<user>\S*) rhost=\S*(?:\s+user=(?P<target>.*))?$"
)
_SU_FAILED = re.compile(r"^FAILED SU \(to (?P<target>.*?)\) (?P<user>.*) on (?P<tty>\S+)$")
_SUDO = re.compile(r"^\s*(?P<user>\S.*?) : (?P<rest>.*\bCOMMAND=.*)$")
_SUDO_KEYS = frozenset({"TTY", "PWD", "USER", "GROUP", "ENV", "CHROOT", "CWD", "COMMAND"})
_SUDO_PAM = re.compile(r"^pam_unix\(sudo:auth\): authentication failure;.* ruser=(?P<user>\S*)")

_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?) (\S+) (.*)$")
_CLASSIC = re.compile(r"^([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (\S+) (.*)$")
_TAG = re.compile(r"^([^\s\[:]+)(?:\[(\d+)\])?: (.*)$")


def _int(text: str | None) -> int | None:
    """A pid or port: ASCII digits that fit the field, else None."""
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 10 else None


def classify(process: str, message: str) -> dict[str, Any] | None:
    """Event fields (kind, user, host, …) for one message of one program, or None."""
    if process in SSHD:
        return _classify_sshd(message)
    if process == "su":
        return _classify_su(message)
    if process == "sudo":
        return _classify_sudo(message)
    return None


def _classify_sshd(message: str) -> dict[str, Any] | None:
    for kind, pattern in _SSHD_RULES:
        match = pattern.match(message)
        if match is None:
            continue
        fields = match.groupdict()
        event: dict[str, Any] = {"kind": kind}
        if kind == "failed":
            event["kind"] = _failed_kind(fields["method"], bool(fields["invalid"]))
        if fields.get("method"):
            event["method"] = fields["method"]
        if fields.get("user") is not None:
            event["user"] = fields["user"]
        if fields.get("host"):
            event["host"] = fields["host"]
        event["port"] = _int(fields.get("port"))
        return event
    return None


def _failed_kind(method: str, invalid_user: bool) -> str:
    if method == "publickey":
        return SSH_FAILED_PUBLICKEY
    if method.startswith("keyboard-interactive"):
        return SSH_FAILED_KBDINT
    if method == "none" and invalid_user:
        return SSH_INVALID_USER
    return SSH_FAILED_PASSWORD


def _classify_su(message: str) -> dict[str, Any] | None:
    if match := _SU_OPENED.match(message):
        return {"kind": SU_OPENED, "user": match["user"] or None, "target_user": match["target"]}
    if match := _SU_CLOSED.match(message):
        return {"kind": SU_CLOSED, "target_user": match["target"]}
    if match := _SU_AUTHFAIL.match(message):
        return {"kind": SU_FAILED, "user": match["user"] or None, "target_user": match["target"] or None}
    if match := _SU_FAILED.match(message):
        return {"kind": SU_FAILED, "user": match["user"], "target_user": match["target"], "tty": match["tty"]}
    return None


def _classify_sudo(message: str) -> dict[str, Any] | None:
    if match := _SUDO_PAM.match(message):
        return {"kind": SUDO_FAILURE, "user": match["user"] or None}
    match = _SUDO.match(message)
    if match is None:
        return None
    # "alice : [reason ; ]TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id" — the TTY part
    # is missing without a terminal; a leading part that is not KEY=value is a refusal.
    head = []
    fields: dict[str, str] = {}
    for part in match["rest"].split(" ; "):
        if "COMMAND" in fields:  # COMMAND comes last: the rest is the command's own text
            fields["COMMAND"] += " ; " + part
            continue
        key, sep, value = part.partition("=")
        if sep and key in _SUDO_KEYS:
            fields[key] = value
        elif not fields:
            head.append(part)
    if "COMMAND" not in fields:
        return None
    return {
        "kind": SUDO_FAILURE if head else SUDO_COMMAND,
        "user": match["user"],
        "target_user": fields.get("USER"),
        "command": fields["COMMAND"],
        "tty": fields.get("TTY"),
    }


def _parse_time(stamp: str, now: float) -> float:
    if "T" in stamp:
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return now
    # Classic syslog has no year: take this year, unless that lands in the future.
    year = time.localtime(now).tm_year
    try:
        parsed = time.mktime(time.strptime(f"{year} {stamp}", "%Y %b %d %H:%M:%S"))
    except (ValueError, OverflowError):
        return now
    if parsed > now + 86400:
        parsed = time.mktime(time.strptime(f"{year - 1} {stamp}", "%Y %b %d %H:%M:%S"))
    return parsed


def parse_syslog(line: str, now: float | None = None) -> dict[str, Any] | None:
    """One syslog text line (RFC 3339 or classic timestamp) → event fields, or None."""
    now = time.time() if now is None else now
    match = _RFC3339.match(line) or _CLASSIC.match(line)
    if match is None:
        return None
    stamp, _host, rest = match.groups()
    tag = _TAG.match(rest)
    if tag is None:
        return None
    process, pid, message = tag.groups()
    return _event(process, _int(pid), message, _parse_time(stamp, now))


def _event(process: str, pid: int | None, message: str, when: float) -> dict[str, Any] | None:
    fields = classify(process, message)
    if fields is None:
        return None
    fields.update(time=when, process=process, pid=pid)
    return fields


def _journal_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode(errors="replace")  # journald sends non-UTF-8 as byte arrays
    return None


def parse_journal(entry: dict[str, Any], now: float | None = None) -> dict[str, Any] | None:
    """One decoded ``journalctl -o json`` entry → event fields, or None.

    An entry that claims to be sshd, su or sudo is believed only if journald's trusted
    fields agree (see trust.py); otherwise it is a forged-line event.
    """
    process = _journal_text(entry.get("SYSLOG_IDENTIFIER")) or _journal_text(entry.get("_COMM"))
    message = _journal_text(entry.get("MESSAGE"))
    if process is None or message is None:
        return None
    pid = _int(_journal_text(entry.get("SYSLOG_PID")) or _journal_text(entry.get("_PID")))
    stamp = _journal_text(entry.get("__REALTIME_TIMESTAMP")) or ""
    if stamp.isascii() and stamp.isdigit() and len(stamp) < 20:
        when = int(stamp) / 1e6  # microseconds since the epoch
    else:
        when = time.time() if now is None else now
    fields = _event(process, pid, message.rstrip("\n"), when)
    claimed = trust.claimed_program(entry)
    if claimed is not None:
        forged = trust.forgery(entry, claimed, fields["kind"] if fields else None)
        if forged is not None:
            return {**forged, "time": when, "process": claimed, "pid": _int(_journal_text(entry.get("_PID")))}
    return fields


def parse_line(line: str, now: float | None = None) -> dict[str, Any] | None:
    """A syslog line or a journal JSON line, decided by its first character."""
    if len(line) > MAX_LINE:
        return None
    line = line.rstrip("\r\n")
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        return parse_journal(entry, now) if isinstance(entry, dict) else None
    return parse_syslog(line, now)
