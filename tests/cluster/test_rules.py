"""A cluster hub's own rules, with plain calls on a stand-in hub: no NATS, no daemon."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nats.errors
import nats.js.errors
import pytest
from nats.js import api

from secmon.config import HubSettings
from secmon.hub.cluster import MAX_HUBS, ClusterHub, ensure_stream, publish_failure
from secmon.hub.outbox import Outbox, Pending
from secmon.protocol import messages as m
from secmon.protocol.batches import EventOrigin, EventRun
from secmon.protocol.cluster import HubStarted, encode_cluster


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def hub(tmp_path: Path) -> ClusterHub:
    """A cluster hub named "a", never started: its rules called by hand."""
    env = {"SECMON_NATS_URL": "nats://127.0.0.1:1", "SECMON_HUB_NAME": "a", "SECMON_SOCKET": str(tmp_path / "s")}
    return ClusterHub(HubSettings.from_env(env), Outbox(100))


def hello(node_id: str) -> m.Hello:
    return m.Hello(1, "node", "web1", node_id)


def test_a_node_without_a_node_id_is_refused_and_a_full_outbox_refuses_joins():
    hub = SimpleNamespace(outbox=Outbox(4))
    assert ClusterHub.join_refusal(hub, hello("id-1")) is None
    assert "needs a node id" in ClusterHub.join_refusal(hub, hello(""))
    while hub.outbox.put(Pending("x", b"")):
        pass
    assert "outbox is full" in ClusterHub.join_refusal(hub, hello("id-1"))


def test_a_publish_nats_denied_is_said_as_such_not_as_a_timeout():
    violation = nats.errors.Error('nats: permissions violation for publish to "secmon.up.a"')
    said = publish_failure(TimeoutError(), violation, 2.0)
    assert said.startswith("NATS denied the publish:") and "permissions violation" in said
    assert publish_failure(TimeoutError(), None, 2.0) == "no publish acknowledgement within 2 s"
    assert publish_failure(TimeoutError(), ConnectionResetError(), 2.0) == "no publish acknowledgement within 2 s"


def test_a_hub_hearing_its_own_name_from_another_run_stops(hub):
    hub.alive("a", hub.run)  # its own heartbeat
    hub.alive("b", "r-b")
    assert not hub.clash.is_set()
    hub.alive("a", "another-run")
    assert hub.clash.is_set()


@pytest.mark.anyio
async def test_a_start_of_another_run_of_this_hub_s_name_after_its_own_stops_it(hub, caplog):
    hub.apply_stream(1, encode_cluster(HubStarted("a", "an-earlier-run", 1.0)), "")  # its own past
    hub.apply_stream(2, encode_cluster(HubStarted("a", hub.run, 2.0)), "")
    assert not hub.clash.is_set()
    hub.apply_stream(3, encode_cluster(HubStarted("a", "another-run", 3.0)), "")
    assert hub.clash.is_set()
    assert "another hub runs with this hub's name 'a'" in caplog.text
    assert "cannot apply" not in caplog.text


def test_heartbeats_heard_are_bounded_in_names_and_in_number(hub):
    hub.alive("x" * 256, "r")
    assert hub.heard == {}
    for n in range(MAX_HUBS + 5):
        hub.alive(f"h{n}", "r")
    assert len(hub.heard) == MAX_HUBS
    hub.alive("h0", "r")  # one already heard is still heard
    assert "h0" in hub.heard


@pytest.mark.anyio
async def test_a_node_rejoining_during_an_outage_resends_what_only_memory_holds(hub):
    hub.link_lost("NATS away")
    hello = m.Hello(1, "node", "web1", "id-1")
    entry = await hub.join_node(hello, "10.0.0.1")
    events = [{"seq": n, "time": 5.0, "kind": "ssh_invalid_user", "process": "sshd", "user": "u"} for n in (1, 2, 3)]
    hub.publish_events(entry, EventRun(events), EventOrigin(entry.serial, "web1", "10.0.0.1"))
    assert hub.registry.by_node_id("id-1").last_event_seq == 3  # shown here at once, provisionally
    again = await hub.join_node(hello, "10.0.0.1")
    assert again.last_event_seq == 0  # the outbox is in memory: a crash would lose 1 to 3, so the node keeps them


class RacedStream:
    """JetStream as a hub sees it when another hub creates the stream between its two requests."""

    def __init__(self, made_by_other: bool) -> None:
        self.exists = False
        self.made_by_other = made_by_other

    async def stream_info(self, name: str) -> str:
        if not self.exists:
            raise nats.js.errors.NotFoundError(404, "stream not found")
        return name

    async def add_stream(self, config: api.StreamConfig) -> None:
        self.exists = self.made_by_other
        raise nats.js.errors.APIError(400, "stream name already in use" if self.made_by_other else "bad config")


@pytest.mark.anyio
async def test_a_hub_that_loses_the_race_to_create_the_stream_uses_the_one_made():
    config = api.StreamConfig(name="secmon_UPDATES")
    assert await ensure_stream(RacedStream(made_by_other=True), config) is False
    with pytest.raises(nats.js.errors.APIError, match="bad config"):  # a real refusal is still one
        await ensure_stream(RacedStream(made_by_other=False), config)


@pytest.mark.anyio
async def test_stream_messages_gone_before_they_were_applied_are_said(hub, caplog):
    hub.apply_stream(1, encode_cluster(HubStarted("b", "r", 1.0)), "")
    hub.apply_stream(2, encode_cluster(HubStarted("b", "r", 2.0)), "")
    assert "are gone" not in caplog.text
    hub.apply_stream(7, encode_cluster(HubStarted("b", "r", 7.0)), "")
    assert "cluster stream messages 3 to 6 are gone" in caplog.text


@pytest.mark.anyio
async def test_a_stream_message_the_view_cannot_apply_is_skipped_not_fatal(hub, caplog, monkeypatch):
    def broken(*args):
        raise OverflowError("cannot encode int")

    monkeypatch.setattr(hub.view, "apply", broken)
    hub.apply_stream(1, encode_cluster(HubStarted("b", "r", 1.0)), "")
    assert hub.view.applied == 1
    assert "cluster stream message 1 skipped: cannot apply it: cannot encode int" in caplog.text
