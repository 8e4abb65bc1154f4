"""A node killed and started again delivers every auth line logged meanwhile, once.

Real hub, node and `secmon subscribe` processes; the node keeps its state in
SECMON_STATE_DIR and is stopped with SIGKILL, in one test in the middle of
reading a burst. While it is down its log grows and is rotated (the old file
renamed and still written to, as by a syslog daemon that has not reopened it
yet, and a new file created); the journal variant writes real journal files.
The subscriber must see every line exactly once, in order, and none from
before the node first started.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

from conftest import WAIT, Daemon, secmon_argv, wait_until
from test_journal import journal_dir, sshd_entry, write_journal  # noqa: F401 - journal_dir is a fixture

HOST = "keeper"


def line(i: int) -> str:
    return f"2026-11-29T02:09:01+00:00 vm sshd[{1000 + i}]: Invalid user ev{i} from 192.0.2.1 port {1024 + i}\n"


def append(path: Path, numbers: range) -> None:
    with path.open("a") as f:
        f.writelines(line(i) for i in numbers)


def subscriber(cluster) -> Daemon:
    daemon = Daemon(secmon_argv("subscribe", "--since", "0", "--json"), cluster.env, "subscribe")
    cluster.daemons.append(daemon)
    daemon.wait_for(r'"type": "node"')
    return daemon


def users_seen(daemon: Daemon) -> list[str]:
    updates = [json.loads(text) for text in list(daemon.lines) if text.startswith("{")]
    return [u["event"]["user"] for u in updates if u["type"] == "auth"]


def kill(node: Daemon) -> None:
    node.signal(signal.SIGKILL)
    node.process.wait(WAIT)


def test_killed_node_delivers_lines_appended_and_rotated_while_down_exactly_once(cluster, hub, workdir):
    log = workdir / "auth.log"
    log.write_text(line(-1))  # before the node first started: never reported
    state = {"SECMON_STATE_DIR": str(workdir / "node-state")}
    node = cluster.start_node("auth", hostname=HOST, **state)
    cluster.wait_auth_ok(HOST)
    sub = subscriber(cluster)
    append(log, range(0, 3))
    wait_until(lambda: users_seen(sub)[-1:] == ["ev2"], what="the first lines")

    append(log, range(3, 5003))  # a burst the node is still reading when it dies
    wait_until(lambda: len(users_seen(sub)) > 3, what="the burst to start arriving")
    kill(node)
    append(log, range(5003, 5010))
    log.rename(workdir / "auth.log.1")
    append(workdir / "auth.log.1", range(5010, 5012))  # the logger had the old file open still
    append(log, range(5012, 5020))

    node = cluster.start_node("auth", hostname=HOST, **state)
    node.wait_for(r"auth\.log was rotated to \S*auth\.log\.1; reading its rest first")
    append(log, range(5020, 5021))  # after the restart, live
    wait_until(lambda: "ev5020" in users_seen(sub), timeout=60, what="the live line after the restart")
    assert users_seen(sub) == [f"ev{i}" for i in range(5021)]  # each once, in order, none from before


def test_a_node_without_state_starts_at_the_end_after_a_restart(cluster, hub, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    node = cluster.start_node("auth", hostname=HOST)
    cluster.wait_auth_ok(HOST)
    sub = subscriber(cluster)
    append(log, range(0, 1))
    wait_until(lambda: users_seen(sub) == ["ev0"], what="the first line")
    kill(node)
    append(log, range(1, 3))  # logged while down: a node that keeps nothing cannot know
    node = cluster.start_node("auth", hostname=HOST)
    cluster.wait_auth_ok(HOST)
    append(log, range(3, 4))
    wait_until(lambda: "ev3" in users_seen(sub), what="the line after the restart")
    assert users_seen(sub) == ["ev0", "ev3"]


def entry(i: int) -> dict[str, str]:
    return sshd_entry(f"Invalid user ev{i} from 192.0.2.1 port {1024 + i}")


def test_killed_node_delivers_journal_entries_written_while_down_exactly_once(cluster, hub, workdir, journal_dir):  # noqa: F811
    write_journal(journal_dir, "before", [entry(-1)])  # before the node first started: never reported
    state = {"SECMON_STATE_DIR": str(workdir / "node-state"), "AUTH_LOG": f"journal:{journal_dir}"}
    node = cluster.start_node("auth", hostname=HOST, **state)
    cluster.wait_auth_ok(HOST)
    sub = subscriber(cluster)
    write_journal(journal_dir, "first", [entry(0), entry(1)])
    wait_until(lambda: users_seen(sub)[-1:] == ["ev1"], what="the first entries")

    kill(node)
    write_journal(journal_dir, "down", [entry(i) for i in range(2, 6)])
    node = cluster.start_node("auth", hostname=HOST, **state)
    node.wait_for(rf"resuming the journal in {journal_dir} where this node left it")
    write_journal(journal_dir, "live", [entry(6)])
    wait_until(lambda: "ev6" in users_seen(sub), timeout=30, what="the live entry after the restart")
    assert users_seen(sub) == [f"ev{i}" for i in range(7)]
