"""The vocabulary of auth events: their kinds, which are failures or successes, and one label each.

A kind travels on the wire as a short string that the node's parser decides;
everything that shows events (the CLI, the JSON form, the dashboard, the chat
notifiers, burst folding) takes its words from here, so no presentation code
needs the parser to know what a kind means. ``LABELS`` is plain text: each
medium escapes it as it escapes everything else it shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

SSH_ACCEPTED = "ssh_accepted"
SSH_FAILED_PASSWORD = "ssh_failed_password"
SSH_FAILED_PUBLICKEY = "ssh_failed_publickey"
SSH_FAILED_KBDINT = "ssh_failed_keyboard_interactive"
SSH_INVALID_USER = "ssh_invalid_user"
SSH_PAM_FAILURE = "ssh_pam_failure"
SSH_USER_REFUSED = "ssh_user_refused"  # AllowUsers/DenyUsers (or groups) refused the user
SSH_HOST_REFUSED = "ssh_host_refused"  # tcp-wrappers (hosts.deny) refused the connection
SSH_ROOT_REFUSED = "ssh_root_refused"
SSH_TOO_MANY_FAILURES = "ssh_too_many_failures"
SSH_CLOSED_PREAUTH = "ssh_closed_preauth"
SSH_PENALTY = "ssh_penalty"  # OpenSSH 9.8+ PerSourcePenalties penalised or dropped a source
SSH_THROTTLED = "ssh_throttled"  # MaxStartups dropped a connection
SSH_DISCONNECTED = "ssh_disconnected"
SU_OPENED = "su_opened"
SU_FAILED = "su_failed"
SU_CLOSED = "su_closed"
SUDO_COMMAND = "sudo_command"
SUDO_FAILURE = "sudo_failure"
FORGED_AUTH_LINE = "forged_auth_line"  # a journal line claiming sshd/su/sudo that they did not write

# Failures are what an operator wants highlighted, and what notifiers fold into bursts.
FAILURE_KINDS = frozenset(
    {
        SSH_FAILED_PASSWORD,
        SSH_FAILED_PUBLICKEY,
        SSH_FAILED_KBDINT,
        SSH_INVALID_USER,
        SSH_PAM_FAILURE,
        SSH_USER_REFUSED,
        SSH_HOST_REFUSED,
        SSH_ROOT_REFUSED,
        SSH_TOO_MANY_FAILURES,
        SSH_CLOSED_PREAUTH,
        SSH_PENALTY,
        SSH_THROTTLED,
        SU_FAILED,
        SUDO_FAILURE,
        FORGED_AUTH_LINE,
    }
)

# Successes are what an operator charts against failures; every other kind is "other".
SUCCESS_KINDS = frozenset({SSH_ACCEPTED, SU_OPENED, SUDO_COMMAND})

LABELS: Mapping[str, str] = MappingProxyType(
    {
        SSH_ACCEPTED: "SSH login accepted",
        SSH_FAILED_PASSWORD: "SSH password failed",
        SSH_FAILED_PUBLICKEY: "SSH public key refused",
        SSH_FAILED_KBDINT: "SSH keyboard-interactive failed",
        SSH_INVALID_USER: "SSH invalid user",
        SSH_PAM_FAILURE: "SSH authentication failure (PAM)",
        SSH_USER_REFUSED: "SSH user not allowed",
        SSH_HOST_REFUSED: "SSH host refused (tcp-wrappers)",
        SSH_ROOT_REFUSED: "SSH root login refused",
        SSH_TOO_MANY_FAILURES: "SSH too many authentication failures",
        SSH_CLOSED_PREAUTH: "SSH connection closed before login",
        SSH_PENALTY: "SSH source penalised (PerSourcePenalties)",
        SSH_THROTTLED: "SSH connections throttled (MaxStartups)",
        SSH_DISCONNECTED: "SSH session ended",
        SU_OPENED: "su session opened",
        SU_FAILED: "su failed",
        SU_CLOSED: "su session closed",
        SUDO_COMMAND: "sudo command",
        SUDO_FAILURE: "sudo refused",
        FORGED_AUTH_LINE: "forged auth line",
    }
)


def label(kind: str) -> str:
    """The human label of ``kind``; a kind this version does not know (a newer node's) in words."""
    return LABELS.get(kind) or kind.replace("_", " ")
