"""Who really wrote a journal entry that claims to be sshd, su or sudo.

Any local user can write ``logger -t sshd "Accepted password for root …"``:
``SYSLOG_IDENTIFIER`` is whatever the sender says, and so are ``SYSLOG_PID``
and ``_COMM`` (a process may rename itself). journald also records, from the
kernel's view of the sending socket, fields the sender cannot choose: ``_UID``,
``_PID`` and ``_EXE``, the executable's real path. An entry is believed only
when the identifier is sent once, the executable is the claimed program's own
file in a system directory (where only root can put one), and it ran as root.
Anything else that claims one of these names becomes a ``forged_auth_line``
event naming the uid and program that wrote it: someone forging auth lines is
itself an alarm.

One exception, because OpenSSH works that way: after login, the session's
sshd process runs as the user who logged in and logs its own disconnect (and
other lines that make no event). Those are believed from the system's sshd
executables when the uid is that user's; every other sshd event line must come
from root.

Plain log files carry no such fields; lines read from them are taken as
written (the docs say so).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping
from typing import Any

from ..protocol.kinds import FORGED_AUTH_LINE, SSH_DISCONNECTED

_SSHD_PROGRAMS = frozenset({"sshd", "sshd-session", "sshd-auth"})
# The programs whose names an auth line may claim, and the executables allowed to claim each.
PROGRAMS: Mapping[str, frozenset[str]] = {
    **dict.fromkeys(("sshd", "sshd-session", "sshd-auth"), _SSHD_PROGRAMS),
    "su": frozenset({"su"}),
    "runuser": frozenset({"runuser"}),
    "sudo": frozenset({"sudo", "sudo-rs"}),
}
# Where distributions install those programs; only root can put an executable there.
SYSTEM_DIRECTORIES = ("/usr/bin/", "/usr/sbin/", "/usr/lib/", "/usr/lib64/", "/usr/libexec/", "/bin/", "/sbin/")
# What an sshd session process running as its user may write itself (see the module's
# docstring): its disconnect, and lines of no event shape ("Received disconnect …").
_SESSION_KINDS = frozenset({SSH_DISCONNECTED, None})


def claimed_program(entry: Mapping[str, Any]) -> str | None:
    """The auth program an entry claims to come from, or None when it claims none we watch.

    journald keeps a field sent twice as a list: any watched name in it is a claim too.
    """
    name = entry.get("SYSLOG_IDENTIFIER")
    if isinstance(name, list):
        return next((n for n in name if isinstance(n, str) and n in PROGRAMS), None)
    return name if isinstance(name, str) and name in PROGRAMS else None


def forgery(entry: Mapping[str, Any], claimed: str, fields: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The forged-line event fields when the trusted fields deny the claim, else None.

    ``fields`` is what the message would be if believed (None when of no known shape).
    """
    uid = _text(entry.get("_UID"))
    exe = _text(entry.get("_EXE"))
    if _believed(entry, claimed, uid, exe, fields):
        return None
    return {
        "kind": FORGED_AUTH_LINE,
        "user": f"uid={uid}" if uid is not None else "uid unknown",
        "command": exe or _text(entry.get("_COMM")) or "unknown program",
    }


def _believed(
    entry: Mapping[str, Any], claimed: str, uid: str | None, exe: str | None, fields: Mapping[str, Any] | None
) -> bool:
    if not isinstance(entry.get("SYSLOG_IDENTIFIER"), str) or exe is None or uid is None:
        return False
    directory, name = os.path.split(exe)
    if name not in PROGRAMS[claimed] or not (directory + "/").startswith(SYSTEM_DIRECTORIES) or "/." in exe:
        return False
    if uid == "0":
        return True
    if claimed not in _SSHD_PROGRAMS:
        return False
    kind = fields.get("kind") if fields else None
    if kind not in _SESSION_KINDS:
        return False
    return kind is None or (fields is not None and fields.get("user") == _user_name(uid))


def _user_name(uid: str) -> str | None:
    try:
        return pwd.getpwuid(int(uid)).pw_name
    except (KeyError, ValueError, OverflowError):
        return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
