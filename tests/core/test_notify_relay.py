"""The notifiers' relay over a stream of updates: what it skips, folds, holds and digests."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

import anyio

from secmon.folding import Notice
from secmon.notify import relay
from secmon.protocol import kinds as k
from secmon.protocol import messages as m
from secmon.protocol import notices
from secmon.quiet import Digest, QuietHours

NODE = m.NodeRef(1, "web-1", "10.0.0.1")


def auth(seq, kind=k.SSH_ACCEPTED, host="192.0.2.1", user="alice", context=None) -> m.AuthUpdate:
    return m.AuthUpdate(seq, 1, "web-1", "10.0.0.1", m.AuthEvent(seq, 0.0, kind, "sshd", 1, user, host, 22), context)


def node_down(seq) -> m.NoticeUpdate:
    return m.NoticeUpdate(seq, 0.0, notices.NODE_DOWN, node=NODE, outage=m.Outage(0.0, 60.0))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def run(updates, *, clock=None, quiet=None, window=0.0) -> list:
    """Relay ``updates`` (pairs of wall-clock time and update) and return what was delivered."""
    clock = clock or Clock(0.0)
    delivered = []

    async def stream() -> AsyncIterator:
        for when, update in updates:
            clock.now = when
            yield update

    async def deliver(item) -> None:
        delivered.append(item)

    with anyio.fail_after(5):
        await relay(stream(), deliver, window=window, quiet=quiet, clock=clock)
    return delivered


def seqs(items) -> list:
    return [i.update.seq if type(i) is Notice else i.seq if type(i) is m.NoticeUpdate else "digest" for i in items]


async def test_muted_and_summarized_events_are_skipped_notices_and_the_rest_pass():
    node = m.NodeUpdate(9, m.NodeInfo(1, "web-1", "10.0.0.1", True, None, [], [], "ok"), ["sessions"])
    updates = [
        auth(1),
        auth(2, context=m.EventContext(muted=[3])),
        auth(3, k.SSH_FAILED_PASSWORD, context=m.EventContext(summarized=7)),
        auth(4, context=m.EventContext(source=m.SourceContext(country="DE"), new=[notices.NEW_HOST])),
        node,
        node_down(5),
        auth(6, k.SSH_FAILED_PASSWORD, context=m.EventContext(muted=[1, 2], summarized=5)),
    ]
    delivered = await run([(0.0, u) for u in updates])
    assert seqs(delivered) == [1, 4, 5]
    assert delivered[2] is updates[5]


async def test_failures_still_fold_and_notices_are_not_folded():
    updates = [auth(i, k.SSH_FAILED_PASSWORD, host="203.0.113.9") for i in range(1, 6)] + [node_down(6), node_down(7)]
    delivered = await run([(0.0, u) for u in updates], window=60.0)
    # the first failure at once, both notices, then the folded four at the stream's end (flush)
    assert seqs(delivered) == [1, 6, 7, 5]
    assert delivered[-1].count == 4


async def test_quiet_hours_hold_and_digest_when_the_window_ends():
    hours = QuietHours.parse("22:00-07:00")  # local time, as the relay's clock is read in it
    night = dt.datetime(2026, 11, 30, 23, 0).timestamp()
    morning = dt.datetime(2026, 12, 1, 7, 0, 1).timestamp()
    new_login = auth(4, context=m.EventContext(new=[notices.NEW_COUNTRY]))
    updates = [
        (night, auth(1)),
        (night, auth(2, k.SSH_FAILED_PASSWORD, host="203.0.113.9")),
        (night, node_down(3)),  # critical: passes at once
        (night + 1, new_login),  # critical too
        (night + 2, auth(5, context=m.EventContext(muted=[1]))),  # muted: not even in the digest
        (morning, auth(6)),
    ]
    delivered = await run(updates, quiet=hours)
    assert seqs(delivered) == [3, 4, "digest", 6]
    digest = delivered[2]
    assert isinstance(digest, Digest) and digest.held == 2
    assert dict(digest.events) == {k.SSH_ACCEPTED: 1, k.SSH_FAILED_PASSWORD: 1}
    assert digest.sources == {"192.0.2.1": 1, "203.0.113.9": 1}


async def test_what_quiet_hours_hold_at_stop_comes_out_as_a_digest():
    night = dt.datetime(2026, 11, 30, 23, 0).timestamp()
    delivered = await run([(night, auth(1)), (night, auth(2))], quiet=QuietHours.parse("22:00-07:00"))
    assert len(delivered) == 1 and isinstance(delivered[0], Digest) and delivered[0].held == 2
