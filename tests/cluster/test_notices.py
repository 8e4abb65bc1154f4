"""Notices in a cluster of hubs: every hub tells its subscribers about every node, from the stream."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime

from conftest import Daemon, secmon_argv, wait_until

from secmon.protocol import notices


def subscriber(group, hub: str) -> Daemon:
    daemon = Daemon(secmon_argv("subscribe", "--json", "--since", "0"), group.envs[hub], f"subscribe {hub}")
    group.daemons.append(daemon)
    return daemon


def seen(daemon: Daemon, kind: str) -> list[dict]:
    return [
        update
        for line in list(daemon.lines)
        if line.startswith("{") and (update := json.loads(line)).get("type") == "notice" and update["kind"] == kind
    ]


def auth_line(user: str) -> str:
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    return f"{stamp} vm sshd[4242]: Invalid user {user} from 192.0.2.7 port 50000\n"


def test_every_hub_tells_node_down_and_back_and_a_hub_restarted_does_not_repeat_them(hub_group, workdir):
    for name in ("a", "b"):
        hub_group.start_hub(name, NODE_DOWN_AFTER="1", DISCONNECT_GRACE_PERIOD="60")
    watchers = {name: subscriber(hub_group, name) for name in ("a", "b")}
    state = {"SECMON_STATE_DIR": str(workdir / "n1-state")}  # its read position survives the kill
    node = hub_group.start_node("a", "n1", **state)
    hub_group.wait_following("b", "n1")

    node.signal(signal.SIGKILL)
    node.process.wait(10)
    hub_group.daemons.remove(node)
    for watcher in watchers.values():  # the hub that held it and the other alike
        wait_until(lambda w=watcher: seen(w, notices.NODE_DOWN), timeout=6, what="node_down on every hub")
    log = hub_group.logs["n1"]
    with log.open("a") as f:
        f.writelines(auth_line(f"away{i}") for i in range(2))
    time.sleep(0.05)  # the lines are older than the rejoin by more than clock resolution
    node = hub_group.start_node("b", "n1", **state)  # it comes back through the other hub
    for watcher in watchers.values():
        wait_until(lambda w=watcher: seen(w, notices.NODE_BACK), what="node_back on every hub")
        (down,) = seen(watcher, notices.NODE_DOWN)
        (back,) = seen(watcher, notices.NODE_BACK)
        assert down["node"]["hostname"] == back["node"]["hostname"] == "n1"
        assert back["outage"]["events"] == 2 and back["outage"]["since"] == down["outage"]["since"]

    log.unlink()  # its collector fails: told once, by every hub
    for watcher in watchers.values():
        wait_until(lambda w=watcher: seen(w, notices.COLLECTOR_FAILED), what="collector_failed on every hub")
        assert seen(watcher, notices.COLLECTOR_FAILED)[0]["collector"]["message"] == f"waiting for {log} to appear"

    # gone again, said down; a hub that restarts then catches up without saying it again
    node.signal(signal.SIGKILL)
    node.process.wait(10)
    hub_group.daemons.remove(node)
    wait_until(lambda: len(seen(watchers["a"], notices.NODE_DOWN)) == 2, timeout=6, what="the second node_down")
    hub_group.hubs["b"].stop()
    hub_group.daemons.remove(hub_group.hubs["b"])
    hub_group.start_hub("b", NODE_DOWN_AFTER="1", DISCONNECT_GRACE_PERIOD="60")
    again = subscriber(hub_group, "b")
    started = time.monotonic()
    wait_until(lambda: any('"n1"' in line for line in again.lines), what="the restarted hub to show n1")
    wait_until(lambda: time.monotonic() - started > 2.5, what="NODE_DOWN_AFTER and sweeps to pass")
    assert seen(again, notices.NODE_DOWN) == [] and seen(again, notices.COLLECTOR_FAILED) == []
