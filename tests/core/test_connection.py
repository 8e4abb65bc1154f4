"""The conversation rules, driven with plain calls: no sockets, no clock."""

from __future__ import annotations

import pytest

from secmon.protocol import encode
from secmon.protocol import messages as m
from secmon.protocol.connection import (
    KEEPALIVE_FRAME,
    MISSED_KEEPALIVES,
    RULES,
    Connection,
    Role,
    State,
)
from secmon.protocol.errors import (
    HandshakeTimeout,
    HelloRefused,
    InvalidMessage,
    LocalProtocolError,
    PeerNotReading,
    PeerSilent,
    UnexpectedMessage,
)

KEEPALIVE = 1.0
HANDSHAKE = 5.0

EVENT = m.AuthEvent(seq=1, time=1.0, kind="ssh_accepted", process="sshd")
INFO = m.NodeInfo(1, "alpha", "127.0.0.1", True, None, [], [], m.AUTH_OK)

# One instance of every message, so the table is checked for each of them.
SAMPLES: dict[type, m.Message] = {
    m.Hello: m.Hello(m.PROTOCOL_VERSION, m.ROLE_NODE, "alpha"),
    m.Welcome: m.Welcome(m.PROTOCOL_VERSION, 1),
    m.Error: m.Error("oops", "something", request_id=7),
    m.Keepalive: m.Keepalive(),
    m.StateUpdate: m.StateUpdate(auth=m.AUTH_OK),
    m.AuthEvents: m.AuthEvents([EVENT]),
    m.Ack: m.Ack(1),
    m.RunCommand: m.RunCommand(1, "uptime", True),
    m.CancelCommand: m.CancelCommand(1),
    m.CommandOutput: m.CommandOutput(1, "line"),
    m.CommandResult: m.CommandResult(1, m.SUCCESS, 0),
    m.ListNodes: m.ListNodes(1),
    m.FindNode: m.FindNode(1, "alpha"),
    m.NodeList: m.NodeList(1, [INFO]),
    m.Subscribe: m.Subscribe(1),
    m.Subscribed: m.Subscribed(1, 5),
    m.NodeUpdate: m.NodeUpdate(1, INFO, ["connected"]),
    m.AuthUpdate: m.AuthUpdate(1, 1, "alpha", "127.0.0.1", EVENT),
    m.AuthUpdates: m.AuthUpdates(1, 1, "alpha", "127.0.0.1", [EVENT, EVENT]),
    m.Execute: m.Execute(1, "alpha", "uptime"),
    m.Started: m.Started(1, [1]),
    m.Cancel: m.Cancel(1),
    m.QueryEvents: m.QueryEvents(1, m.EventFilter(user="root")),
    m.EventList: m.EventList(1, 9, False, [m.StoredEvent(3, 1, "alpha", "127.0.0.1", EVENT)]),
    m.QueryStats: m.QueryStats(1, m.EventFilter(), by="source"),
    m.EventStats: m.EventStats(1, "source", 3600.0, rows=[m.StatsRow("192.0.2.9", 2, 2, 1, 1, 1.0, 2.0)]),
    m.GetStatus: m.GetStatus(2),
    m.HubStatus: m.HubStatus(2, 3, "web1:9992", "secmon", True, 1.5, 4, 5 * 65536),
    m.NoticeUpdate: m.NoticeUpdate(2, 1.5, "node_down", m.NodeRef(1, "alpha", "127.0.0.1"), m.Outage(1.0, 60.0)),
    m.AddMute: m.AddMute(3, user="backup"),
    m.ListMutes: m.ListMutes(3),
    m.RemoveMute: m.RemoveMute(3, 1),
    m.MuteRules: m.MuteRules(3, [m.MuteRule(1, user="backup")]),
    m.QueryAudit: m.QueryAudit(4),
    m.AuditList: m.AuditList(4, []),
    m.QueryNotices: m.QueryNotices(5),
    m.NoticeList: m.NoticeList(5, 9, []),
}
EVERYONES = {m.Keepalive, m.Error}


def test_every_message_type_has_a_sample():
    assert set(SAMPLES) == set(m.MESSAGE_TYPES.values())


def hello(role: Role, **fields) -> m.Hello:
    return m.Hello(m.PROTOCOL_VERSION, role.value, "alpha" if role is Role.NODE else "", **fields)


def open_pair(peer: Role, now: float = 0.0) -> tuple[Connection, Connection]:
    """A hub end and a peer end, handshake done, each having received what the other sent."""
    hub = Connection(Role.HUB, peer, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=now)
    them = Connection(peer, Role.HUB, keepalive=10.0, handshake_timeout=HANDSHAKE, now=now)
    assert hub.receive_data(them.send(hello(peer))) == [hello(peer)]
    (welcome,) = them.receive_data(hub.send(m.Welcome(m.PROTOCOL_VERSION, 1, keepalive=KEEPALIVE)))
    assert type(welcome) is m.Welcome
    assert hub.is_open and them.is_open
    return hub, them


LINKS = [(Role.NODE, Role.HUB), (Role.HUB, Role.NODE), (Role.CLIENT, Role.HUB), (Role.HUB, Role.CLIENT)]


@pytest.mark.parametrize(("sender", "receiver"), LINKS, ids=lambda r: r.value)
@pytest.mark.parametrize("kind", list(SAMPLES), ids=lambda t: t.TAG)
def test_the_table_decides_what_each_side_may_send_once_open(sender, receiver, kind):
    peer = receiver if sender is Role.HUB else sender
    hub, them = open_pair(peer)
    ours, theirs = (hub, them) if sender is Role.HUB else (them, hub)
    message = SAMPLES[kind]
    allowed = kind in RULES[sender, receiver].then or kind in EVERYONES
    if not allowed:
        with pytest.raises(LocalProtocolError, match="may not send"):
            ours.send(message)
        with pytest.raises(UnexpectedMessage, match=f"a {sender.value} may not send {kind.TAG!r}"):
            theirs.receive_data(encode(message))
        return
    received = theirs.receive_data(ours.send(message))
    assert received == ([] if kind is m.Keepalive else [message])  # keepalives never reach the caller


def test_the_hub_may_answer_only_after_the_hello_and_only_with_welcome_or_error():
    hub = Connection(Role.HUB, Role.NODE, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        hub.send(m.Welcome(m.PROTOCOL_VERSION, 1))
    hub.receive_data(encode(hello(Role.NODE)))
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        hub.send(m.Ack(1))
    hub.send(m.Welcome(m.PROTOCOL_VERSION, 1))
    assert hub.is_open


@pytest.mark.parametrize("peer", [Role.NODE, Role.CLIENT], ids=lambda r: r.value)
def test_the_first_message_to_a_hub_must_be_a_hello(peer):
    hub = Connection(Role.HUB, peer, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    with pytest.raises(UnexpectedMessage, match="expected hello, got 'list'"):
        hub.receive_data(encode(m.ListNodes(1)))


@pytest.mark.parametrize(
    ("peer", "message", "reason"),
    [
        (Role.NODE, m.Hello(99, m.ROLE_NODE, "alpha"), "protocol version 99 is not supported"),
        (Role.NODE, m.Hello(m.PROTOCOL_VERSION, m.ROLE_CLIENT), "this socket is for nodes, not 'client'"),
        (Role.CLIENT, m.Hello(m.PROTOCOL_VERSION, m.ROLE_NODE, "a"), "this socket is for clients, not 'node'"),
        (Role.NODE, m.Hello(m.PROTOCOL_VERSION, m.ROLE_NODE, ""), "must carry a hostname"),
        (Role.NODE, m.Hello(m.PROTOCOL_VERSION, m.ROLE_NODE, "a" * 256), "must carry a hostname"),
    ],
)
def test_a_hello_of_another_version_or_role_is_refused(peer, message, reason):
    hub = Connection(Role.HUB, peer, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    with pytest.raises(HelloRefused, match=reason) as caught:
        hub.receive_data(encode(message))
    assert caught.value.code == "refused" and caught.value.tell_peer
    hub.send(m.Error(caught.value.code, str(caught.value)))  # the refusal may still be sent
    assert hub.our_state is State.CLOSED


def test_requests_may_follow_the_hello_at_once_and_are_judged_by_the_open_table():
    hub = Connection(Role.HUB, Role.CLIENT, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    client = Connection(Role.CLIENT, Role.HUB, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    data = client.send(hello(Role.CLIENT)) + client.send(m.ListNodes(1))  # pipelined behind the hello
    assert hub.receive_data(data) == [hello(Role.CLIENT), m.ListNodes(1)]
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        hub.send(m.NodeList(1, []))  # the hub answers requests only after its welcome
    hub.send(m.Welcome(m.PROTOCOL_VERSION))
    hub.send(m.NodeList(1, []))
    with pytest.raises(UnexpectedMessage, match="a client may not send 'run'"):
        hub.receive_data(encode(m.RunCommand(1, "x", True)))


def test_an_initiator_speaks_only_after_its_hello():
    node = Connection(Role.NODE, Role.HUB, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    with pytest.raises(LocalProtocolError, match="before the handshake"):
        node.send(m.StateUpdate())
    node.send(hello(Role.NODE))
    node.send(m.StateUpdate())
    with pytest.raises(LocalProtocolError, match="may not send"):
        node.send(hello(Role.NODE))


def test_an_error_instead_of_a_welcome_is_a_refusal_and_ends_their_side():
    node = Connection(Role.NODE, Role.HUB, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    node.send(hello(Role.NODE))
    refusal = m.Error("refused", "wrong or missing token")
    assert node.receive_data(encode(refusal)) == [refusal]
    assert node.peer_error == refusal and node.their_state is State.CLOSED
    with pytest.raises(UnexpectedMessage, match="after ending the link"):
        node.receive_data(encode(m.Ack(1)))


def test_the_welcome_sets_the_initiators_keepalive():
    _, node = open_pair(Role.NODE)
    assert node.keepalive == KEEPALIVE


def test_a_second_welcome_or_hello_is_unexpected():
    hub, node = open_pair(Role.NODE)
    with pytest.raises(UnexpectedMessage):
        node.receive_data(encode(m.Welcome(m.PROTOCOL_VERSION, 1)))
    with pytest.raises(UnexpectedMessage):
        hub.receive_data(encode(hello(Role.NODE)))


def test_an_error_without_request_id_ends_the_link_both_ways():
    hub, client = open_pair(Role.CLIENT)
    error = m.Error("slow_consumer", "too slow")
    assert client.receive_data(hub.send(error)) == [error]
    assert hub.closed and client.closed and client.their_state is State.CLOSED
    assert client.peer_error == error
    with pytest.raises(LocalProtocolError, match="ended the link"):
        hub.send(m.Subscribed(1, 1))
    with pytest.raises(LocalProtocolError, match="ended the link"):
        client.send(m.ListNodes(2))


def test_a_peer_that_ended_the_link_but_keeps_it_open_is_given_up_after_an_interval():
    hub, node = open_pair(Role.NODE, now=0)
    hub.receive_data(node.send(m.Error("bye", "going away")))
    assert hub.tick(1) == b""  # no keepalive to a peer that has gone
    with pytest.raises(PeerNotReading):
        hub.tick(1 + KEEPALIVE + 0.01)


@pytest.mark.parametrize("keepalive", [float("nan"), float("inf"), 0.0, -1.0, 1e9])
def test_a_welcome_with_a_keepalive_out_of_bounds_is_invalid(keepalive):
    node = Connection(Role.NODE, Role.HUB, keepalive=10, handshake_timeout=HANDSHAKE, now=0)
    node.send(hello(Role.NODE))
    with pytest.raises(InvalidMessage, match=r"welcome\.keepalive"):
        node.receive_data(encode(m.Welcome(m.PROTOCOL_VERSION, 1, keepalive=keepalive)))


def test_an_error_with_a_request_id_ends_only_that_request():
    hub, client = open_pair(Role.CLIENT)
    error = m.Error("unknown_node", "no such node", request_id=3)
    assert client.receive_data(hub.send(error)) == [error]
    assert hub.is_open and client.is_open and client.peer_error is None


def test_messages_split_anywhere_arrive_whole_and_keepalives_are_eaten():
    hub, node = open_pair(Role.NODE)
    data = node.send(m.StateUpdate(auth=m.AUTH_OK)) + node.send(m.Keepalive()) + node.send(m.AuthEvents([EVENT]))
    received = []
    for i in range(len(data)):
        received += hub.receive_data(data[i : i + 1])
    assert received == [m.StateUpdate(auth=m.AUTH_OK), m.AuthEvents([EVENT])]


def test_update_frames_pass_only_from_an_open_hub_to_a_client():
    frame = encode(SAMPLES[m.NodeUpdate])
    hub, client = open_pair(Role.CLIENT)
    assert client.receive_data(hub.send_update(frame)) == [SAMPLES[m.NodeUpdate]]
    to_node, _ = open_pair(Role.NODE)
    with pytest.raises(LocalProtocolError):
        to_node.send_update(frame)
    fresh = Connection(Role.HUB, Role.CLIENT, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    with pytest.raises(LocalProtocolError):
        fresh.send_update(frame)


# --- time ----------------------------------------------------------------------


OPENINGS = [(Role.HUB, Role.NODE, "hello"), (Role.NODE, Role.HUB, "welcome")]


@pytest.mark.parametrize(("ours", "theirs", "opening"), OPENINGS)
def test_the_opening_has_a_deadline(ours, theirs, opening):
    conn = Connection(ours, theirs, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=100)
    if ours is not Role.HUB:
        conn.send(hello(ours))
    assert conn.next_tick(100) <= 100 + HANDSHAKE
    assert conn.tick(100 + HANDSHAKE - 0.01) == b""
    with pytest.raises(HandshakeTimeout, match=f"no {opening} within 5 s") as caught:
        conn.tick(100 + HANDSHAKE)
    assert caught.value.tell_peer


def test_a_hub_that_has_yet_to_answer_a_hello_is_not_timed_out_by_the_peer():
    hub = Connection(Role.HUB, Role.NODE, keepalive=KEEPALIVE, handshake_timeout=HANDSHAKE, now=0)
    hub.receive_data(encode(hello(Role.NODE)))
    assert hub.tick(HANDSHAKE * 2) == b""


def test_a_quiet_link_gets_a_keepalive_once_per_interval():
    _hub, node = open_pair(Role.NODE, now=0)
    assert node.tick(0) == b""  # stamps the hello as spoken at 0: times are those of the ticks
    assert node.tick(0.5) == b""
    assert node.tick(KEEPALIVE) == KEEPALIVE_FRAME
    assert node.tick(KEEPALIVE + 0.5) == b""  # the keepalive just sent counts as speaking
    node.send(m.StateUpdate())
    node.receive_data(KEEPALIVE_FRAME)  # the hub keeps the link alive too
    assert node.tick(2 * KEEPALIVE + 0.1) == b""  # spoke since the last tick: stamped now
    assert node.tick(3 * KEEPALIVE + 0.2) == KEEPALIVE_FRAME


def test_a_silent_peer_is_gone_after_three_intervals_and_any_bytes_keep_it():
    hub, _node = open_pair(Role.NODE, now=0)
    hub.tick(0)
    limit = MISSED_KEEPALIVES * KEEPALIVE
    hub.tick(limit)  # exactly three intervals: not yet
    hub.receive_data(KEEPALIVE_FRAME)
    hub.tick(limit + 0.5)  # heard since the last tick: stamped now
    with pytest.raises(PeerSilent, match="peer silent for 3 keepalive intervals") as caught:
        hub.tick(2 * limit + 0.6)
    assert not caught.value.tell_peer


def test_a_closed_link_gets_one_interval_to_drain():
    hub, _node = open_pair(Role.NODE, now=0)
    hub.close()
    assert hub.tick(10) == b""
    assert hub.tick(10 + KEEPALIVE) == b""
    with pytest.raises(PeerNotReading):
        hub.tick(10 + KEEPALIVE + 0.01)


def test_next_tick_is_within_half_an_interval_once_open():
    hub, _node = open_pair(Role.NODE, now=0)
    assert hub.next_tick(7) == 7 + KEEPALIVE / 2


def test_no_link_joins_two_hubs_or_a_node_to_a_client():
    with pytest.raises(LocalProtocolError):
        Connection(Role.HUB, Role.HUB, keepalive=1, handshake_timeout=1, now=0)
    with pytest.raises(LocalProtocolError):
        Connection(Role.NODE, Role.CLIENT, keepalive=1, handshake_timeout=1, now=0)
