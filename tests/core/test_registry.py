"""The hub's pure state, with plain calls and explicit clocks."""

from __future__ import annotations

from secmon.hub.registry import FLAP_WINDOW, NodeRegistry, UpdateRing
from secmon.protocol import messages as m
from secmon.protocol.batches import UpdateFrame


def test_serials_start_at_one_and_attributes_start_initializing():
    registry = NodeRegistry()
    a = registry.connect("a", "10.0.0.1", "id-a", ["who"], now=0)
    b = registry.connect("b", "10.0.0.2", "id-b", [], now=0)
    assert (a.serial, b.serial) == (1, 2)
    assert a.info().sessions == m.INITIALIZING
    assert a.info().connected


def test_find_by_serial_hostname_or_address():
    registry = NodeRegistry()
    registry.connect("alpha", "10.0.0.1", "1", [], 0)
    beta = registry.connect("beta", "10.0.0.2", "2", [], 0)
    assert registry.find("2") is beta
    assert registry.find("beta") is beta
    assert registry.find("10.0.0.2") is beta
    assert registry.find("gamma") is None
    assert registry.find("0") is None


def test_a_hostname_that_looks_like_a_serial_does_not_shadow_the_serial():
    registry = NodeRegistry()
    first = registry.connect("2", "10.0.0.1", "1", [], 0)
    second = registry.connect("x", "10.0.0.2", "2", [], 0)
    assert registry.find("2") is second
    assert registry.find("1") is first


def test_same_hostname_replaces_the_entry_when_hostnames_are_unique():
    registry = NodeRegistry(hostname_unique=True)
    old = registry.connect("web", "10.0.0.1", "old-id", [], 0)
    registry.disconnect(old.serial, 1)
    new = registry.connect("web", "10.0.0.9", "new-id", [], 2)
    assert new.serial == old.serial
    assert len(registry.nodes) == 1
    assert registry.nodes[new.serial].address == "10.0.0.9"


def test_same_hostname_gets_its_own_entry_when_not_unique():
    registry = NodeRegistry(hostname_unique=False)
    registry.connect("web", "10.0.0.1", "a", [], 0)
    registry.connect("web", "10.0.0.2", "b", [], 0)
    assert len(registry.nodes) == 2


def test_a_reconnecting_node_id_keeps_its_event_sequence_and_a_new_one_restarts():
    registry = NodeRegistry()
    entry = registry.connect("web", "10.0.0.1", "id-1", [], 0)
    entry.last_event_seq = 41
    assert registry.connect("web", "10.0.0.1", "id-1", [], 1).last_event_seq == 41
    assert registry.connect("web", "10.0.0.1", "id-2", [], 2).last_event_seq == 0


def test_a_node_id_follows_its_node_across_a_rename_and_is_forgotten_with_it():
    registry = NodeRegistry(grace=10)
    web = registry.connect("web", "10.0.0.1", "id-1", [], 0)
    renamed = registry.connect("www", "10.0.0.1", "id-1", [], 1)  # same node, new hostname
    assert renamed.serial == web.serial and len(registry.nodes) == 1
    other = registry.connect("web", "10.0.0.2", "id-2", [], 2)  # the old name is free again
    assert other.serial != web.serial
    registry.disconnect(web.serial, 3)
    assert registry.expire(20) == [renamed]
    back = registry.connect("www", "10.0.0.1", "id-1", [], 21)  # forgotten: a new serial
    assert back.serial not in (web.serial, other.serial)
    assert registry.connect("web", "10.0.0.3", "id-3", [], 22).serial == other.serial  # by hostname


def test_disconnected_nodes_are_forgotten_after_the_grace_period():
    registry = NodeRegistry(grace=10)
    entry = registry.connect("a", "10.0.0.1", "1", [], 0)
    registry.connect("b", "10.0.0.2", "2", [], 0)
    registry.disconnect(entry.serial, now=100)
    assert not registry.nodes[entry.serial].connected
    assert registry.expire(now=109.9) == []
    assert [e.hostname for e in registry.expire(now=110)] == ["a"]
    assert [n.hostname for n in registry.snapshot()] == ["b"]


def test_apply_reports_only_real_changes_and_stamps_the_time():
    registry = NodeRegistry()
    entry = registry.connect("a", "10.0.0.1", "1", ["who"], 0)
    session = m.Session("root", "pts/0", None, 5.0)
    assert registry.apply(entry.serial, m.StateUpdate(sessions=[session], auth="ok"), wall=50) == ["sessions", "auth"]
    assert entry.last_state_update == 50
    assert registry.apply(entry.serial, m.StateUpdate(sessions=[session]), wall=60) == []
    assert entry.last_state_update == 50
    assert registry.apply(entry.serial, m.StateUpdate(wg_peers="wg not found"), wall=70) == ["wg_peers"]


def test_connect_and_disconnect_are_stamped_with_their_wall_time():
    """The "connected" update, replayed later, says when the node connected, not when it was replayed."""
    registry = NodeRegistry()
    entry = registry.connect("a", "10.0.0.1", "1", [], now=5, wall=1_700_000_000.0)
    assert entry.info().last_state_update == 1_700_000_000.0
    registry.disconnect(entry.serial, now=9, wall=1_700_000_004.0)
    assert entry.info().last_state_update == 1_700_000_004.0


def test_a_node_restarted_with_a_new_id_takes_over_quietly():
    registry = NodeRegistry()
    registry.connect("web", "10.0.0.1", "old-id", [], 0)
    takeover = registry.connect("web", "10.0.0.1", "new-id", [], 1).takeover
    assert takeover is not None and not takeover.flapping and not takeover.report
    assert "SECMON_HOSTNAME" in takeover.told_to_replaced()  # the replaced one hears the remedy anyway
    assert registry.connect("web", "10.0.0.1", "new-id", [], 2).takeover is None  # its own reconnect
    registry.disconnect(1, 3)
    assert registry.connect("web", "10.0.0.1", "third-id", [], 4).takeover is None  # the old one was gone


def test_two_nodes_with_one_hostname_flap_and_are_reported_once_per_window():
    registry = NodeRegistry()
    registry.connect("twin", "10.0.0.1", "a", [], 0)
    steps = []
    for i, node_id in enumerate(["b", "a", "b", "a", "b"], start=1):
        takeover = registry.connect("twin", f"10.0.0.{2 - (node_id == 'a')}", node_id, [], now=i).takeover
        steps.append((takeover.flapping, takeover.report))
    assert steps == [(False, False), (True, True), (True, False), (True, False), (True, False)]
    later = registry.connect("twin", "10.0.0.1", "a", [], now=2 + FLAP_WINDOW).takeover
    assert later.flapping and later.report  # a new window, still flapping: reported again
    assert len(registry.nodes) == 1


def test_flap_memory_is_forgotten_after_the_window():
    registry = NodeRegistry()
    registry.connect("twin", "10.0.0.1", "a", [], 0)
    registry.connect("twin", "10.0.0.2", "b", [], 1)
    registry.expire(now=2 + FLAP_WINDOW)
    assert not registry.connect("twin", "10.0.0.1", "a", [], 3 + FLAP_WINDOW).takeover.flapping


def resume(ring: UpdateRing, seq: int) -> tuple[int, list[bytes]]:
    """What a subscriber resuming after ``seq`` is told it missed, and the frames it is sent."""
    point, missed = ring.resume_point(seq)
    return missed, [update.frame for update in ring.after(point, ring.size)]


def test_ring_resume_replays_what_it_holds_and_counts_what_it_lost():
    ring = UpdateRing(size=3, start=100)
    for _ in range(5):
        seq = ring.next_seq()
        ring.extend([UpdateFrame(seq, seq, f"frame{seq}".encode())])
    assert ring.seq == 104
    assert resume(ring, 103) == (0, [b"frame104"])
    assert resume(ring, 101) == (0, [b"frame102", b"frame103", b"frame104"])
    assert resume(ring, 100) == (1, [b"frame102", b"frame103", b"frame104"])
    assert resume(ring, 104) == (0, [])


def test_ring_resume_from_zero_or_another_hub_run_gets_everything_held():
    ring = UpdateRing(size=10, start=5000)
    seq = ring.next_seq()
    ring.extend([UpdateFrame(seq, seq, b"one")])
    assert resume(ring, 0) == (0, [b"one"])
    assert resume(ring, 4000) == (0, [b"one"])  # from a hub run before this one
    assert resume(ring, 9000) == (0, [b"one"])  # from a future we have not reached


def test_ring_hands_out_batches_in_order():
    ring = UpdateRing(size=10, start=1)
    for _ in range(7):
        seq = ring.next_seq()
        ring.extend([UpdateFrame(seq, seq, str(seq).encode())])
    assert [f.first for f in ring.after(2, 3)] == [3, 4, 5]
    assert [f.first for f in ring.after(5, 100)] == [6, 7]
    assert ring.after(7, 100) == []


def test_ring_counts_the_updates_in_batches_and_hands_out_the_batch_a_resume_falls_in():
    ring = UpdateRing(size=6, start=1)
    for count in (1, 3, 2):  # frames of updates 1, 2-4, 5-6
        seqs = ring.reserve(count)
        ring.extend([UpdateFrame(seqs.start, seqs.stop - 1, f"{seqs.start}-{seqs.stop - 1}".encode())])
    assert (ring.held, ring.oldest) == (6, 1)
    assert [(f.first, f.last) for f in ring.after(2, 100)] == [(2, 4), (5, 6)]  # 3 and 4 are in 2-4
    assert [(f.first, f.last) for f in ring.after(4, 100)] == [(5, 6)]
    ring.reserve(2)
    ring.extend([UpdateFrame(7, 8, b"7-8")])  # 8 held: frame 1 goes; 2-4 stays, for without it fewer than 6 remain
    assert (ring.held, ring.oldest) == (7, 2)
    ring.reserve(2)
    ring.extend([UpdateFrame(9, 10, b"9-10")])  # 5-10 are the newest six: 2-4 goes whole
    assert (ring.held, ring.oldest) == (6, 5)
    assert ring.resume_point(2) == (4, 2)  # 3 and 4 went with their frame


def test_ring_holds_a_batch_larger_than_itself_while_its_last_updates_are_among_the_newest():
    ring = UpdateRing(size=3, start=1)
    seq = ring.next_seq()
    ring.extend([UpdateFrame(seq, seq, b"one")])
    seqs = ring.reserve(5)
    ring.extend([UpdateFrame(seqs.start, seqs.stop - 1, b"two-to-six")])
    assert (ring.held, ring.oldest) == (5, 2)
    seq = ring.next_seq()
    ring.extend([UpdateFrame(seq, seq, b"seven")])
    assert (ring.held, ring.oldest) == (6, 2)  # 5 and 6 are among the newest 3
    assert ring.resume_point(4) == (4, 0)  # within the batch: nothing missed
