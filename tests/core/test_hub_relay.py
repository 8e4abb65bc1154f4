"""Command relays in the hub's state, with links that record what they are given."""

from __future__ import annotations

from dataclasses import dataclass, field

from secmon.config import HubSettings
from secmon.hub.clients import MAX_REQUESTS_IN_FLIGHT, ClientConnection
from secmon.hub.hub import Hub, Relay
from secmon.hub.registry import NodeEntry
from secmon.protocol import messages as m


@dataclass(eq=False)
class RecordingLink:
    room: bool = True  # False: a link whose queue is full
    sent: list[m.Message] = field(default_factory=list)
    peer: str = "127.0.0.1"

    def send(self, message: m.Message) -> bool:
        if self.room:
            self.sent.append(message)
        return self.room

    def close(self, reason: str, final: m.Message | None = None) -> None:
        pass

    def tick(self, now: float) -> None:
        pass


@dataclass(eq=False)
class Peer:
    link: RecordingLink
    entry: NodeEntry = field(default_factory=lambda: NodeEntry(1, "alpha", "127.0.0.1", "id", []))
    relays: set[Relay] = field(default_factory=set)

    def acknowledge(self) -> None:
        pass

    def fail_relays(self, why: str) -> None:
        pass


def test_a_command_the_node_cannot_queue_ends_at_once_with_an_error():
    hub = Hub(HubSettings.from_env({"SECMON_SOCKET": "/nonexistent/hub.sock"}))
    client, node = Peer(RecordingLink()), Peer(RecordingLink(room=False))
    relay = hub.start_relay(client, m.Execute(7, "alpha", "uptime"), node)
    [result] = client.link.sent
    assert type(result) is m.CommandResult and result.request_id == 7 and result.status == m.ERROR
    assert "queue is full" in result.message
    assert relay.hub_id not in hub.relays and not node.relays and not client.relays


def test_a_command_the_node_takes_stays_open_until_its_result():
    hub = Hub(HubSettings.from_env({"SECMON_SOCKET": "/nonexistent/hub.sock"}))
    client, node = Peer(RecordingLink()), Peer(RecordingLink())
    relay = hub.start_relay(client, m.Execute(7, "alpha", "uptime"), node)
    assert node.link.sent == [m.RunCommand(relay.hub_id, "uptime", True)]
    assert client.link.sent == [] and relay.hub_id in hub.relays


def test_a_command_refused_as_busy_is_in_the_audit_as_having_run_nowhere():
    hub = Hub(HubSettings.from_env({"SECMON_SOCKET": "/nonexistent/hub.sock"}))
    link = RecordingLink()
    client = ClientConnection(hub, link, None, "uid=1000", m.Requester(1000, "alice"))  # type: ignore[arg-type]
    client.executing = MAX_REQUESTS_IN_FLIGHT
    client.on_messages([m.Execute(7, "alpha", "uptime", on_behalf="telegram:42")])
    [refused] = link.sent
    assert isinstance(refused, m.Error) and refused.code == "busy" and refused.request_id == 7
    [record], _more = hub.audit.records(None, 10)
    assert (record.label, record.target, record.outcomes) == ("uptime", "alpha", [])
    assert record.requester == m.Requester(1000, "alice", "telegram:42") and record.finished is not None
