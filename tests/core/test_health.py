"""hub/health.py: node_down / node_back and collector changes, with the clock passed in."""

from __future__ import annotations

import anyio

from secmon.config import HubSettings
from secmon.hub.health import BACK_SETTLE, CollectorWatch, OutageTracker
from secmon.hub.hub import Hub
from secmon.protocol import messages as m
from secmon.protocol import notices

NODE = m.NodeRef(3, "web1", "10.0.0.3")
WALL = 1_700_000_000.0  # Unix time when the link ended; monotonic 100.0 is the same moment


def event(time: float) -> dict[str, object]:
    return {"seq": 1, "time": time, "kind": "ssh_failed_password", "process": "sshd"}


def test_a_node_gone_down_after_gets_one_node_down_with_when_its_link_ended():
    tracker = OutageTracker(down_after=60)
    assert tracker.left(3, NODE, 100.0, WALL) is None
    assert tracker.sweep(159.9) == []
    (due,) = tracker.sweep(160.0)
    assert due.kind == notices.NODE_DOWN and due.node == NODE
    assert due.outage == m.Outage(since=WALL, down_after=60)
    assert tracker.sweep(500.0) == []  # one notice, not one per sweep


def test_a_node_back_before_down_after_gives_nothing():
    tracker = OutageTracker(down_after=60)
    tracker.left(3, NODE, 100.0, WALL)
    tracker.joined(3, NODE, 150.0, WALL + 50)
    assert tracker.sweep(1000.0) == []
    assert not tracker.returning


def test_node_back_counts_the_events_written_while_away_once_settled():
    tracker = OutageTracker(down_after=60)
    tracker.left(3, NODE, 100.0, WALL)
    tracker.sweep(160.0)
    moved = m.NodeRef(3, "web1", "10.0.0.9")  # it came back from another address
    tracker.joined(3, moved, 190.0, WALL + 90)
    assert tracker.returning == {3}
    # its backlog: two events from its absence, one written after it rejoined
    tracker.delivered(3, [event(WALL + 10), event(WALL + 80), event(WALL + 91)])
    assert tracker.sweep(190.0 + BACK_SETTLE - 0.01) == []  # still settling
    (due,) = tracker.sweep(190.0 + BACK_SETTLE)
    assert due.kind == notices.NODE_BACK and due.node == moved
    assert due.outage == m.Outage(since=WALL, down_after=60, away=90.0, events=2)
    assert not tracker.returning and tracker.sweep(10_000.0) == []


def test_a_node_that_leaves_again_before_settling_gets_its_node_back_then():
    tracker = OutageTracker(down_after=60)
    tracker.left(3, NODE, 100.0, WALL)
    tracker.sweep(160.0)
    tracker.joined(3, NODE, 200.0, WALL + 100)
    tracker.delivered(3, [event(WALL + 5)])
    owed = tracker.left(3, NODE, 200.5, WALL + 100.5)
    assert owed is not None and owed.kind == notices.NODE_BACK and owed.outage.events == 1
    assert owed.outage.away == 100.0
    (down,) = tracker.sweep(260.5)  # and its new absence is a new outage
    assert down.kind == notices.NODE_DOWN and down.outage.since == WALL + 100.5


def test_a_forgotten_node_never_gets_a_node_back():
    tracker = OutageTracker(down_after=1)
    tracker.left(3, NODE, 100.0, WALL)
    assert [d.kind for d in tracker.sweep(101.0)] == [notices.NODE_DOWN]
    tracker.forgotten(3)
    tracker.joined(3, NODE, 500.0, WALL + 400)  # a node of that serial again: a new node to the hub
    assert tracker.sweep(600.0) == []


def test_events_of_nodes_not_returning_are_not_counted():
    tracker = OutageTracker(down_after=60)
    tracker.delivered(3, [event(WALL)])  # never gone: nothing to count, nothing kept
    tracker.left(3, NODE, 100.0, WALL)
    tracker.delivered(3, [event(WALL)])  # gone, not back yet (a late read of the old link)
    tracker.sweep(160.0)
    tracker.joined(3, NODE, 170.0, WALL + 70)
    (due,) = tracker.sweep(172.0)
    assert due.outage.events == 0


def update(**fields: object) -> m.StateUpdate:
    return m.StateUpdate(**fields)  # type: ignore[arg-type]


def test_collector_failing_is_told_once_per_change_not_per_retry():
    watch = CollectorWatch()
    assert watch.changes(1, update(sessions=[], wg_peers=[], auth=m.AUTH_OK)) == []
    assert watch.changes(1, update(auth="cannot read /var/log/auth.log: Permission denied")) == [
        m.CollectorState("auth", "cannot read /var/log/auth.log: Permission denied")
    ]
    assert watch.changes(1, update(auth="waiting for /var/log/auth.log to appear")) == []  # another text: no news
    assert watch.changes(1, update(sessions=[m.Session("root", "pts/0", None, 1.0)])) == []
    assert watch.changes(1, update(auth=m.AUTH_OK)) == [m.CollectorState("auth")]
    assert watch.changes(1, update(auth=m.AUTH_OK)) == []


def test_collectors_of_each_node_and_each_kind_are_apart():
    watch = CollectorWatch()
    assert watch.changes(1, update(wg_peers="wg not found: install wireguard-tools")) == [
        m.CollectorState("wg_peers", "wg not found: install wireguard-tools")
    ]
    assert watch.changes(2, update(wg_peers="wg failed (1): no")) == [m.CollectorState("wg_peers", "wg failed (1): no")]
    both = watch.changes(1, update(sessions="loginctl failed", wg_peers=[]))
    assert both == [m.CollectorState("sessions", "loginctl failed"), m.CollectorState("wg_peers")]


def test_a_reconnecting_node_still_failing_is_not_told_again_and_initializing_says_nothing():
    watch = CollectorWatch()
    watch.changes(1, update(auth="journalctl exited with 1: boom"))
    # the node reconnects: its new entry starts "initializing", then it sends its state again
    assert watch.changes(1, update(auth=m.INITIALIZING)) == []
    assert watch.changes(1, update(auth="journalctl exited with 1: boom")) == []
    assert watch.changes(1, update(auth=m.NOT_MONITORED)) == [m.CollectorState("auth")]  # no longer collected
    watch.changes(1, update(auth="x"))
    watch.forgotten(1)
    assert watch.changes(1, update(auth="x")) == [m.CollectorState("auth", "x")]  # forgotten: a new node


class FailingJudge:
    """A judge whose sweep fails every time (a bug, or a state file gone bad under the hub)."""

    mutes = None

    def housekeeping(self, now: float, clock: float) -> tuple[list, list]:
        raise RuntimeError("the sweep broke")


async def test_a_failing_housekeeping_step_is_one_log_line_and_the_others_go_on(caplog):
    hub = Hub(HubSettings.from_env({"SECMON_SOCKET": "/nonexistent/hub.sock", "NODE_DOWN_AFTER": "0.2"}))
    hub.judge = FailingJudge()  # type: ignore[assignment]
    hub.outages.left(3, NODE, anyio.current_time(), WALL)  # a node gone: its node_down is due in 0.2 s
    async with anyio.create_task_group() as tg:
        tg.start_soon(hub.housekeeping)
        with anyio.fail_after(5):
            while not len(hub.notice_log.kept):  # the outage step still runs, sweep after sweep
                await anyio.sleep(0.01)
        tg.cancel_scope.cancel()
    [down] = hub.notice_log.latest(None, 10)[0]
    assert down.kind == notices.NODE_DOWN and down.node == NODE
    # once, not once per sweep
    failed = [r.getMessage() for r in caplog.records if "housekeeping" in r.getMessage()]
    assert failed == ["housekeeping: event context sweep failed: RuntimeError('the sweep broke')"]
