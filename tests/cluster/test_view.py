"""The cluster view, with plain calls: the same stream makes the same view, whatever hub applies it."""

from __future__ import annotations

from secmon.hub.registry import NodeRegistry, UpdateRing
from secmon.hub.view import SLOTS, ClusterRing, ClusterView
from secmon.protocol import decode_body
from secmon.protocol import messages as m
from secmon.protocol.cluster import (
    HubLost,
    HubStarted,
    NodeAuthEvent,
    NodeChanged,
    NodeForgotten,
    NodeJoined,
    NodeLeft,
    decode_cluster,
    encode_cluster,
)


def view(name: str = "a") -> ClusterView:
    return ClusterView(NodeRegistry(hostname_unique=True), UpdateRing(1000, start=1, first=1), name)


def join(hub: str, node_id: str, hostname: str, run: str = "r1", serial: int = 0, next_serial: int = 1) -> NodeJoined:
    return NodeJoined(hub, run, node_id, hostname, "10.0.0.1", 100.0, ["auth"], serial, next_serial)


def event(hub: str, node_id: str, hostname: str, seq: int, serial: int = 0) -> NodeAuthEvent:
    fields = {"seq": seq, "time": 5.0, "kind": "ssh_invalid_user", "process": "sshd", "user": f"u{seq}"}
    return NodeAuthEvent(hub, node_id, hostname, "10.0.0.1", fields, serial)


STREAM = [
    join("a", "id-1", "web1"),
    join("b", "id-2", "web2"),
    event("a", "id-1", "web1", 1),
    event("b", "id-2", "web2", 1),
    event("a", "id-1", "web1", 2),
    event("a", "id-1", "web1", 2),  # a resend: skipped
    NodeChanged("b", "id-2", 101.0, 2, sessions=[m.Session("root", "pts/0", None, 1.0)]),
    NodeChanged("b", "id-2", 102.0, 2, sessions=[m.Session("root", "pts/0", None, 1.0)]),  # nothing changed
    NodeLeft("a", "id-1", 103.0, 1),
]


def apply_all(v: ClusterView, stream=STREAM) -> list:
    frames = []
    for position, message in enumerate(stream, 1):
        frames += v.apply(position, decode_cluster(encode_cluster(message)), now=float(position)).frames
    return frames


def test_two_hubs_applying_one_stream_hold_the_same_view_and_updates():
    a, c = view("a"), view("c")
    frames_a, frames_c = apply_all(a), apply_all(c)
    assert [(f.first, f.frame) for f in frames_a] == [(f.first, f.frame) for f in frames_c]
    assert a.registry.snapshot() == c.registry.snapshot()
    assert [(n.serial, n.hostname, n.hub) for n in a.registry.snapshot()] == [(1, "web1", "a"), (2, "web2", "b")]
    assert a.holder(a.registry.nodes[2]) == "b"


def test_update_numbers_are_the_stream_position_times_slots_with_gaps_for_what_gave_nothing():
    frames = apply_all(view())
    assert [f.first for f in frames] == [p * SLOTS for p in (1, 2, 3, 4, 5, 7, 9)]
    events = [decode_body(f.frame[4:]) for f in frames if f.first in (3 * SLOTS, 5 * SLOTS)]
    assert [(e.serial, e.event.seq) for e in events] == [(1, 1), (1, 2)]


def test_a_hub_that_joins_late_learns_serials_from_the_hints():
    full = view()
    apply_all(full, [join("a", "id-1", "web1"), join("a", "id-2", "web2"), event("a", "id-2", "web2", 1)])
    serial, next_serial = full.hints("web2", "id-2")
    assert (serial, next_serial) == (2, 3)
    late = view("c")  # the stream's first messages are gone: it sees only what came after
    late.apply(10, event("a", "id-2", "web2", 2, serial=2), 1.0)
    late.apply(11, join("b", "id-3", "web3", next_serial=3), 2.0)
    full.apply(11, join("b", "id-3", "web3", next_serial=3), 2.0)
    assert late.registry.known("web2", "id-2").serial == 2
    assert late.registry.known("web3", "id-3").serial == full.registry.known("web3", "id-3").serial == 3


def test_what_a_hub_applied_during_an_outage_is_not_shown_again_when_the_stream_has_it():
    v = view("a")
    v.apply(1, join("a", "id-1", "web1"), 1.0)
    outage = [event("a", "id-1", "web1", 1), event("a", "id-1", "web1", 2)]
    provisional = [f for message in outage for f in v.apply_local(message, 2.0).frames]
    assert [f.first for f in provisional] == [SLOTS + 1, SLOTS + 2]  # between position 1 and 2
    later = v.apply(2, join("b", "id-2", "web2"), 3.0).frames  # another hub's, from the outage
    assert later[0].first == 2 * SLOTS
    again = [v.apply(p, message, 4.0).frames for p, message in ((3, outage[0]), (4, outage[1]))]
    assert again == [[], []]
    assert v.apply(3, event("a", "id-1", "web1", 3), 5.0).frames == []  # a position applied already


def test_a_hostname_taken_on_another_hub_closes_the_old_link_and_a_moved_node_ignores_its_old_hub():
    v = view("a")
    v.apply(1, join("a", "id-1", "web1"), 1.0)
    taken = v.apply(2, join("b", "id-9", "web1"), 2.0)  # another machine with the same hostname, on hub b
    assert [(d.serial, d.hub, d.takeover) for d in taken.displaced] == [(1, "b", True)]
    assert v.registry.nodes[1].node_id == "id-9" and v.registry.nodes[1].hub == "b"
    moved = v.apply(3, join("c", "id-9", "web1"), 3.0)  # the same node, now on hub c
    assert [(d.hub, d.takeover) for d in moved.displaced] == [("c", False)]
    assert v.apply(4, NodeLeft("b", "id-9", 4.0, 1), 4.0).frames == []  # its old hub's late word
    assert v.registry.nodes[1].connected


def test_a_restarted_hub_disconnects_the_nodes_of_its_previous_run_only():
    v = view("a")
    v.apply(1, join("b", "id-1", "web1", run="old"), 1.0)
    v.apply(2, join("b", "id-2", "web2", run="new"), 2.0)
    frames = v.apply(3, HubStarted("b", "new", 3.0), 3.0).frames
    assert [decode_body(f.frame[4:]).node.hostname for f in frames] == ["web1"]
    assert [f.first for f in frames] == [3 * SLOTS]
    assert not v.registry.nodes[1].connected and v.registry.nodes[2].connected


def test_a_node_is_forgotten_only_when_its_hub_says_so_and_it_is_still_gone():
    v = view("a")
    v.apply(1, join("b", "id-1", "web1"), 1.0)
    assert v.apply(2, NodeForgotten("b", "id-1", 1), 2.0).frames == []  # still connected
    v.apply(3, NodeLeft("b", "id-1", 3.0, 1), 3.0)
    frames = v.apply(4, NodeForgotten("b", "id-1", 1), 4.0).frames
    assert decode_body(frames[0].frame[4:]).changed == ["forgotten"]
    assert v.registry.nodes == {}


def test_a_lost_hub_s_nodes_are_disconnected_and_its_second_word_keeps_their_state():
    v = view("a")
    v.apply(1, join("b", "id-1", "web1", run="r"), 1.0)
    sessions = [m.Session("root", "pts/0", None, 1.0)]
    v.apply(2, NodeChanged("b", "id-1", 2.0, 1, sessions=sessions), 2.0)
    lost = v.apply(3, HubLost("b", "a", 3.0), 3.0).frames
    assert [decode_body(f.frame[4:]).node.connected for f in lost] == [False]
    assert v.apply(4, HubLost("b", "c", 3.5), 3.5).frames == []  # said twice: nothing more
    back = v.apply(5, join("b", "id-1", "web1", run="r"), 4.0).frames  # hub b was only cut off
    node = decode_body(back[0].frame[4:]).node
    assert node.connected and node.sessions == sessions


def test_an_event_the_stream_holds_after_later_ones_is_applied_once_and_a_joining_node_resends_from_it():
    """A publish that failed mid-window is sent again after the messages behind it were stored."""
    v = view()
    stream = [join("a", "id-1", "web1"), event("a", "id-1", "web1", 1), event("a", "id-1", "web1", 3)]
    apply_all(v, stream)
    entry = v.registry.by_node_id("id-1")
    assert entry is not None and entry.last_event_seq == 3
    assert v.resend_after(entry) == 1  # event 2 is not in the cluster yet: a node moving now resends it
    late = v.apply(4, event("a", "id-1", "web1", 2), now=4.0).frames
    assert [update.first for update in late] == [4 * SLOTS]  # applied, once
    assert v.resend_after(entry) == 3
    assert v.apply(5, event("a", "id-1", "web1", 2), now=5.0).frames == []  # and its resend is skipped
    assert v.apply(6, event("a", "id-1", "web1", 1), now=6.0).frames == []


def test_a_message_with_a_serial_no_hub_could_encode_is_refused_when_read():
    from secmon.protocol.errors import InvalidMessage

    huge = 2**64 - 1
    for bad in (
        join("evil", "id-9", "x", serial=huge, next_serial=huge),
        join("evil", "id-9", "x", next_serial=2**53),
        NodeLeft("evil", "id-9", 1.0, -1),
        event("evil", "id-9", "x", 2**60),
    ):
        try:
            decode_cluster(encode_cluster(bad))
        except InvalidMessage as exc:
            assert "out of range" in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
    assert decode_cluster(encode_cluster(join("a", "id-1", "web1", serial=2**53 - 1))).serial == 2**53 - 1


def test_a_subscriber_resuming_on_a_cluster_ring_misses_only_what_the_ring_dropped():
    ring = ClusterRing(4, start=1, first=1)
    v = ClusterView(NodeRegistry(hostname_unique=True), ring, "a")
    ring.extend(apply_all(v, STREAM[:4]))  # 4 updates, numbered SLOTS apart
    assert ring.resume_point(0) == (SLOTS - 1, 0)  # the gaps between numbers are not updates
    assert ring.resume_point(2 * SLOTS) == (2 * SLOTS, 0)
    ring.extend(v.apply(5, STREAM[4], now=5.0).frames)  # the oldest falls out
    assert ring.resume_point(0) == (2 * SLOTS - 1, 1)
    assert ring.resume_point(3 * SLOTS) == (3 * SLOTS, 0)


def test_hostname_uniqueness_is_the_joining_hub_s_word_on_every_hub():
    def shared_hostname(unique: bool) -> list[NodeJoined]:
        return [
            NodeJoined("a", "r1", "id-1", "web", "10.0.0.1", 100.0, [], 0, 1, unique),
            NodeJoined("a", "r1", "id-2", "web", "10.0.0.2", 101.0, [], 0, 2, unique),
        ]

    for unique, serials in ((False, [1, 2]), (True, [1])):
        views = [
            ClusterView(NodeRegistry(hostname_unique=mine), UpdateRing(1000, start=1, first=1), "b")
            for mine in (True, False)
        ]
        for v in views:
            apply_all(v, shared_hostname(unique))
            assert sorted(v.registry.nodes) == serials
