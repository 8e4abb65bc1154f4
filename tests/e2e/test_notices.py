"""Notices and the command audit with real hub and node processes: a node killed and restarted,
a collector failing and fixed, commands from clients with and without on_behalf, a hub restart."""

from __future__ import annotations

import json
import math
import os
import pwd
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from conftest import Daemon, secmon_argv, wait_until

from secmon.client import HubClient
from secmon.errors import BadQuery, UnknownNode
from secmon.protocol import messages as m
from secmon.protocol import notices


def subscriber(cluster, *args: str) -> Daemon:
    """`secmon subscribe --json` as a user runs it; from the start of the ring unless ``args`` say otherwise."""
    daemon = Daemon(secmon_argv("subscribe", "--json", *(args or ("--since", "0"))), cluster.env, "subscribe")
    cluster.daemons.append(daemon)
    return daemon


def seen(daemon: Daemon, kind: str) -> list[dict]:
    """The notices of ``kind`` the subscriber printed so far."""
    found = []
    for line in list(daemon.lines):
        if line.startswith("{"):
            update = json.loads(line)
            if update.get("type") == "notice" and update["kind"] == kind:
                found.append(update)
    return found


def connected_update(daemon: Daemon, hostname: str) -> int:
    """How many "connected" node updates of ``hostname`` the subscriber printed."""
    return sum(
        1
        for line in list(daemon.lines)
        if line.startswith("{")
        and (u := json.loads(line)).get("type") == "node"
        and u["node"]["hostname"] == hostname
        and "connected" in u["changed"]
    )


def auth_line(user: str) -> str:
    stamp = datetime.now(UTC).isoformat(timespec="microseconds")
    return f"{stamp} vm sshd[4242]: Invalid user {user} from 192.0.2.7 port 50000\n"


def test_a_killed_node_gives_node_down_in_time_and_node_back_with_what_it_wrote_away(cluster, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    cluster.start_hub(NODE_DOWN_AFTER="1", DISCONNECT_GRACE_PERIOD="60")
    watcher = subscriber(cluster)
    node_env = {"SECMON_STATE_DIR": str(workdir / "node-state")}  # keeps its read position across the kill
    node = cluster.start_node("auth", "--reconnect", hostname="down-a", **node_env)
    cluster.wait_auth_ok("down-a")
    wait_until(lambda: connected_update(watcher, "down-a") >= 1, what="the subscriber to see the node")

    killed = time.monotonic()
    node.signal(signal.SIGKILL)
    node.process.wait(10)
    cluster.daemons.remove(node)
    wait_until(lambda: seen(watcher, notices.NODE_DOWN), timeout=1 + 5, what="node_down within NODE_DOWN_AFTER + 5 s")
    print(f"node_down {time.monotonic() - killed:.2f} s after SIGKILL (NODE_DOWN_AFTER=1)")
    (down,) = seen(watcher, notices.NODE_DOWN)
    assert down["node"]["hostname"] == "down-a" and down["severity"] == notices.CRITICAL
    assert down["outage"]["down_after"] == 1 and down["outage"]["away"] is None

    with log.open("a") as f:  # written while the node is away: it reads them when it is back
        f.writelines(auth_line(f"away{i}") for i in range(3))
    time.sleep(0.05)  # the lines are older than the rejoin by more than clock resolution
    restarted = time.monotonic()
    cluster.start_node("auth", "--reconnect", hostname="down-a", **node_env)
    wait_until(lambda: seen(watcher, notices.NODE_BACK), what="node_back")
    (back,) = seen(watcher, notices.NODE_BACK)
    assert back["node"]["hostname"] == "down-a" and back["node"]["serial"] == down["node"]["serial"]
    assert back["outage"]["events"] == 3
    assert restarted - killed - 0.5 <= back["outage"]["away"] <= time.monotonic() - killed + 0.5
    assert back["outage"]["since"] == down["outage"]["since"]
    with log.open("a") as f:
        f.write(auth_line("after"))  # after the rejoin: not counted, and no second notice
    wait_until(lambda: any('"after"' in line for line in watcher.lines), what="the event after the rejoin")
    assert len(seen(watcher, notices.NODE_DOWN)) == 1 and len(seen(watcher, notices.NODE_BACK)) == 1


def test_a_node_back_within_node_down_after_gives_no_notice(cluster, workdir):
    (workdir / "auth.log").write_text("")
    hub = cluster.start_hub(NODE_DOWN_AFTER="4", DISCONNECT_GRACE_PERIOD="60")
    watcher = subscriber(cluster)
    node = cluster.start_node("auth", "--reconnect", hostname="blip")
    wait_until(lambda: connected_update(watcher, "blip") >= 1, what="the node")
    node.signal(signal.SIGKILL)
    killed = time.monotonic()
    node.process.wait(10)
    cluster.daemons.remove(node)
    cluster.start_node("auth", "--reconnect", hostname="blip")
    wait_until(lambda: connected_update(watcher, "blip") >= 3, what="the node gone and back")  # up, down, up
    assert time.monotonic() - killed < 4, "the node took longer than NODE_DOWN_AFTER to come back"
    # past NODE_DOWN_AFTER since it left, with sweeps every half second: a node_down would be out
    wait_until(lambda: time.monotonic() - killed > 5, what="NODE_DOWN_AFTER and a sweep to pass")
    assert not seen(watcher, notices.NODE_DOWN) and not seen(watcher, notices.NODE_BACK)
    assert hub.count(r"is down|is back") == 0


def node_auth(cluster, hostname: str) -> str:
    """The node's auth attribute as the hub shows it: "ok" or the error text."""
    result = cluster.cli(hostname, "--json")
    if result.returncode != 0:
        return ""
    auth = json.loads(result.stdout)["auth"]
    return auth if isinstance(auth, str) else auth["error"]


def test_a_failing_collector_is_one_notice_per_change_not_per_retry(cluster, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    cluster.start_hub()
    watcher = subscriber(cluster)
    cluster.start_node("auth", hostname="coll-a", SECMON_FOLLOW_INTERVAL="0.02")
    cluster.wait_auth_ok("coll-a")

    log.unlink()  # the auth source is gone ...
    wait_until(lambda: node_auth(cluster, "coll-a").startswith("waiting for"), what="the node to say so")
    log.mkdir()  # ... then unreadable (a directory where the log was): another text, still failing
    wait_until(lambda: "Is a directory" in node_auth(cluster, "coll-a"), what="the unreadable source")
    wait_until(lambda: len(seen(watcher, notices.COLLECTOR_FAILED)) >= 1, what="collector_failed")
    log.rmdir()
    log.write_text("")  # fixed
    wait_until(lambda: seen(watcher, notices.COLLECTOR_OK), what="collector_ok")
    (failed,) = seen(watcher, notices.COLLECTOR_FAILED)
    assert failed["node"]["hostname"] == "coll-a"
    assert failed["collector"] == {"collector": "auth", "message": f"waiting for {log} to appear"}
    (ok,) = seen(watcher, notices.COLLECTOR_OK)
    assert ok["collector"] == {"collector": "auth", "message": ""} and ok["seq"] > failed["seq"]


ALLOWLIST = "yes=/bin/true\nno=/bin/false\n"


def test_commands_are_audited_with_who_asked_and_survive_a_hub_restart(cluster, workdir):
    state = workdir / "hub-state"
    cluster.start_hub(SECMON_STATE_DIR=str(state))
    allowlist = cluster.allowlist(ALLOWLIST)
    cluster.start_node(hostname="aud-a", COMMAND_ALLOWLIST_FILE=str(allowlist))
    cluster.start_node(hostname="aud-b", COMMAND_ALLOWLIST_FILE=str(allowlist))
    socket = cluster.env["SECMON_SOCKET"]
    me = m.Requester(os.getuid(), pwd.getpwuid(os.getuid()).pw_name)

    async def run() -> tuple[list[m.CommandResult], list[m.CommandResult], m.AuditList, m.NoticeList]:
        async with HubClient.connect(socket) as client:
            mine = [r async for r in client.execute("aud-a", "yes") if isinstance(r, m.CommandResult)]
            theirs = [
                r
                async for r in client.execute("-", "no", on_behalf="telegram:42 @alice")
                if isinstance(r, m.CommandResult)
            ]
            with pytest.raises(UnknownNode):
                async for _ in client.execute("no-such-node", "yes", on_behalf="http:ops"):
                    pass
            with anyio.fail_after(10):
                while len((notes := await client.notices()).notices) < 3:  # the last is in before the answer
                    await anyio.sleep(0.05)
            for bad in (client.audit(limit=0), client.notices(since=math.nan), client.audit(limit=10_001)):
                with pytest.raises(BadQuery):
                    await bad
            return mine, theirs, await client.audit(), notes

    mine, theirs, audit, notes = anyio.run(run)
    assert [(r.status, r.exit_code) for r in mine] == [(m.SUCCESS, 0)]
    assert sorted((r.status, r.exit_code) for r in theirs) == [(m.FAILURE, 1), (m.FAILURE, 1)]
    first, second, third = audit.records
    assert not audit.more and first.id < second.id < third.id
    assert (first.requester, first.label, first.target) == (me, "yes", "aud-a")
    assert [(o.hostname, o.status, o.exit_code) for o in first.outcomes] == [("aud-a", m.SUCCESS, 0)]
    assert second.requester == m.Requester(me.uid, me.user, "telegram:42 @alice")
    assert (second.label, second.target) == ("no", "-")
    assert sorted((o.hostname, o.status, o.exit_code) for o in second.outcomes) == [
        ("aud-a", m.FAILURE, 1),
        ("aud-b", m.FAILURE, 1),
    ]
    assert all(o.finished is not None and o.finished >= second.time for o in second.outcomes)
    assert second.finished == max(o.finished for o in second.outcomes)
    assert third.requester.on_behalf == "http:ops" and third.outcomes == [] and third.finished is not None
    # one command_run notice per request, with its finished record
    runs = [n for n in notes.notices if n.kind == notices.COMMAND_RUN]
    assert [n.command for n in runs] == [first, second, third]
    assert notes.last_seq >= runs[-1].seq

    # the CLI shows the same as JSON, and after a restart everything is still there
    cluster.restart_hub()

    async def again() -> tuple[m.AuditList, m.NoticeList]:
        async with HubClient.connect(socket) as client:
            return await client.audit(), await client.notices()

    audit2, notes2 = anyio.run(again)
    assert audit2.records == audit.records
    assert [n for n in notes2.notices if n.kind == notices.COMMAND_RUN] == runs
    # a subscriber resuming from before the first command gets the notices from the ring, in order
    resumed = subscriber(cluster, "--since", str(runs[0].seq - 1))
    wait_until(lambda: len(seen(resumed, notices.COMMAND_RUN)) >= 3, what="the resumed notices")
    assert [n["seq"] for n in seen(resumed, notices.COMMAND_RUN)] == [n.seq for n in runs]
    assert [n["command"]["requester"]["on_behalf"] for n in seen(resumed, notices.COMMAND_RUN)] == [
        None,
        "telegram:42 @alice",
        "http:ops",
    ]


def test_node_down_and_collector_notices_survive_a_restart_in_the_notice_query(cluster, workdir):
    (workdir / "auth.log").write_text("")
    state = workdir / "hub-state"
    cluster.start_hub(SECMON_STATE_DIR=str(state), NODE_DOWN_AFTER="1", DISCONNECT_GRACE_PERIOD="60")
    node = cluster.start_node("auth", hostname="gone-a")
    cluster.wait_auth_ok("gone-a")
    node.signal(signal.SIGKILL)
    node.process.wait(10)
    cluster.daemons.remove(node)
    socket = cluster.env["SECMON_SOCKET"]

    async def notices_now() -> list[m.NoticeUpdate]:
        async with HubClient.connect(socket) as client:
            return (await client.notices()).notices

    wait_until(lambda: anyio.run(notices_now), what="node_down in the notice query")
    before = anyio.run(notices_now)
    assert [n.kind for n in before] == [notices.NODE_DOWN]
    cluster.restart_hub()
    assert anyio.run(notices_now) == before
    assert (Path(state) / "notices.sqlite3").exists() and (Path(state) / "audit.sqlite3").exists()
