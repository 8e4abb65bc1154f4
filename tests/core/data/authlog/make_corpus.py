"""Writes the auth-log corpus: the same lines as syslog text and as journal JSON, and their events.

Run it from this directory (``python make_corpus.py``) after changing a shape;
the test reads the three files it writes, not this script. Messages follow the
format strings of OpenSSH (auth.c, auth2.c, auth-pam.c, packet.c, sshd.c,
srclimit.c), Linux-PAM's pam_unix, util-linux su, sudo's eventlog and sudo-rs;
each step names the event expected in file order, where earlier lines of the
same process tell the host or user a line leaves out.

    corpus.log            syslog text, headers in turn: classic, ISO 8601 (Ubuntu 24.04),
                          RFC 5424, Solaris, classic with a priority
    corpus.jsonl          the same messages as ``journalctl -o json`` records
    corpus.expected.json  per line: {"event": fields or null, "time": seconds, "header": style,
                          "unmatched": the program, for a line of it no shape matches,
                          "journal_event": what the journal form gives instead, when its
                          trusted fields show another writer than the program named}
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).parent
START = datetime(2026, 11, 29, 2, 0, 0, 125000, tzinfo=UTC)
LISTENER = 712  # the sshd that accepts connections (9.8+: the sessions are sshd-session)
LOCAL = "192.0.2.1"

HOSTS = [
    "203.0.113.4", "198.51.100.23", "2001:db8::17", "::ffff:203.0.113.77", "scanner.example.net",
    "2001:db8:4f::a", "192.0.2.200", "198.51.100.9",
]  # fmt: skip
USERS = ["root", "admin", "oracle", "ubuntu", "test", "git", "user1", "postgres", "deploy", "pi"]
HOSTILE = ["x from 6.6.6.6 port 1", "<b>evil</b>", "a b", "@everyone", "ユーザー", ""]

rng = random.Random(16)
# (program, pid, message, expected event, unknown, journal: {"trusted": fields, "event": ...} when it differs)
steps: list[tuple[str, int, str, dict | None, bool, dict | None]] = []
_pid = 30000


def new_pid() -> int:
    global _pid
    _pid += rng.randint(3, 40)
    return _pid


def port() -> int:
    return rng.randint(1024, 65535)


def plain(host: str) -> str:
    return host[7:] if host.startswith("::ffff:") else host


def address(host: str) -> str:
    """Lines sshd writes with the peer's address, never its name."""
    return "203.0.113.99" if host.endswith(".net") else host


def event(kind: str, **fields) -> dict:
    return {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}


def step(
    program: str,
    pid: int,
    message: str,
    expected: dict | None = None,
    unknown: bool = False,
    journal: dict | None = None,
) -> None:
    """One line; ``unknown`` when SecMon is meant not to know its shape (`secmon authlog --unmatched`).

    ``journal`` gives the journal record other trusted fields (_UID, _EXE, _COMM) and the event
    expected from it, where journald's view of the writer makes it differ from the text.
    """
    if expected is not None:
        expected = {**expected, "process": program, "pid": pid}
    steps.append((program, pid, message, expected, unknown, journal))


# --- sshd: password guessing against a real account (OpenSSH 9.8+, sshd-session) -------------


def brute_force(user: str, host: str) -> None:
    pid, p, h = new_pid(), port(), plain(host)
    s = "sshd-session"
    step(s, pid, f'Connection from {host} port {p} on {LOCAL} port 22 rdomain ""')
    step(s, pid, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={host}  user={user}",
         event("ssh_pam_failure", user=user, host=h, port=p))  # fmt: skip
    for _ in range(rng.randint(1, 3)):
        step(s, pid, f"Failed password for {user} from {host} port {p} ssh2",
             event("ssh_failed_password", user=user, host=h, port=p, method="password"))  # fmt: skip
    step(s, pid, f"error: maximum authentication attempts exceeded for {user} from {host} port {p} ssh2 [preauth]",
         event("ssh_too_many_failures", user=user, host=h, port=p))  # fmt: skip
    step(
        s, pid, f"Disconnecting authenticating user {user} {host} port {p}: Too many authentication failures [preauth]"
    )
    step(s, pid, f"PAM 5 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={host}  user={user}",
         event("ssh_pam_failure", user=user, host=h, port=p))  # fmt: skip


# --- sshd: a user that does not exist, as sshd 6.x to 9.x write it ---------------------------


def invalid_user(user: str, host: str, program: str = "sshd") -> None:
    pid, p, h = new_pid(), port(), plain(host)
    step(program, pid, f"Invalid user {user} from {host} port {p}",
         event("ssh_invalid_user", user=user, host=h, port=p))  # fmt: skip
    step(program, pid, "pam_unix(sshd:auth): check pass; user unknown")
    step(program, pid, f"pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={host} ",
         event("ssh_pam_failure", user=user, host=h, port=p))  # fmt: skip
    step(program, pid, f"Failed password for invalid user {user} from {host} port {p} ssh2",
         event("ssh_failed_password", user=user, host=h, port=p, method="password"))  # fmt: skip
    step(program, pid, f"Received disconnect from {host} port {p}:11: Bye Bye [preauth]",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip
    step(program, pid, f"Disconnected from invalid user {user} {host} port {p} [preauth]")


def legacy_invalid_user(user: str, host: str) -> None:
    """OpenSSH before 7.x: no port on some lines, "input_userauth_request", no user in the ending."""
    pid, p, h = new_pid(), port(), plain(host)
    step("sshd", pid, f"Invalid user {user} from {host}", event("ssh_invalid_user", user=user, host=h))
    step("sshd", pid, f"input_userauth_request: invalid user {user} [preauth]")
    step("sshd", pid, f"Failed password for invalid user {user} from {host}",
         event("ssh_failed_password", user=user, host=h, method="password"))  # fmt: skip
    step("sshd", pid, f"Failed none for invalid user {user} from {host} port {p} ssh2",
         event("ssh_invalid_user", user=user, host=h, port=p, method="none"))  # fmt: skip
    step("sshd", pid, f"Received disconnect from {host}: 11: Bye Bye [preauth]",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip


def ssh1_and_ruser(user: str, host: str) -> None:
    pid, p, h = new_pid(), port(), plain(host)
    step("sshd", pid, f"Failed password for {user} from {host} port {p} ssh1",
         event("ssh_failed_password", user=user, host=h, port=p, method="password"))  # fmt: skip
    step("sshd", pid, f"Failed hostbased for {user} from {host} port {p} ssh2: ruser {user}",
         event("ssh_failed_password", user=user, host=h, port=p, method="hostbased"))  # fmt: skip
    step("sshd", pid, f"Failed publickey for {user} from {host} port {p} ssh2: RSA SHA256:Mq1yS0w1bXZyb2xlZ2lzbGF0aW9u",
         event("ssh_failed_publickey", user=user, host=h, port=p, method="publickey"))  # fmt: skip
    step("sshd", pid, f"Failed keyboard-interactive/pam for invalid user {user} from {host} port {p} ssh2",
         event("ssh_failed_keyboard_interactive", user=user, host=h, port=p, method="keyboard-interactive/pam"))  # fmt: skip
    step("sshd", pid, f"Connection closed by invalid user {user} {host} port {p} [preauth]",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip


# --- sshd: refused by configuration -------------------------------------------------------------

REFUSALS = [
    "not listed in AllowUsers", "listed in DenyUsers", "none of user's groups are listed in AllowGroups",
    "a group is listed in DenyGroups", "not in any group",
]  # fmt: skip


def refused(user: str, host: str, reason: str, name: str | None = None) -> None:
    """UseDNS: the refusal names the host name, the failures the address."""
    pid, p, h = new_pid(), port(), plain(host)
    shown = name or host
    step("sshd", pid, f"Connection from {host} port {p} on {LOCAL} port 22")
    step("sshd", pid, f"User {user} from {shown} not allowed because {reason}",
         event("ssh_user_refused", user=user, host=plain(shown), port=p))  # fmt: skip
    step("sshd", pid, f"Failed password for invalid user {user} from {host} port {p} ssh2",
         event("ssh_failed_password", user=user, host=h, port=p, method="password"))  # fmt: skip
    step("sshd", pid, f"Connection closed by invalid user {user} {host} port {p} [preauth]",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip


def locked(user: str, host: str) -> None:
    pid, p, h = new_pid(), port(), plain(host)
    step("sshd", pid, f"Connection from {host} port {p} on {LOCAL} port 22")
    step("sshd", pid, f"User {user} not allowed because account is locked",
         event("ssh_user_refused", user=user, host=h, port=p))  # fmt: skip
    step("sshd", pid, f"Connection reset by invalid user {user} {host} port {p} [preauth]",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip


def root_refused(host: str) -> None:
    pid, p, h = new_pid(), port(), plain(host)
    step(
        "sshd", pid, f"ROOT LOGIN REFUSED FROM {host} port {p}", event("ssh_root_refused", user="root", host=h, port=p)
    )
    step("sshd", pid, f"Failed password for root from {host} port {p} ssh2",
         event("ssh_failed_password", user="root", host=h, port=p, method="password"))  # fmt: skip
    old = new_pid()
    step("sshd", old, f"ROOT LOGIN REFUSED FROM {host}", event("ssh_root_refused", user="root", host=h))


def tcp_wrappers(host: str) -> None:
    pid = new_pid()
    step("sshd", pid, f"refused connect from {host} ({plain(host)})", event("ssh_host_refused", host=plain(host)))
    named = new_pid()
    step("sshd", named, f"refused connect from {plain(host)}", event("ssh_host_refused", host=plain(host)))


# --- sshd: PAM ------------------------------------------------------------------------------------


def pam_errors(user: str, host: str) -> None:
    pid, h = new_pid(), plain(host)
    step("sshd", pid, f"error: PAM: Authentication failure for {user} from {host}",
         event("ssh_pam_failure", user=user, host=h))  # fmt: skip
    step("sshd", pid, f"error: PAM: authentication error for illegal user {user} from {host}",
         event("ssh_pam_failure", user=user, host=h))  # fmt: skip
    other = new_pid()
    step("sshd", other, f"error: PAM: Authentication failure for {user} from {host} via {LOCAL}",
         event("ssh_pam_failure", user=user, host=h))  # fmt: skip
    step("sshd", other, f"pam_sss(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={host} user={user}",
         event("ssh_pam_failure", user=user, host=h))  # fmt: skip
    step("sshd", other, f"pam_unix(sshd:auth): 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={host}  user={user}",
         event("ssh_pam_failure", user=user, host=h))  # fmt: skip


# --- sshd: pre-auth endings ----------------------------------------------------------------------


def endings(user: str, host: str) -> None:
    h = plain(host)
    pid, p = new_pid(), port()
    step("sshd-session", pid, f"Failed publickey for {user} from {host} port {p} ssh2: ED25519 SHA256:Zm9vYmFyYmF6cXV4",
         event("ssh_failed_publickey", user=user, host=h, port=p, method="publickey"))  # fmt: skip
    step("sshd-session", pid, "Disconnecting: Too many authentication failures [preauth]",
         event("ssh_too_many_failures", user=user, host=h, port=p))  # fmt: skip
    step("sshd-session", pid, f"Connection closed by authenticating user {user} {host} port {p} [preauth]")

    pid, p = new_pid(), port()
    step("sshd", pid, f"Failed password for {user} from {host} port {p} ssh2",
         event("ssh_failed_password", user=user, host=h, port=p, method="password"))  # fmt: skip
    step("sshd", pid, f"Disconnecting: Too many authentication failures for {user} [preauth]",
         event("ssh_too_many_failures", user=user, host=h, port=p))  # fmt: skip

    pid, p = new_pid(), port()
    step("sshd", pid, f"Disconnected from authenticating user {user} {host} port {p} [preauth]",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip

    pid, p = new_pid(), port()
    step("sshd", pid, f"Disconnecting invalid user {user} {host} port {p}: Change of username or service not allowed: ({user},ssh-connection) -> (root,ssh-connection) [preauth]",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip

    pid, p = new_pid(), port()
    step("sshd", pid, f"error: Received disconnect from {host} port {p}:3: com.jcraft.jsch.JSchException: Auth fail [preauth]",
         event("ssh_closed_preauth", host=h, port=p))  # fmt: skip
    step("sshd", pid, f"Disconnected from {host} port {p} [preauth]")

    pid, p = new_pid(), port()
    step("sshd", pid, f"Received disconnect from {host} port {p}:14: No supported authentication methods available [preauth]",
         event("ssh_closed_preauth", host=h, port=p))  # fmt: skip

    # A bare ending after a login was tried (OpenSSH 7.2-7.4 named no user there) is a failure.
    pid, p = new_pid(), port()
    step("sshd", pid, f"Failed password for {user} from {host} port {p} ssh2",
         event("ssh_failed_password", user=user, host=h, port=p, method="password"))  # fmt: skip
    step(
        "sshd",
        pid,
        f"Connection closed by {host} port {p} [preauth]",
        event("ssh_closed_preauth", user=user, host=h, port=p),
    )


def scanner(host: str) -> None:
    """Connections that tried no login: not a failure."""
    pid, p = new_pid(), port()
    step("sshd", pid, f"Connection closed by {host} port {p} [preauth]")
    pid, p = new_pid(), port()
    step("sshd-session", pid, f"Disconnected from {host} port {p} [preauth]")
    pid, p = new_pid(), port()
    step("sshd", pid, f"error: kex_exchange_identification: Connection closed by remote host")  # noqa: F541
    step("sshd", pid, f"Connection closed by {host} port {p}")


def timeouts(user: str, host: str) -> None:
    host = address(host)
    h = plain(host)
    pid, p = new_pid(), port()
    step("sshd-session", pid, f"Invalid user {user} from {host} port {p}",
         event("ssh_invalid_user", user=user, host=h, port=p))  # fmt: skip
    step("sshd", LISTENER, f"Timeout before authentication for connection from {host} to {LOCAL}, pid = {pid}",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip
    pid = new_pid()
    step("sshd", LISTENER, f"Timeout before authentication for connection from {host}, pid = {pid}",
         event("ssh_closed_preauth", host=h))  # fmt: skip
    pid, p = new_pid(), port()
    step(
        "sshd",
        pid,
        f"fatal: Timeout before authentication for {host} port {p}",
        event("ssh_closed_preauth", host=h, port=p),
    )


# --- sshd 9.8+: the listener's PerSourcePenalties and MaxStartups ------------------------------------

PENALTIES = [
    "penalty: failed authentication", "penalty: connections without attempting authentication",
    "penalty: attempted authentication by invalid user", "penalty: exceeded LoginGraceTime", "penalty: caused crash",
]  # fmt: skip


def listener(host: str) -> None:
    h = plain(address(host))
    bits = 128 if ":" in h else 32
    reason = rng.choice(PENALTIES)
    step("sshd", LISTENER, f"srclimit_penalise: ipv{6 if bits == 128 else 4}: new {h}/{bits} active penalty of 30.000 seconds for {reason}",
         event("ssh_penalty", host=h))  # fmt: skip
    step("sshd", LISTENER, f"srclimit_penalise: {h}/{bits}: activating ipv{6 if bits == 128 else 4} penalty of 35 seconds for {reason}",
         event("ssh_penalty", host=h))  # fmt: skip
    p = port()
    step(
        "sshd",
        LISTENER,
        f"drop connection #0 from [{h}]:{p} on [{LOCAL}]:22 {reason}",
        event("ssh_penalty", host=h, port=p),
    )
    p = port()
    step("sshd", LISTENER, f"drop connection #{rng.randint(10, 99)} from [{h}]:{p} on [{LOCAL}]:22 past Maxstartups",
         event("ssh_throttled", host=h, port=p))  # fmt: skip
    p = port()
    step("sshd", LISTENER, f"drop connection #{rng.randint(10, 99)} from [{h}]:{p} on [{LOCAL}]:22 Maxstartups",
         event("ssh_throttled", host=h, port=p))  # fmt: skip


def throttling_news() -> None:
    step("sshd", LISTENER, "error: beginning MaxStartups throttling", event("ssh_throttled"))
    step("sshd", LISTENER, "srclimit_penalise: 2001:db8:7::/64: activating ipv6 penalty of 40.000 seconds for penalty: failed authentication",
         event("ssh_penalty", host="2001:db8:7::/64"))  # fmt: skip
    step("sshd", LISTENER, "Maxstartups logging rate-limited: additional 14 connections dropped")
    step("sshd", LISTENER, "exited MaxStartups throttling after 00:02:11, 37 connections dropped")


# --- sshd: logins that worked ---------------------------------------------------------------------------


def login(user: str, host: str, method: str, program: str = "sshd-session") -> None:
    pid, p, h = new_pid(), port(), plain(host)
    extra = ": ED25519 SHA256:c2VjbW9uLXRlc3Qta2V5" if method == "publickey" else ""
    step(program, pid, f"Accepted {method} for {user} from {host} port {p} ssh2{extra}",
         event("ssh_accepted", user=user, host=h, port=p, method=method))  # fmt: skip
    step(program, pid, f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by {user}(uid=0)")
    step(program, pid, f"Received disconnect from {host} port {p}:11: disconnected by user")
    step(
        program,
        pid,
        f"Disconnected from user {user} {host} port {p}",
        event("ssh_disconnected", user=user, host=h, port=p),
    )
    step(program, pid, f"pam_unix(sshd:session): session closed for user {user}")


def repeated(user: str, host: str) -> None:
    pid, p, h = new_pid(), port(), plain(host)
    step("sshd", pid, f"message repeated 2 times: [ Failed password for {user} from {host} port {p} ssh2]",
         event("ssh_failed_password", user=user, host=h, port=p, method="password"))  # fmt: skip


def early_auth(user: str, host: str) -> None:
    """OpenSSH 10: the pre-auth process is sshd-auth."""
    pid, p, h = new_pid(), port(), plain(host)
    step("sshd-auth", pid, f"Connection closed by invalid user {user} {host} port {p} [preauth]",
         event("ssh_closed_preauth", user=user, host=h, port=p))  # fmt: skip


# --- su, runuser --------------------------------------------------------------------------------------------


def su(user: str, uid: int, target: str, tuid: int, tty: str, service: str = "su") -> None:
    pid = new_pid()
    step("su", pid, f"(to {target}) {user} on {tty}",
         event("su_opened", user=user, target_user=target, tty=None if tty == "none" else tty))  # fmt: skip
    step("su", pid, f"pam_unix({service}:session): session opened for user {target}(uid={tuid}) by {user}(uid={uid})")
    step(
        "su",
        pid,
        f"pam_unix({service}:session): session closed for user {target}",
        event("su_closed", target_user=target),
    )


def su_pam_only(user: str, uid: int, target: str, tuid: int) -> None:
    pid = new_pid()
    step("su", pid, f"pam_unix(su-l:session): session opened for user {target}(uid={tuid}) by {user}(uid={uid})",
         event("su_opened", user=user, target_user=target))  # fmt: skip


def su_failed(user: str, uid: int, target: str, tty: str) -> None:
    pid = new_pid()
    step("su", pid, f"pam_unix(su:auth): authentication failure; logname={user} uid={uid} euid=0 tty=/dev/{tty} ruser={user} rhost=  user={target}",
         event("su_failed", user=user, target_user=target))  # fmt: skip
    step("su", pid, f"FAILED SU (to {target}) {user} on {tty}")
    alone = new_pid()
    step(
        "su",
        alone,
        f"FAILED SU (to {target}) {user} on {tty}",
        event("su_failed", user=user, target_user=target, tty=tty),
    )


def runuser(target: str, tuid: int, login: str) -> None:
    pid = new_pid()
    service = rng.choice(["runuser", "runuser-l"])
    by = f"{login}(uid=0)" if login else "(uid=0)"
    step("runuser", pid, f"pam_unix({service}:session): session opened for user {target}(uid={tuid}) by {by}",
         event("su_opened", user=login or None, target_user=target))  # fmt: skip
    step(
        "runuser",
        pid,
        f"pam_unix({service}:session): session closed for user {target}",
        event("su_closed", target_user=target),
    )


# --- sudo ------------------------------------------------------------------------------------------------------


def sudo(user: str, tty: str | None, command: str, target: str = "root", extra: str = "") -> None:
    pid = new_pid()
    tty_part = f"TTY={tty} ; " if tty else ""
    step("sudo", pid, f"{user:>8} : {extra}{tty_part}PWD=/home/{user} ; USER={target} ; COMMAND={command}",
         event("sudo_command", user=user, target_user=target, command=command, tty=tty))  # fmt: skip
    step("sudo", pid, f"pam_unix(sudo:session): session opened for user {target}(uid=0) by {user}(uid=1000)")
    step("sudo", pid, f"pam_unix(sudo:session): session closed for user {target}")


def sudo_long(user: str) -> None:
    pid = new_pid()
    head = "/usr/bin/rsync -a --delete /srv/www/releases/2026-11-29/ /srv/www/current/"
    step("sudo", pid, f"{user:>8} : TTY=pts/4 ; PWD=/srv ; USER=root ; COMMAND={head}",
         event("sudo_command", user=user, target_user="root", command=head, tty="pts/4"))  # fmt: skip
    step(
        "sudo", pid, f"{user:>8} : (command continued) --exclude=.git --exclude=node_modules --chown=www-data:www-data"
    )


def sudo_refused(user: str, reason: str, command: str, tty: str = "pts/1") -> None:
    pid = new_pid()
    step("sudo", pid, f"{user:>8} : {reason} ; TTY={tty} ; PWD=/home/{user} ; USER=root ; COMMAND={command}",
         event("sudo_failure", user=user, target_user="root", command=command, tty=tty))  # fmt: skip


def sudo_bad_password(user: str, tries: int, command: str) -> None:
    pid = new_pid()
    step("sudo", pid, f"pam_unix(sudo:auth): authentication failure; logname={user} uid=1000 euid=0 tty=/dev/pts/0 ruser={user} rhost=  user={user}",
         event("sudo_failure", user=user))  # fmt: skip
    attempts = f"{tries} incorrect password attempt{'s' if tries != 1 else ''}"
    step("sudo", pid, f"{user:>8} : {attempts} ; TTY=pts/0 ; PWD=/home/{user} ; USER=root ; COMMAND={command}")


def sudo_rs(user: str, command: str, tty: str | None) -> None:
    pid = new_pid()
    tty_info = f"TTY={tty} ;" if tty else ""
    step("sudo", pid, f"{user} : {tty_info} PWD=/home/{user} ; USER=root ; COMMAND={command}",
         event("sudo_command", user=user, target_user="root", command=command, tty=tty))  # fmt: skip


# --- other programs and junk -----------------------------------------------------------------------------------


def forgeries() -> None:
    """Lines whose journal record shows another writer than the program they name (syslog text cannot)."""
    pid = new_pid()
    line = "Accepted password for root from 203.0.113.200 port 40404 ssh2"
    step("sshd", pid, line, event("ssh_accepted", user="root", host="203.0.113.200", port=40404, method="password"),
         journal={"trusted": {"_UID": "1000", "_COMM": "logger", "_EXE": "/usr/bin/logger"},
                  "event": event("forged_auth_line", user="uid=1000", command="/usr/bin/logger", process="sshd", pid=pid)})  # fmt: skip
    pid = new_pid()
    step("su", pid, "(to root) alice on pts/5", event("su_opened", user="alice", target_user="root", tty="pts/5"),
         journal={"trusted": {"_UID": "0", "_COMM": "python3", "_EXE": "/usr/bin/python3.12"},
                  "event": event("forged_auth_line", user="uid=0", command="/usr/bin/python3.12", process="su", pid=pid)})  # fmt: skip
    pid = new_pid()
    step("sudo", pid, "hello from eve", unknown=True,
         journal={"trusted": {"_UID": "1001", "_COMM": "logger", "_EXE": "/usr/bin/logger"},
                  "event": event("forged_auth_line", user="uid=1001", command="/usr/bin/logger", process="sudo", pid=pid)})  # fmt: skip
    # After login OpenSSH's session process runs as the user and logs its own end: believed when
    # the uid is that user's (nobody is 65534 wherever the corpus is read).
    pid = new_pid()
    step("sshd-session", pid, "Disconnected from user nobody 198.51.100.23 port 50505",
         event("ssh_disconnected", user="nobody", host="198.51.100.23", port=50505),
         journal={"trusted": {"_UID": "65534"}, "event": event("ssh_disconnected", user="nobody", host="198.51.100.23",
                  port=50505, process="sshd-session", pid=pid)})  # fmt: skip
    # The same from a user whose name is not the one disconnected: not believed.
    pid = new_pid()
    step("sshd-session", pid, "Disconnected from user root 198.51.100.24 port 50506",
         event("ssh_disconnected", user="root", host="198.51.100.24", port=50506),
         journal={"trusted": {"_UID": "65534"}, "event": event("forged_auth_line", user="uid=65534",
                  command="/usr/lib/openssh/sshd-session", process="sshd-session", pid=pid)})  # fmt: skip


def others() -> None:
    step("CRON", new_pid(), "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
    step("systemd-logind", 655, "New session 42 of user alice.")
    step("sshd-keygen", new_pid(), "Failed password for root from 203.0.113.4 port 22 ssh2")
    step("polkitd", 801, "Registered Authentication Agent for unix-process:2101:1 (system bus name :1.70)")
    # Lines of watched programs that are no login attempt and no shape SecMon knows.
    step("sshd", LISTENER, "error: Bind to port 22 on 0.0.0.0 failed: Address already in use.", unknown=True)
    step("sshd", new_pid(), "error: Received disconnect: unexpected message", unknown=True)
    step("sudo", new_pid(), "pam_unix(sudo:auth): conversation failed", unknown=True)
    step("su", new_pid(), "pam_unix(su:auth): auth could not identify password for [alice]", unknown=True)
    # PAM modules' session noise, known and quiet.
    step("sshd", new_pid(), "pam_systemd(sshd:session): Failed to connect to system bus: No such file or directory")
    step("su", new_pid(), "pam_limits(su:session): Could not set limit for 'nofile' to soft=1024, hard=32768")
    step("sudo", new_pid(), "pam_env(sudo:session): deprecated reading of user environment enabled")


def build() -> None:
    for i in range(14):
        host, user = HOSTS[i % len(HOSTS)], USERS[i % len(USERS)]
        brute_force(user, host)
        invalid_user(USERS[(i + 3) % len(USERS)], HOSTS[(i + 1) % len(HOSTS)], "sshd-session" if i % 2 else "sshd")
        endings(user, host)
        if i % 2 == 0:
            legacy_invalid_user(USERS[(i + 5) % len(USERS)], host)
            ssh1_and_ruser(user, HOSTS[(i + 2) % len(HOSTS)])
            refused(USERS[(i + 1) % len(USERS)], host, REFUSALS[(i // 2) % len(REFUSALS)],
                    "scanner.example.net" if i % 4 == 0 else None)  # fmt: skip
            scanner(HOSTS[(i + 4) % len(HOSTS)])
            login(USERS[(i + 6) % len(USERS)], HOSTS[(i + 5) % len(HOSTS)],
                  ["publickey", "password", "keyboard-interactive/pam"][i % 3], "sshd" if i % 4 else "sshd-session")  # fmt: skip
        if i % 3 == 0:
            pam_errors(user, host)
            timeouts(USERS[(i + 2) % len(USERS)], host)
            listener(host)
            tcp_wrappers(host)
            root_refused(host)
            locked(USERS[(i + 4) % len(USERS)], host)
            repeated(user, host)
            early_auth(user, host)
    for name in HOSTILE:
        invalid_user(name, "203.0.113.66")
    throttling_news()
    forgeries()
    others()
    su("alice", 1000, "root", 0, "pts/0")
    su("root", 0, "nobody", 65534, "none")
    su("bob", 1001, "postgres", 114, "pts/3", "su-l")
    su_pam_only("alice", 1000, "postgres", 114)
    su_failed("mallory", 1003, "root", "pts/2")
    runuser("nobody", 65534, "")
    runuser("www-data", 33, "root")
    sudo("alice", "pts/0", "/usr/bin/id")
    sudo("deploy", None, "/usr/bin/systemctl restart nginx.service")
    sudo("alice", "pts/0", "/usr/bin/tail -n 50 /var/log/syslog", "root",
         "HOST=web1 ; ")  # fmt: skip
    pid = new_pid()
    full = "/usr/bin/env"
    step("sudo", pid, f"   alice : HOST=web1 ; TTY=pts/1 ; CHROOT=/srv/jail ; PWD=/ ; USER=root ; GROUP=adm ; TSID=00000A ; ENV=LANG=C TZ=UTC ; COMMAND={full}",
         event("sudo_command", user="alice", target_user="root", command=full, tty="pts/1"))  # fmt: skip
    sudo("carol", "pts/7", "/bin/echo a ; USER=evil", "postgres")
    sudo_long("deploy")
    sudo_refused("eve", "user NOT in sudoers", "/bin/bash")
    sudo_refused("alice", "command not allowed", "/usr/bin/passwd root")
    sudo_refused("bob", "user NOT authorized on host", "/usr/sbin/reboot", "pts/9")
    sudo_refused("bob", "1 incorrect password attempt", "/usr/bin/apt update")
    sudo_bad_password("alice", 3, "/usr/bin/apt update")
    sudo_rs("alice", "/usr/bin/id", "pts/0")
    sudo_rs("deploy", "/usr/bin/whoami", None)


HEADERS = ["classic", "iso", "rfc5424", "solaris", "pri"]


def syslog_text(style: str, when: datetime, program: str, pid: int, message: str) -> str:
    classic = when.strftime("%b %e %H:%M:%S")
    if style == "classic":
        return f"{classic} web1 {program}[{pid}]: {message}"
    if style == "iso":
        return f"{when.isoformat(timespec='microseconds')} web1 {program}[{pid}]: {message}"
    if style == "rfc5424":
        local = when.astimezone(timezone_minus_4()).isoformat(timespec="milliseconds")
        return f"<38>1 {local} web1 {program} {pid} - - {message}"
    if style == "solaris":
        return f"{classic} web1 {program}[{pid}]: [ID 800047 auth.info] {message}"
    return f"<86>{classic} web1 {program}[{pid}]: {message}"


def timezone_minus_4():
    from datetime import timezone

    return timezone(timedelta(hours=-4))


def journal_record(when: datetime, program: str, pid: int, message: str, seq: int, trusted: dict | None) -> str:
    micros = int(when.timestamp() * 1_000_000)
    exe = {"sshd": "/usr/sbin/sshd", "sshd-session": "/usr/lib/openssh/sshd-session", "su": "/usr/bin/su",
           "sudo": "/usr/bin/sudo", "runuser": "/usr/sbin/runuser"}.get(program, f"/usr/bin/{program}")  # fmt: skip
    record = {
        "__CURSOR": f"s=5b1c;i={seq:x};b=9e2f;m={seq * 7:x};t={micros:x};x={seq * 13:x}",
        "__REALTIME_TIMESTAMP": str(micros),
        "__MONOTONIC_TIMESTAMP": str(8_000_000 + seq * 1000),
        "_BOOT_ID": "9e2f0c4ad3b94a63b1f3b1d2a0e5c6f7",
        "_TRANSPORT": "syslog",
        "PRIORITY": "6",
        "SYSLOG_FACILITY": "10",
        "SYSLOG_IDENTIFIER": program,
        "SYSLOG_PID": str(pid),
        "_PID": str(pid),
        "_UID": "0",
        "_GID": "0",
        "_COMM": program[:15],
        "_EXE": exe,
        "_HOSTNAME": "web1",
        "MESSAGE": message,
    }
    record.update(trusted or {})
    return json.dumps(record, ensure_ascii=False)


# (syslog text, journal JSON, the program when SecMon reads the line but knows no shape of it)
GARBAGE: list[tuple[str, str, str | None]] = [
    ("", "", None),
    ("\x01\x02\x7f\x1b[31m control characters", "\x01\x02\x1b[31m", None),  # NUL is in test_collectors: git would call this file binary
    ("Nov 29", "{", None),
    ("Nov 29 02:09:01 web1 sshd[", '{"MESSAGE": "Failed password for root from 203.0.113.4 port 22 ssh2", "SYSLOG_IDENTIFIER": 5}', None),
    ("Nov 29 02:09:01 web1 sshd[12]", "[1, 2, 3]", None),
    ("2026-11-29T02:09:01.000000+00:00 web1 sshd[12]:", '{"SYSLOG_IDENTIFIER": "sshd", "_PID": "12"}', None),
    ("<38>1 2026-11-29T02:09:01Z web1 sshd 12 - [unterminated", '{"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": ["x", 1]}', None),
    ("Zzz 99 99:99:99 web1 sshd[1]: Accepted", '{"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "Accepted", "_UID": "0", "_EXE": "/usr/sbin/sshd"}', "sshd"),
    ("Nov 29 02:09:01 web1 sshd[1]: Failed password for root from 203.0.113.4 po",
     '{"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "Failed password for root from 203.0.113.4 po", "_UID": "0", "_EXE": "/usr/sbin/sshd"}', "sshd"),
    ("Nov 29 02:09:01 web1 su",
     '{"SYSLOG_IDENTIFIER": "sshd", "MESSAGE": "Failed password for root from 203.0.113.4 port 22 ssh2", "__REALTIME', None),
    ("sshd[1]: Failed password for root from 203.0.113.4 port 22 ssh2", '"just a string"', None),
    ("Nov 29 02:09:01 web1 sshd[99999999999999999999]: Failed password for root from",
     '{"SYSLOG_IDENTIFIER": "sshd", "_PID": "99999999999999999999", "_UID": "0", "_EXE": "/usr/sbin/sshd", "MESSAGE": "Failed password for root from"}', "sshd"),
    ("Nov 29 02:09:01 web1 sshd[1]: Failed password for root from " + "A" * 9000, '{"MESSAGE": "' + "A" * 9000 + '"}', None),
]  # fmt: skip


def main() -> None:
    build()
    log_lines, journal_lines, expected = [], [], []
    when = START
    junk = iter(GARBAGE)
    for index, (program, pid, message, event_fields, unknown, journal) in enumerate(steps):
        if index % 37 == 5:
            bad = next(junk, None)
            if bad is not None:
                log_lines.append(bad[0])
                journal_lines.append(bad[1])
                expected.append({"event": None, "time": None, "header": "junk", "unmatched": bad[2]})
        when += timedelta(milliseconds=rng.randint(40, 2500))
        style = HEADERS[index % len(HEADERS)]
        log_lines.append(syslog_text(style, when, program, pid, message))
        journal_lines.append(journal_record(when, program, pid, message, index + 1, journal and journal["trusted"]))
        row = {"event": event_fields, "time": round(when.timestamp(), 6), "header": style}
        if journal is not None and journal["event"] != event_fields:
            row["journal_event"] = journal["event"]
        expected.append({**row, "unmatched": program if unknown else None})
    for bad in junk:
        log_lines.append(bad[0])
        journal_lines.append(bad[1])
        expected.append({"event": None, "time": None, "header": "junk", "unmatched": bad[2]})
    (HERE / "corpus.log").write_text("\n".join(log_lines) + "\n")
    (HERE / "corpus.jsonl").write_text("\n".join(journal_lines) + "\n")
    rows = ",\n".join(json.dumps(row, ensure_ascii=False) for row in expected)
    (HERE / "corpus.expected.json").write_text(f"[\n{rows}\n]\n")
    events = sum(e["event"] is not None for e in expected)
    print(f"{len(expected)} lines, {events} events")


if __name__ == "__main__":
    main()
