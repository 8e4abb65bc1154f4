"""Who really wrote a journal entry that claims to be sshd, su or sudo.

Any local user can write ``logger -t sshd "Accepted password for root …"``:
``SYSLOG_IDENTIFIER`` is whatever the sender says. journald also records, from
the kernel's view of the sending socket, fields the sender cannot choose:
``_UID``, ``_EXE`` (the executable) and ``_COMM``. An entry is believed only
when those say the claimed program wrote it, as root. Anything else that
claims one of these names becomes a ``forged_auth_line`` event naming the uid
and program that wrote it: someone forging auth lines is itself an alarm.

One exception, because OpenSSH works that way: after login, the session's
unprivileged sshd process runs as the user who logged in and logs its own
disconnect (and other lines that are no event). Those lines are believed from
the sshd executables whatever the uid; every sshd event line else must come
from root.

Plain log files carry no such fields; lines read from them are taken as
written (the docs say so).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

FORGED_AUTH_LINE = "forged_auth_line"

_SSHD_PROGRAMS = frozenset({"sshd", "sshd-session", "sshd-auth"})
# The programs whose names an auth line may claim, and the executables allowed to claim each.
PROGRAMS: Mapping[str, frozenset[str]] = {
    **dict.fromkeys(("sshd", "sshd-session", "sshd-auth"), _SSHD_PROGRAMS),
    "su": frozenset({"su"}),
    "runuser": frozenset({"runuser"}),
    "sudo": frozenset({"sudo", "sudo-rs"}),
}
# What an unprivileged sshd session process may write itself (see the module's docstring): its
# disconnect, and lines of no event shape ("Received disconnect …", errors), which are then ignored.
_SESSION_KINDS = frozenset({"ssh_disconnected", None})


def claimed_program(entry: Mapping[str, Any]) -> str | None:
    """The auth program an entry claims to come from, or None when it claims none we watch."""
    name = entry.get("SYSLOG_IDENTIFIER")
    return name if isinstance(name, str) and name in PROGRAMS else None


def forgery(entry: Mapping[str, Any], claimed: str, kind: str | None) -> dict[str, Any] | None:
    """The forged-line event fields when the trusted fields deny the claim, else None.

    ``kind`` is what the message would be if believed (None when no known shape).
    """
    uid = _text(entry.get("_UID"))
    exe = _text(entry.get("_EXE"))
    comm = _text(entry.get("_COMM"))
    program = os.path.basename(exe) if exe else comm
    by_program = program is not None and program in PROGRAMS[claimed]
    as_root = uid == "0"
    if by_program and (as_root or (claimed in _SSHD_PROGRAMS and kind in _SESSION_KINDS and uid is not None)):
        return None
    return {
        "kind": FORGED_AUTH_LINE,
        "user": f"uid={uid}" if uid is not None else "uid unknown",
        "command": exe or comm or "unknown program",
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
