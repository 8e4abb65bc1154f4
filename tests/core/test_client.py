"""The client library against a real hub and real nodes, as integrations use it."""

from __future__ import annotations

import anyio
import pytest

from secmon.client import HubClient, follow_updates
from secmon.errors import HubUnavailable, UnknownNode
from secmon.protocol import messages as m

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_no_hub_is_a_clear_error(workdir):
    with pytest.raises(HubUnavailable, match=r"no hub is running on .*nothere\.sock"):
        async with HubClient.connect(workdir / "nothere.sock"):
            pass


async def test_list_find_and_unknown_node(cluster, hub):
    cluster.start_node(hostname="alpha")
    cluster.start_node(hostname="beta")
    async with HubClient.connect(hub.socket) as client:
        nodes = await client.list_nodes()
        assert sorted(n.hostname for n in nodes) == ["alpha", "beta"]
        beta = await client.find_node("beta")
        assert beta.connected and beta.address == "127.0.0.1"
        assert (await client.find_node(str(beta.serial))).hostname == "beta"
        with pytest.raises(UnknownNode, match="no node matches 'gamma'"):
            await client.find_node("gamma")
        # The connection is still good after a failed request.
        assert len(await client.list_nodes()) == 2


async def test_subscribe_sees_updates_and_resumes_from_a_sequence(cluster, hub, workdir):
    log = workdir / "auth.log"
    log.write_text("")
    cluster.start_node("auth", hostname="alpha")
    line = (
        "2026-11-29T02:09:01.037761+00:00 vm sshd[11515]: Accepted password for alice from 192.0.2.1 port 5000 ssh2\n"
    )
    async with HubClient.connect(hub.socket) as client:
        subscription = await client.subscribe(since=0)
        with anyio.fail_after(10):
            # wait for the node's "auth ok" state, so the follower is at the end of the file
            async for update in subscription:
                if type(update) is m.NodeUpdate and update.node.auth == m.AUTH_OK:
                    break
            with log.open("a") as f:
                f.write(line)
            async for update in subscription:
                if type(update) is m.AuthUpdate:
                    break
        assert update.event.user == "alice" and update.event.host == "192.0.2.1" and update.event.port == 5000
        assert update.hostname == "alpha"
        seen = update.seq
    async with HubClient.connect(hub.socket) as client:
        resumed = await client.subscribe(since=seen - 1)
        with anyio.fail_after(5):
            again = await resumed.__anext__()
        assert again == update
        assert resumed.missed == 0


async def test_execute_streams_lines_then_a_result(cluster, hub):
    allow = cluster.allowlist("count=sh -c 'for i in 1 2 3; do echo line$i; done; echo err >&2; exit 3'\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    async with HubClient.connect(hub.socket) as client:
        items = [item async for item in client.execute("alpha", "count")]
    started, *lines, result = items
    assert type(started) is m.Started and len(started.serials) == 1
    assert [i.data for i in lines] == ["line1", "line2", "line3", "err"]
    assert (result.status, result.exit_code) == (m.FAILURE, 3)


async def test_execute_without_streaming_returns_the_output_whole(cluster, hub):
    allow = cluster.allowlist("hi=echo hello\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    async with HubClient.connect(hub.socket) as client:
        items = [item async for item in client.execute("alpha", "hi", stream=False)]
    assert [type(i) for i in items] == [m.Started, m.CommandResult]
    assert (items[1].status, items[1].output) == (m.SUCCESS, "hello\n")


async def test_many_requests_share_one_connection(cluster, hub):
    allow = cluster.allowlist("hi=echo hello\n")
    cluster.start_node(hostname="alpha", COMMAND_ALLOWLIST_FILE=str(allow))
    results = []
    async with HubClient.connect(hub.socket) as client:

        async def one() -> None:
            async for item in client.execute("alpha", "hi", stream=False):
                if type(item) is m.CommandResult:
                    results.append(item.status)

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(one)
            tg.start_soon(client.list_nodes)
    assert results == [m.SUCCESS] * 10


async def test_follow_updates_survives_a_hub_restart(cluster, workdir):
    hub = cluster.start_hub()
    cluster.start_node(hostname="alpha", **{"SECMON_RECONNECT_MAX": "0.2"})
    async with follow_updates(since=0, path=hub.socket) as updates:
        with anyio.fail_after(15):
            first = await updates.receive()
            assert first.node.hostname == "alpha"
            # A new hub on the same socket and port; the node has --reconnect off, so start one anew.
            hub2 = cluster.restart_hub()
            cluster.start_node(hostname="beta")
            async for update in updates:
                if type(update) is m.NodeUpdate and update.node.hostname == "beta":
                    break
    assert hub2.socket == hub.socket
