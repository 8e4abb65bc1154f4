"""Pure parsers for auth-log lines: syslog text and journal JSON in, event fields out.

A line goes through three steps. ``read_line`` takes one line of either form
(decided per line: syslog text with a classic, ISO 8601 or RFC 5424 header, or
a ``journalctl -o json`` record) and returns its time, program, pid and
message. ``classify`` turns the message of a program SecMon watches (sshd and
OpenSSH 9.8's sshd-session and sshd-auth, su, runuser, sudo) into event fields;
it is a table of shapes keyed by the message's first word, so a line costs one
dictionary lookup and a regex or two. ``AuthLogParser`` adds what one line
cannot know: the host of an sshd line that names none, remembered from an
earlier line of the same process (connections.py), and which of two lines
reporting one fact (PAM's and the program's own) is the echo.

The kinds of event it names are the protocol's vocabulary (protocol/kinds.py);
this module only decides which line is which.

Nothing here raises on odd input: a line an attacker shaped (a user name with
spaces, ``from`` or markup in it) is matched from the right, where sshd puts the
parts the attacker does not control.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..protocol.kinds import (
    SSH_ACCEPTED,
    SSH_CLOSED_PREAUTH,
    SSH_DISCONNECTED,
    SSH_FAILED_KBDINT,
    SSH_FAILED_PASSWORD,
    SSH_FAILED_PUBLICKEY,
    SSH_HOST_REFUSED,
    SSH_INVALID_USER,
    SSH_PAM_FAILURE,
    SSH_PENALTY,
    SSH_ROOT_REFUSED,
    SSH_THROTTLED,
    SSH_TOO_MANY_FAILURES,
    SSH_USER_REFUSED,
    SU_CLOSED,
    SU_FAILED,
    SU_OPENED,
    SUDO_COMMAND,
    SUDO_FAILURE,
)
from . import trust
from .connections import ConnectionTracker

SSHD = ("sshd", "sshd-session", "sshd-auth")
SU = ("su", "runuser")
SUDO = ("sudo",)
WATCHED = frozenset(SSHD + SU + SUDO)
MAX_LINE = 8 * 1024  # syslog lines are ≤ 8 KiB in practice; longer input is junk, not a login

Fields = dict[str, Any]
# What classify returns: event fields; QUIET (an empty map) for a known line that is no
# event (a session line, an echo); None for a line of no known shape. Two keys are notes
# for AuthLogParser and never reach an event: "_pid", the process whose connection a
# line is about when that is not its writer, and "_", these flags:
ENDING = 1  # the connection ends here: a second ending of it is an echo
NEEDS_ATTEMPT = 2  # a failure only if a login was tried on the connection before
LISTENER = 4  # the listening sshd's own news about a source, of no connection
NOTE = 8  # no event, but it names the connection's host and port
QUIET: Fields = {}


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log line's parts: its time, the program that wrote it, its pid and its message."""

    time: float
    process: str
    pid: int | None
    message: str
    journal: dict[str, Any] | None = None  # the journal record, whose trusted fields say who wrote it


# --- sshd ---------------------------------------------------------------------

_FROM = r" from (?P<host>\S+)(?: port (?P<port>\d+))?"
_PROTO = r"(?: ssh[12])?(?:: .*)?$"  # "ssh2", then ": RSA SHA256:…" or ": ruser …"
_PREAUTH = r"(?P<preauth> \[preauth\])?$"
_INVALID = r"(?P<invalid>(?:invalid|illegal) user )?"

_ACCEPTED = re.compile(r"Accepted (?P<method>\S+) for (?P<user>.*)" + _FROM + _PROTO)
_FAILED = re.compile(r"Failed (?P<method>\S+) for " + _INVALID + r"(?P<user>.*)" + _FROM + _PROTO)
_INVALID_USER = re.compile(r"(?:Invalid|Illegal) user (?P<user>.*)" + _FROM + "$")
_MAXTRIES = re.compile(
    r"maximum authentication attempts exceeded for " + _INVALID + r"(?P<user>.*)" + _FROM + r"(?: ssh[12])?" + _PREAUTH
)
_PAM_ERROR = re.compile(
    r"PAM: (?i:authentication (?:failure|error)) for (?:(?:illegal|invalid) user )?(?P<user>.*)"
    r" from (?P<host>\S+)(?: via \S+)?$"
)
_PAM_MORE = re.compile(r"PAM \d+ more authentication failures?;.* rhost=(?P<host>\S*)(?: +user=(?P<user>.*?))?\s*$")
_PAM_MODULE = re.compile(
    r"pam_\w+\(sshd:auth\): (?:\d+ more )?authentication failures?;.* rhost=(?P<host>\S*)"
    r"(?: +user=(?P<user>.*?))?\s*$"
)
_USER_REFUSED = re.compile(r"User (?P<user>.+?)(?: from (?P<host>\S+))? not allowed because .+$")
_ROOT_REFUSED = re.compile(r"ROOT LOGIN REFUSED FROM (?P<host>\S+?)(?: port (?P<port>\d+))?" + _PREAUTH)
# "Connection closed by [authenticating |invalid ]user NAME HOST port N [preauth]" and the bare
# "Connection closed by HOST port N": with a user the port is always there, so the two are apart.
_WHO = r"(?P<who>authenticating |invalid |illegal )?user (?P<user>.*) (?P<host>\S+) port (?P<port>\d+)"
_BARE = r"(?P<host>\S+?)(?: port (?P<port>\d+))?"
_CLOSED_USER = re.compile(r"Connection (?:closed|reset) by " + _WHO + _PREAUTH)
_CLOSED_BARE = re.compile(r"Connection (?:closed|reset) by " + _BARE + _PREAUTH)
_DISCONNECTED_USER = re.compile(r"Disconnected from " + _WHO + _PREAUTH)
_DISCONNECTED_BARE = re.compile(r"Disconnected from " + _BARE + _PREAUTH)
_RECEIVED = re.compile(
    r"Received disconnect from (?:(?P<host>\S+) port (?P<port>\d+):|(?P<host2>\S+): )\s*\d+: .*?" + _PREAUTH
)
_DISCONNECTING = re.compile(
    r"Disconnecting (?:(?P<who>authenticating |invalid |illegal )?user (?P<user>.*) )?(?P<host>\S+)"
    r" port (?P<port>\d+): (?P<text>.*?)" + _PREAUTH
)
_DISCONNECTING_BARE = re.compile(
    r"Disconnecting: Too many authentication failures(?: for (?:(?:invalid|illegal) user )?(?P<user>.*?))?" + _PREAUTH
)
# 9.8+: the listener logs it, naming the session's pid; before, the session's own process did.
_TIMEOUT = re.compile(
    r"Timeout before authentication for (?:connection from (?P<host>[^\s,]+)(?: to \S+?)?, pid = (?P<cpid>\d+)"
    r"|(?P<host2>\S+) port (?P<port>\d+))"
)
_DROP = re.compile(r"drop connection #\d+ from \[(?P<host>[^\]]*)\]:(?P<port>\d+) on \[[^\]]*\]:\d+ (?P<reason>.*)$")
_PENALISE = re.compile(
    r"srclimit_penalise: (?:ipv[46]: new (?P<host>\S+/\d+) |(?P<host2>\S+/\d+): (?:new|activating) )"
)
_REFUSED_CONNECT = re.compile(r"refused connect from (?P<name>\S+?)(?: \((?P<addr>[^)]*)\))?$")
_CONNECTION_FROM = re.compile(r"Connection from (?P<host>\S+) port (?P<port>\d+) on ")
_REPEATED = re.compile(r"message repeated \d+ times: \[ ?(?P<message>.*)\]$")
# Known lines that are no event: sessions starting and ending, the listener's own news.
_PAM_NOISE = r"pam_\w+\([\w-]+:(?:session|account|setcred|password)\)"  # sessions, limits, env: no failure
_SSHD_QUIET = re.compile(
    r"(?:Postponed|Partial|Server listening|Received signal|Starting session|Close session|Closing connection"
    r"|Transferred:|User child is on pid|Timeout, client not responding|Read error from remote host"
    r"|input_userauth_request: invalid user|pam_unix\(sshd:auth\): check pass|(?:in|exited) MaxStartups throttling"
    r"|\w+ logging rate-limited|kex_exchange_identification: |banner exchange: |Unable to negotiate with "
    r"|Bad protocol version identification|Did not receive identification string|" + _PAM_NOISE + ")"
)


def _port(text: str | None) -> int | None:
    """A port or pid a pattern matched as digits: ASCII ones that fit the field, else None."""
    return int(text) if text and len(text) < 10 and text.isascii() else None


def _number(text: str | None) -> int | None:
    """A pid from a journal field, which may hold anything."""
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 10 else None


def _host(text: str | None) -> str | None:
    """A host as logged, IPv4-mapped IPv6 as its IPv4 address; None when empty."""
    if not text:
        return None
    if text[:7].lower() == "::ffff:" and "." in text:
        return text[7:]
    return text


def _net(text: str) -> str:
    """A penalised prefix: a single address (/32, /128) as the address itself."""
    address, _, bits = text.rpartition("/")
    return address if bits in ("32", "128") else text


def _failed_kind(method: str, invalid_user: bool) -> str:
    if method == "publickey":
        return SSH_FAILED_PUBLICKEY
    if method.startswith("keyboard-interactive"):
        return SSH_FAILED_KBDINT
    if method == "none" and invalid_user:
        return SSH_INVALID_USER
    return SSH_FAILED_PASSWORD


def _accepted(message: str) -> Fields | None:
    if m := _ACCEPTED.match(message):
        return {"kind": SSH_ACCEPTED, "method": m["method"], "user": m["user"], "host": _host(m["host"]),
                "port": _port(m["port"])}  # fmt: skip
    return None


def _failed(message: str) -> Fields | None:
    if m := _FAILED.match(message):
        kind = _failed_kind(m["method"], bool(m["invalid"]))
        return {"kind": kind, "method": m["method"], "user": m["user"], "host": _host(m["host"]),
                "port": _port(m["port"])}  # fmt: skip
    return None


def _invalid_user(message: str) -> Fields | None:
    if m := _INVALID_USER.match(message):
        return {"kind": SSH_INVALID_USER, "user": m["user"], "host": _host(m["host"]), "port": _port(m["port"])}
    return None


def _maximum(message: str) -> Fields | None:
    if m := _MAXTRIES.match(message):
        return {"kind": SSH_TOO_MANY_FAILURES, "user": m["user"], "host": _host(m["host"]), "port": _port(m["port"]),
                "_": ENDING}  # fmt: skip
    return None


def _pam(message: str) -> Fields | None:
    m = _PAM_ERROR.match(message) or _PAM_MORE.match(message) or _PAM_MODULE.match(message)
    if m is None:
        return None
    return {"kind": SSH_PAM_FAILURE, "user": m["user"] or None, "host": _host(m["host"])}


def _user(message: str) -> Fields | None:
    if m := _USER_REFUSED.match(message):
        return {"kind": SSH_USER_REFUSED, "user": m["user"], "host": _host(m["host"])}
    return None


def _root(message: str) -> Fields | None:
    if m := _ROOT_REFUSED.match(message):
        return {"kind": SSH_ROOT_REFUSED, "user": "root", "host": _host(m["host"]), "port": _port(m["port"])}
    return None


def _ending(m: re.Match[str], quiet_without_attempt: bool) -> Fields:
    """A pre-auth ending: with a user it is a failure; bare, only after a login was tried."""
    fields: Fields = {"kind": SSH_CLOSED_PREAUTH, "host": _host(m["host"]), "port": _port(m["port"]), "_": ENDING}
    if "user" in m.re.groupindex:
        fields["user"] = m["user"]
    elif quiet_without_attempt:
        fields["_"] = ENDING | NEEDS_ATTEMPT
    return fields


def _connection(message: str) -> Fields | None:
    if m := _CLOSED_USER.match(message):
        return _ending(m, False) if m["preauth"] and m["who"] else QUIET
    if m := _CLOSED_BARE.match(message):
        return _ending(m, True) if m["preauth"] else QUIET
    if m := _CONNECTION_FROM.match(message):
        return {"host": _host(m["host"]), "port": _port(m["port"]), "_": NOTE}
    return None


def _disconnected(message: str) -> Fields | None:
    if m := _DISCONNECTED_USER.match(message):
        if m["preauth"] and m["who"]:
            return _ending(m, False)
        if not m["preauth"] and not m["who"]:
            return {"kind": SSH_DISCONNECTED, "user": m["user"], "host": _host(m["host"]), "port": _port(m["port"])}
        return QUIET
    if m := _DISCONNECTED_BARE.match(message):
        return _ending(m, True) if m["preauth"] else QUIET
    return None


def _received(message: str) -> Fields | None:
    m = _RECEIVED.match(message)
    if m is None:
        return None
    if not m["preauth"]:
        return QUIET  # a client logging out; "Disconnected from user …" follows
    host = m["host"] if m["host"] is not None else m["host2"]
    return {"kind": SSH_CLOSED_PREAUTH, "host": _host(host), "port": _port(m["port"]), "_": ENDING}


def _disconnecting(message: str) -> Fields | None:
    if m := _DISCONNECTING_BARE.match(message):
        return {"kind": SSH_TOO_MANY_FAILURES, "user": m["user"] or None, "_": ENDING}
    m = _DISCONNECTING.match(message)
    if m is None:
        return None
    if m["text"].startswith("Too many authentication failures"):
        kind = SSH_TOO_MANY_FAILURES
    elif m["preauth"] and (m["who"] or m["user"] is None):
        kind = SSH_CLOSED_PREAUTH
    else:
        return QUIET  # a logged-in user's connection ending
    return {"kind": kind, "user": m["user"], "host": _host(m["host"]), "port": _port(m["port"]), "_": ENDING}


def _timeout(message: str) -> Fields | None:
    m = _TIMEOUT.match(message)
    if m is None:
        return None
    if m["cpid"] is not None:
        return {"kind": SSH_CLOSED_PREAUTH, "host": _host(m["host"]), "_pid": _port(m["cpid"]), "_": ENDING}
    return {"kind": SSH_CLOSED_PREAUTH, "host": _host(m["host2"]), "port": _port(m["port"]), "_": ENDING}


def _drop(message: str) -> Fields | None:
    m = _DROP.match(message)
    if m is None:
        return None
    reason = m["reason"]
    kind = SSH_PENALTY if reason.startswith(("penalty", "PerSourcePenalties")) else SSH_THROTTLED
    return {"kind": kind, "host": _host(m["host"]), "port": _port(m["port"]), "_": LISTENER}


def _penalise(message: str) -> Fields | None:
    m = _PENALISE.match(message)
    if m is None:
        return None
    return {"kind": SSH_PENALTY, "host": _net(m["host"] or m["host2"]), "_": LISTENER}


def _beginning(message: str) -> Fields | None:
    if message == "beginning MaxStartups throttling":
        return {"kind": SSH_THROTTLED, "_": LISTENER}
    return None


def _refused(message: str) -> Fields | None:
    if m := _REFUSED_CONNECT.match(message):
        return {"kind": SSH_HOST_REFUSED, "host": _host(m["addr"] or m["name"])}
    return None


def _repeated(message: str) -> Fields | None:
    if m := _REPEATED.match(message):
        return _classify_sshd(m["message"])
    return None


_SSHD_BY_WORD: dict[str, Callable[[str], Fields | None]] = {
    "Accepted": _accepted,
    "Failed": _failed,
    "Invalid": _invalid_user,
    "Illegal": _invalid_user,
    "maximum": _maximum,
    "PAM:": _pam,
    "PAM": _pam,
    "User": _user,
    "ROOT": _root,
    "Connection": _connection,
    "Disconnected": _disconnected,
    "Received": _received,
    "Disconnecting": _disconnecting,
    "Disconnecting:": _disconnecting,
    "Timeout": _timeout,
    "drop": _drop,
    "srclimit_penalise:": _penalise,
    "beginning": _beginning,
    "refused": _refused,
    "message": _repeated,
}


def _classify_sshd(message: str) -> Fields | None:
    word, _, rest = message.partition(" ")
    if word in ("error:", "fatal:"):  # sshd's level prefix on some lines
        message = rest
        word = rest.partition(" ")[0]
    handler = _SSHD_BY_WORD.get(word)
    if handler is None and word.startswith("pam_"):
        handler = _pam
    fields = handler(message) if handler is not None else None
    if fields is None and _SSHD_QUIET.match(message):
        return QUIET
    return fields


# --- su, runuser, sudo ----------------------------------------------------------

_SESSION_OPENED = re.compile(
    r"pam_unix\((?P<service>[\w-]+):session\): session opened for user (?P<target>.+?)(?:\(uid=\d+\))?"
    r" by (?P<user>.*?)(?:\(uid=\d+\))?$"
)
_SESSION_CLOSED = re.compile(r"pam_unix\((?P<service>[\w-]+):session\): session closed for user (?P<target>.+)$")
_AUTH_FAILURE = re.compile(
    r"pam_\w+\((?P<service>[\w-]+):auth\): authentication failure; logname=(?P<logname>\S*) .*?"
    r"ruser=(?P<ruser>\S*) rhost=\S*(?: +user=(?P<target>.*?))?\s*$"
)
_SU_TO = re.compile(r"(?P<failed>FAILED (?:SU|RUNUSER) )?\(to (?P<target>.*?)\) (?P<user>.*) on (?P<tty>\S+)$")
_SHADOW_SU = re.compile(r"(?P<outcome>Successful|FAILED) su for (?P<target>\S+) by (?P<user>.*)$")
_SUDO = re.compile(r"\s*(?P<user>\S.*?) : (?P<rest>.*)$")
_SUDO_KEYS = frozenset({"HOST", "TTY", "CHROOT", "PWD", "CWD", "USER", "GROUP", "TSID", "ENV", "COMMAND"})
_QUIET_PAM = re.compile(_PAM_NOISE)


def _classify_su(message: str) -> Fields | None:
    if message.startswith("pam_"):
        if m := _SESSION_OPENED.match(message):
            return {"kind": SU_OPENED, "user": m["user"] or None, "target_user": m["target"]}
        if m := _SESSION_CLOSED.match(message):
            return {"kind": SU_CLOSED, "target_user": m["target"]}
        if m := _AUTH_FAILURE.match(message):
            return {"kind": SU_FAILED, "user": m["ruser"] or m["logname"] or None, "target_user": m["target"] or None}
        return QUIET if _QUIET_PAM.match(message) else None
    if m := _SU_TO.match(message):
        tty = m["tty"] if m["tty"] != "none" else None
        kind = SU_FAILED if m["failed"] else SU_OPENED
        return {"kind": kind, "user": m["user"] or None, "target_user": m["target"], "tty": tty}
    if m := _SHADOW_SU.match(message):
        kind = SU_OPENED if m["outcome"] == "Successful" else SU_FAILED
        return {"kind": kind, "user": m["user"] or None, "target_user": m["target"]}
    return None


def _classify_sudo(message: str) -> Fields | None:
    if message.startswith("pam_"):
        if m := _AUTH_FAILURE.match(message):
            return {"kind": SUDO_FAILURE, "user": m["ruser"] or m["logname"] or None}
        return QUIET if _QUIET_PAM.match(message) else None
    match = _SUDO.match(message)
    if match is None:
        return None
    rest = match["rest"].lstrip()  # sudo-rs writes two spaces where there is no TTY part
    if rest.startswith("(command continued) "):
        return QUIET  # the rest of a long command; its first line was the event
    # "alice : [reason ; ]TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id" — the TTY part
    # is missing without a terminal; a leading part that is not KEY=value is a refusal.
    head = []
    fields: dict[str, str] = {}
    for part in rest.split(" ; "):
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


_CLASSIFIERS: dict[str, Callable[[str], Fields | None]] = {
    **dict.fromkeys(SSHD, _classify_sshd),
    **dict.fromkeys(SU, _classify_su),
    **dict.fromkeys(SUDO, _classify_sudo),
}


def classify(process: str, message: str) -> Fields | None:
    """Event fields for one message of one program; QUIET for a known non-event; None if unknown."""
    classifier = _CLASSIFIERS.get(process)
    return classifier(message) if classifier is not None else None


# --- line headers ------------------------------------------------------------------

_MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_SYSLOG = re.compile(
    r"(?:<\d{1,3}>)?"  # the priority, when the line is read off the wire
    r"(?:(?P<iso>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"
    r"|(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d\d?) (?P<hms>\d\d:\d\d:\d\d)(?:\.\d+)?)"
    r" (?P<host>\S+) (?P<process>[^\s\[:]+)(?:\[(?P<pid>\d*)\])?: "
    r"(?:\[ID \d+ [\w.]+\] )?"  # Solaris: message id and facility
    r"(?P<message>.*)$"
)
_RFC5424 = re.compile(
    r"<\d{1,3}>1 (?P<iso>\S+) (?P<host>\S+) (?P<process>\S+) (?P<pid>\S+) \S+"
    r" (?:-|(?:\[(?:[^\]\\]|\\.)*\])+)(?: \ufeff?(?P<message>.*))?$"
)


def _iso_time(stamp: str, now: float) -> float:
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00").replace(",", ".")).timestamp()
    except ValueError:
        return now


_HOUR_STARTS: dict[tuple[int, int, int, int], float] = {}  # (now's hour, month, day, hour) → epoch
_HOUR_STARTS_LIMIT = 4096  # a log spans few hours at a time; when full it is simply emptied


def _classic_time(month: str, day: str, hms: str, now: float) -> float:
    """Classic syslog has no year: this year, unless that lands more than a day ahead.

    mktime is the costly part, so the start of each (month, day, hour) is cached and the
    minutes and seconds added: DST moves clocks by whole hours where the hour is known.
    """
    mon = _MONTHS.get(month)
    if mon is None:
        return now
    hour = int(hms[:2])
    key = (int(now // 3600), mon, int(day), hour)
    start = _HOUR_STARTS.get(key)
    if start is None:
        year = time.localtime(now).tm_year
        try:
            start = time.mktime((year, mon, key[2], hour, 0, 0, 0, 0, -1))
            if start > now + 86400:
                start = time.mktime((year - 1, mon, key[2], hour, 0, 0, 0, 0, -1))
        except (OverflowError, ValueError):
            return now
        if len(_HOUR_STARTS) >= _HOUR_STARTS_LIMIT:
            _HOUR_STARTS.clear()
        _HOUR_STARTS[key] = start
    return start + int(hms[3:5]) * 60 + int(hms[6:8])


def _program(name: str) -> str:
    return name.rpartition("/")[2] if "/" in name else name  # "/usr/sbin/sshd[1]" on some systems


def read_syslog(line: str, now: float) -> LogLine | None:
    """The parts of one syslog text line (classic, ISO 8601 or RFC 5424 header), or None."""
    m = _SYSLOG.match(line)
    if m is not None:
        stamp, month, day, hms, process, pid, message = m.group("iso", "mon", "day", "hms", "process", "pid", "message")
        if process not in WATCHED:
            process = _program(process)
            if process not in WATCHED:
                return None
        when = _iso_time(stamp, now) if stamp else _classic_time(month, day, hms, now)
        return LogLine(when, process, _port(pid), message)
    if line.startswith("<") and (m := _RFC5424.match(line)):
        process = _program(m["process"])
        if process not in WATCHED or m["message"] is None:
            return None
        when = _iso_time(m["iso"], now) if m["iso"] != "-" else now
        return LogLine(when, process, _number(m["pid"]), m["message"])
    return None


def _journal_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, int) and 0 <= b < 256 for b in value):
        return bytes(value).decode(errors="replace")  # journald sends non-UTF-8 as byte arrays
    return None


def read_journal(entry: dict[str, Any], now: float) -> LogLine | None:
    """The parts of one decoded ``journalctl -o json`` record, or None.

    The identifier is taken as it is: a path there claims no program, so it cannot slip
    past the check of who wrote the line (trust.py).
    """
    identifier = entry.get("SYSLOG_IDENTIFIER")
    process = identifier if isinstance(identifier, str) else trust.claimed_program(entry)
    if process is None or process not in WATCHED:
        return None  # never by _COMM: a process may rename itself
    message = _journal_text(entry.get("MESSAGE"))
    if message is None:
        return None
    # journald's own _PID first: SYSLOG_PID is the sender's word, and connections are tracked by pid.
    pid = _number(_journal_text(entry.get("_PID")) or _journal_text(entry.get("SYSLOG_PID")))
    stamp = _journal_text(entry.get("__REALTIME_TIMESTAMP")) or ""
    when = int(stamp) / 1e6 if stamp.isascii() and stamp.isdigit() and len(stamp) < 20 else now
    return LogLine(when, process, pid, message.rstrip("\n"), entry)


def _forged(line: LogLine, fields: Fields | None) -> Fields | None:
    """The forged-line event when the journal's trusted fields deny the program the line claims."""
    entry = line.journal
    claimed = trust.claimed_program(entry) if entry is not None else None
    if entry is None or claimed is None:
        return None  # syslog text carries no trusted fields: taken as written
    forged = trust.forgery(entry, claimed, fields)
    if forged is None:
        return None
    return {**forged, "time": line.time, "process": claimed, "pid": _number(_journal_text(entry.get("_PID")))}


def read_line(line: str, now: float | None = None) -> LogLine | None:
    """A syslog line or a journal JSON line (decided by its first character) of a watched program."""
    if len(line) > MAX_LINE:
        return None
    now = time.time() if now is None else now
    line = line.rstrip("\r\n")
    if line.startswith("{"):
        try:
            entry = json.loads(line)
        except ValueError:
            return None
        return read_journal(entry, now) if isinstance(entry, dict) else None
    return read_syslog(line, now)


# --- events ------------------------------------------------------------------------

_ATTEMPTS = frozenset(
    {SSH_FAILED_PASSWORD, SSH_FAILED_PUBLICKEY, SSH_FAILED_KBDINT, SSH_INVALID_USER, SSH_PAM_FAILURE,
     SSH_USER_REFUSED, SSH_ROOT_REFUSED, SSH_TOO_MANY_FAILURES, SSH_ACCEPTED}
)  # fmt: skip
_ECHOED = frozenset({SU_OPENED, SU_FAILED, SUDO_FAILURE})  # su and PAM both say it; sudo and PAM too


def _event(line: LogLine, fields: Fields) -> Fields:
    fields.pop("_", None)
    fields.pop("_pid", None)
    fields.update(time=line.time, process=line.process, pid=line.pid)
    return fields


def event_of(line: LogLine) -> Fields | None:
    """The event one line makes on its own (no attribution from earlier lines), or None."""
    fields = classify(line.process, line.message)
    if line.journal is not None and (forged := _forged(line, fields)):
        return forged
    if not fields or "kind" not in fields or fields.get("_", 0) & NEEDS_ATTEMPT:
        return None
    return _event(line, fields)


def parse_syslog(line: str, now: float | None = None) -> Fields | None:
    """One syslog text line → event fields on its own, or None."""
    parts = read_syslog(line.rstrip("\r\n"), time.time() if now is None else now)
    return event_of(parts) if parts is not None else None


def parse_journal(entry: dict[str, Any], now: float | None = None) -> Fields | None:
    """One decoded ``journalctl -o json`` entry → event fields on its own, or None."""
    parts = read_journal(entry, time.time() if now is None else now)
    return event_of(parts) if parts is not None else None


def parse_line(line: str, now: float | None = None) -> Fields | None:
    """The event of one line of either form taken on its own; AuthLogParser also uses earlier lines."""
    parts = read_line(line, now)
    return event_of(parts) if parts is not None else None


class AuthLogParser:
    """Lines in file order → events, attributing hosts from earlier lines of the same process."""

    def __init__(self, tracker: ConnectionTracker | None = None) -> None:
        self.tracker = tracker if tracker is not None else ConnectionTracker()

    def parse_line(self, line: str, now: float | None = None) -> Fields | None:
        """The event of one line, or None."""
        parts = read_line(line, now)
        if parts is None:
            return None
        return self.examine(parts) or None

    def examine(self, line: LogLine) -> Fields | None:
        """Event fields; QUIET for a known line that makes no event; None for an unknown one."""
        fields = classify(line.process, line.message)
        if line.journal is not None and (forged := _forged(line, fields)):
            return forged  # believed from no one: neither an event of its claim nor a connection's news
        if not fields:
            return fields
        if line.process in SSHD:
            return self._connection(line, fields)
        kind = fields["kind"]
        if kind in _ECHOED and line.pid is not None:
            seen = self.tracker.observe((line.process, line.pid), line.time)
            if seen.last_kind == kind:
                return QUIET
            seen.last_kind = kind
        return _event(line, fields)

    def _connection(self, line: LogLine, fields: Fields) -> Fields:
        notes = fields.get("_", 0)
        key = fields.get("_pid", line.pid)
        if key is None or notes & LISTENER:
            return QUIET if notes & (NOTE | NEEDS_ATTEMPT) else _event(line, fields)
        tracker = self.tracker
        conn = tracker.observe(key, line.time)
        host, port = fields.get("host"), fields.get("port")
        if port is not None and conn.port is not None and port != conn.port:
            conn = tracker.restart(key, line.time)  # the pid now serves another connection
        if host is not None:
            conn.host = host
        elif conn.host is not None:
            fields["host"] = conn.host
        if port is not None:
            conn.port = port
        elif conn.port is not None and fields.get("host") is not None:
            fields["port"] = conn.port
        user = fields.get("user")
        if user is not None:
            conn.user = user
        elif conn.user is not None and "kind" in fields:
            fields["user"] = conn.user
        kind = fields.get("kind")
        if kind in _ATTEMPTS:
            conn.attempted = True
        if kind is None or (notes & NEEDS_ATTEMPT and not conn.attempted):
            return QUIET
        if notes & ENDING:
            if conn.ended:
                return QUIET  # the same connection's end, said again
            conn.ended = True
        return _event(line, fields)
