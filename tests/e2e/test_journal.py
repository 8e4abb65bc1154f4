"""The node reading a real journal with the real journalctl (AUTH_LOG=journal:DIR).

The journal files are written by Debian's systemd-journal-remote from the
journal export format, trusted fields (_UID, _EXE, _COMM) included, so the
entries are exactly what journald would hold for the programs named. A line
that calls itself sshd but was written by logger as uid 1000 must come out as
a forged-line event; the real sshd's line as a login.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Daemon, require_root_tools, secmon_argv, wait_until

JOURNAL_REMOTE = next(
    (p for p in ("/usr/lib/systemd/systemd-journal-remote", "/lib/systemd/systemd-journal-remote") if Path(p).exists()),
    None,
)


@pytest.fixture
def journal_dir(workdir: Path) -> Path:
    if JOURNAL_REMOTE is None or shutil.which("journalctl") is None:
        require_root_tools("systemd-journal-remote (apt install systemd-journal-remote)", "journalctl")
    directory = workdir / "journal"
    directory.mkdir()
    return directory


_sequence = iter(range(1, 10**6))


def write_journal(directory: Path, name: str, entries: list[dict[str, str]]) -> None:
    """Entries into ``directory/name.journal`` through systemd-journal-remote, as a log host would."""
    now = int(time.time() * 1e6)
    blocks = []
    for entry in entries:
        n = next(_sequence)
        fields = {
            "__REALTIME_TIMESTAMP": str(now + n),
            "__MONOTONIC_TIMESTAMP": str(n),
            "_BOOT_ID": "0123456789abcdef0123456789abcdef",
            "_HOSTNAME": "web-1",
            **entry,
        }
        blocks.append("".join(f"{key}={value}\n" for key, value in fields.items()))
    export = directory.parent / f"{name}.export"
    export.write_text("\n".join(blocks) + "\n")
    subprocess.run(
        [JOURNAL_REMOTE, f"--output={directory / name}.journal", str(export)], check=True, capture_output=True
    )


def sshd_entry(message: str, **fields: str) -> dict[str, str]:
    return {
        "MESSAGE": message,
        "SYSLOG_IDENTIFIER": "sshd",
        "SYSLOG_PID": "77",
        "_PID": "77",
        "_UID": "0",
        "_COMM": "sshd",
        "_EXE": "/usr/sbin/sshd",
        **fields,
    }


def test_real_journal_forged_and_real_lines(cluster, hub, journal_dir):
    write_journal(journal_dir, "old", [sshd_entry("Accepted password for old from 192.0.2.1 port 1 ssh2")])
    cluster.start_node("auth", hostname="web-1", AUTH_LOG=f"journal:{journal_dir}")
    cluster.wait_auth_ok("web-1")
    subscriber = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "subscribe")
    cluster.daemons.append(subscriber)
    subscriber.wait_for(r'"type": "node"')

    forged = sshd_entry(
        "Accepted password for root from 203.0.113.9 port 1 ssh2",
        _UID="1000",
        _COMM="logger",
        _EXE="/usr/bin/logger",
        _PID="4242",
        SYSLOG_PID="4242",
    )
    real = sshd_entry("Accepted publickey for alice from 192.0.2.4 port 5151 ssh2")
    write_journal(journal_dir, "new", [forged, real])

    events = []
    for kind in ("forged_auth_line", "ssh_accepted"):
        line = subscriber.wait_for(rf'"kind": "{kind}"')
        events.append(json.loads(line.string)["event"])
    forged_event, login = events
    assert (forged_event["user"], forged_event["command"], forged_event["pid"]) == ("uid=1000", "/usr/bin/logger", 4242)
    assert forged_event["failure"] is True and forged_event["host"] is None
    assert (login["user"], login["host"], login["port"], login["pid"]) == ("alice", "192.0.2.4", 5151, 77)
    assert subscriber.count(r'"user": "old"') == 0  # a monitor reports from now on


def test_a_missing_journal_directory_is_an_error_not_ok(cluster, hub, workdir):
    if shutil.which("journalctl") is None:
        require_root_tools("journalctl (apt install systemd)")
    missing = workdir / "no-such-journal"
    cluster.start_node("auth", hostname="web-1", AUTH_LOG=f"journal:{missing}")

    def auth_error() -> str:
        result = cluster.cli("web-1", "--json")
        state = json.loads(result.stdout)["auth"] if result.returncode == 0 else None
        return state["error"] if isinstance(state, dict) and "journal" in state["error"] else ""

    assert str(missing) in wait_until(auth_error, what="the auth source's error")
