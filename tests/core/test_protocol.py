"""The sans-IO protocol: round trips, chunking, limits and hostile bytes. No sockets."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from secmon.protocol import (
    FrameDecoder,
    FrameTooLarge,
    InvalidMessage,
    LocalProtocolError,
    MalformedFrame,
    ProtocolError,
    decode_body,
    encode,
)
from secmon.protocol import messages as m

SESSION = m.Session("alice", "pts/0", "192.0.2.7", 1764382141.5)
PEER = m.WgPeer("wg0", "k" * 44, None, None)
EVENT = m.AuthEvent(7, 1764382141.0, "ssh_accepted", "sshd", 42, "root", "2001:db8::1", 22, "publickey")
NODE = m.NodeInfo(3, "web-1", "10.0.0.3", True, 1764382141.0, [SESSION], "wg not found", "ok", ["who"], ["uptime"])
GEO = m.SourceContext("DE", "Germany", "Berlin", 64496, "Example & <Org>")
CONTEXT = m.EventContext(GEO, ["host", "asn"], 3, [1, 2], 0)
RULE = m.MuteRule(4, "203.0.113.0/24", "backup", None, "ssh_failed_password", 1.5, None, "scanner", "uid 0 (root)")
RECORD = m.CommandRecord(
    9, 1.5, m.Requester(1000, "alice", "telegram:42 @alice"), "uptime", "-",
    [m.CommandOutcome(3, "web-1", m.SUCCESS, 0, 2.5)], 2.5,
)  # fmt: skip
NOTICES = [
    m.NoticeUpdate(50, 1.5, "node_down", node=m.NodeRef(3, "web-1", "10.0.0.3"), outage=m.Outage(1.0, 60.0)),
    m.NoticeUpdate(51, 1.5, "collector_failed", node=m.NodeRef(3, "web-1", "10.0.0.3"),
                   collector=m.CollectorState("auth", "journalctl exited")),
    m.NoticeUpdate(52, 1.5, "mute_added", mute=m.MuteChange(RULE, "uid 0 (root)")),
    m.NoticeUpdate(53, 1.5, "source_failing",
                   source=m.SourceFailures("203.0.113.9", 30, 3, 2, 1.0, 2.0, ["a", "b"], ["root"], GEO)),
    m.NoticeUpdate(54, 1.5, "command_run", command=RECORD),
]  # fmt: skip

SAMPLES: list[m.Message] = [
    m.Hello(m.PROTOCOL_VERSION, m.ROLE_NODE, "web-1", "abc", ["who", "wg"], "secret"),
    m.Welcome(1, 3, 99),
    m.Error("unknown_node", "no node matches 'x'", 5),
    m.Keepalive(),
    m.StateUpdate(sessions=[SESSION], wg_peers=[PEER], auth="ok"),
    m.StateUpdate(wg_peers="wg failed"),
    m.AuthEvents([EVENT, dataclasses.replace(EVENT, seq=8, user="<b>x</b>")]),
    m.Ack(8),
    m.RunCommand(11, "uptime", True),
    m.CancelCommand(11),
    m.CommandOutput(11, "line ünïcode", 3),
    m.CommandResult(11, m.FAILURE, 2, "out", "exit 2", 3),
    m.ListNodes(1),
    m.FindNode(2, "web-1"),
    m.NodeList(1, [NODE]),
    m.Subscribe(3, 40),
    m.Subscribed(3, 45, 2),
    m.NodeUpdate(46, NODE, ["sessions"]),
    m.AuthUpdate(47, 3, "web-1", "10.0.0.3", EVENT),
    m.AuthUpdates(48, 3, "web-1", "10.0.0.3", [EVENT, EVENT]),
    m.AuthUpdate(47, 3, "web-1", "10.0.0.3", EVENT, CONTEXT),
    m.AuthUpdates(48, 3, "web-1", "10.0.0.3", [EVENT, EVENT], [None, CONTEXT]),
    *NOTICES,
    m.AddMute(7, source="203.0.113.0/24", kind="ssh_failed_password", duration=3600.0, reason="scan", on_behalf="x"),
    m.ListMutes(8),
    m.RemoveMute(9, 4, "http:ops"),
    m.MuteRules(7, [RULE]),
    m.QueryAudit(10, 1.5, 20),
    m.AuditList(10, [RECORD], True),
    m.QueryNotices(11, None, 5),
    m.NoticeList(11, 54, NOTICES, False),
    m.Execute(4, "-", "uptime", False, 2.5),
    m.Execute(4, "-", "uptime", False, 2.5, "telegram:42 @alice"),
    m.Started(4, [1, 2, 3]),
    m.Cancel(4),
    m.QueryEvents(
        5,
        m.EventFilter(
            since_time=1.5,
            until_seq=9,
            nodes=["web-1", "3"],
            kinds=["su_failed"],
            source="2001:db8::/32",
            failures=True,
        ),
        limit=10,
    ),
    m.EventList(5, 42, True, [m.StoredEvent(40, 1, "web-1", "10.0.0.1", m.AuthEvent(7, 1.5, "su_failed", "su"))]),
    m.QueryStats(6, m.EventFilter(), by="time", bucket=300.0, group="node"),
    m.EventStats(6, "time", 300.0, series=[m.StatsSeries("web-1", 1500.0, [1, 0], [0, 2], [0, 0])]),
    m.GetStatus(5),
    m.HubStatus(5, 0),
    m.HubStatus(6, 2, "web1:9992", "secmon", False, 1.5, 10, 65536),
]


def test_every_message_type_has_a_sample():
    assert {type(s) for s in SAMPLES} == set(m.MESSAGE_TYPES.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda s: type(s).__name__)
def test_round_trip(message):
    decoder = FrameDecoder()
    assert decoder.feed(encode(message)) == [message]
    assert decoder.buffered == 0


def test_any_chunking_gives_the_same_messages():
    stream = b"".join(encode(s) for s in SAMPLES)
    decoder = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out += decoder.feed(stream[i : i + 1])
    assert out == SAMPLES
    assert FrameDecoder().feed(stream) == SAMPLES


def test_oversized_frame_is_rejected_from_its_header_alone():
    decoder = FrameDecoder(max_frame=1024)
    with pytest.raises(FrameTooLarge, match="4294967295 bytes exceeds the limit of 1024"):
        decoder.feed(b"\xff\xff\xff\xff")
    assert decoder.buffered <= 4


def test_default_limit_is_16_mib():
    decoder = FrameDecoder()
    assert decoder.max_frame == 16 * 1024 * 1024
    with pytest.raises(FrameTooLarge):
        decoder.feed((16 * 1024 * 1024 + 1).to_bytes(4, "big"))
    header_at_limit = (16 * 1024 * 1024).to_bytes(4, "big")
    assert FrameDecoder().feed(header_at_limit) == []


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"t": "hello", "role": "node"}, "hello: missing field 'version'"),
        ({"t": "hello", "version": "1", "role": "node"}, "hello.version: expected int, got str"),
        ({"t": "hello", "version": True, "role": "node"}, "hello.version: expected int, got bool"),
        ({"t": "hello", "version": 1, "role": "node", "extra": 1}, "hello: unknown field extra"),
        ({"t": "ack", "seq": [1]}, "ack.seq: expected int, got list"),
        ({"t": "state", "sessions": [["alice"]]}, "state.sessions[0]: expected map (Session), got list"),
        (
            {"t": "state", "sessions": [{"user": "a", "tty": "t", "host": None, "login_time": {"x": 1}}]},
            "state.sessions[0].login_time: expected float, got dict",
        ),
        ({"t": "auth_events", "events": [{"seq": 1}]}, "auth_events.events[0]: missing field 'time'"),
        ({"t": "warp"}, "unknown type 'warp'"),
        ({"version": 1}, "unknown type None"),
        ([1, 2], "message: expected map, got list"),
        ("hello", "message: expected map, got str"),
    ],
)
def test_invalid_messages_name_what_is_wrong(raw, error):
    with pytest.raises(InvalidMessage) as info:
        FrameDecoder().feed(frame(msgpack.packb(raw)))
    assert error in str(info.value)


def test_bytes_that_are_not_msgpack_are_malformed():
    with pytest.raises(MalformedFrame):
        decode_body(b"\xc1")  # a byte MessagePack never uses
    with pytest.raises(MalformedFrame):
        decode_body(b"")
    with pytest.raises(MalformedFrame):
        decode_body(msgpack.packb(1) + msgpack.packb(2))  # two objects in one frame


def test_encoding_a_non_message_is_our_fault():
    with pytest.raises(LocalProtocolError):
        encode(object())


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=512), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_end_in_messages_or_a_protocol_error(data, chunk):
    decoder = FrameDecoder(max_frame=256)
    try:
        for i in range(0, len(data), chunk):
            for message in decoder.feed(data[i : i + chunk]):
                assert type(message) in m.MESSAGE_TYPES.values()
            assert decoder.buffered <= 256 + 4
    except ProtocolError:
        pass


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=8,
)
tags = st.sampled_from([*m.MESSAGE_TYPES, "nope"])


@settings(max_examples=1000, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    tags,
    st.dictionaries(
        st.sampled_from(["version", "role", "seq", "events", "request_id", "nodes", "label", "x"]),
        msgpack_values,
        max_size=5,
    ),
)
def test_random_msgpack_maps_validate_or_fail_cleanly(tag, fields):
    body = msgpack.packb({"t": tag, **fields})
    try:
        (message,) = FrameDecoder().feed(frame(body))
    except InvalidMessage:
        return
    assert message.TAG == tag
    assert FrameDecoder().feed(encode(message)) == [message]
