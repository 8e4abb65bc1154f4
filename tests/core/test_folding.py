"""Burst folding with an explicit clock."""

from __future__ import annotations

from secmon.folding import BurstFolder
from secmon.protocol import kinds as k
from secmon.protocol import messages as m


def update(kind: str, host: str | None = "203.0.113.9", user: str = "root", serial: int = 1, seq: int = 1):
    event = m.AuthEvent(seq, 1000.0 + seq, kind, "sshd", 10, user, host, 22)
    return m.AuthUpdate(seq, serial, "web-1", "10.0.0.1", event)


def test_first_failure_is_told_at_once_then_the_rest_is_folded_per_window():
    folder = BurstFolder(window=60)
    first = folder.add(update(k.SSH_FAILED_PASSWORD, seq=1), now=0)
    assert len(first) == 1 and not first[0].folded
    for seq in range(2, 501):
        assert folder.add(update(k.SSH_INVALID_USER, user=f"u{seq % 7}", seq=seq), now=seq / 10) == []
    assert folder.due(now=59.9) == []
    assert folder.next_due() == 60
    (folded,) = folder.due(now=60)
    assert folded.folded and folded.count == 499
    assert folded.update.seq == 500 and folded.first_time == 1001.0
    assert len(folded.users) == 5 and folded.kinds == [k.SSH_INVALID_USER]
    assert folder.due(now=1000) == []
    assert len(folder.add(update(k.SSH_FAILED_PASSWORD, seq=501), now=1000)) == 1  # a new window opens


def test_successes_are_never_folded_or_delayed():
    folder = BurstFolder(window=60)
    folder.add(update(k.SSH_FAILED_PASSWORD), now=0)
    folder.add(update(k.SSH_FAILED_PASSWORD, seq=2), now=1)
    (accepted,) = folder.add(update(k.SSH_ACCEPTED, seq=3), now=2)
    assert accepted.update.event.kind == k.SSH_ACCEPTED and accepted.count == 1


def test_sources_fold_separately():
    folder = BurstFolder(window=10)
    for host in ("198.51.100.1", "198.51.100.2"):
        for seq in range(3):
            folder.add(update(k.SSH_FAILED_PASSWORD, host=host, seq=seq), now=0)
    assert sorted((n.update.event.host, n.count) for n in folder.due(now=10)) == [
        ("198.51.100.1", 2),
        ("198.51.100.2", 2),
    ]


def test_a_single_failure_produces_no_empty_summary():
    folder = BurstFolder(window=5)
    folder.add(update(k.SU_FAILED, host=None, user="alice"), now=0)
    assert folder.due(now=5) == []


def test_window_zero_turns_folding_off():
    folder = BurstFolder(window=0)
    assert all(len(folder.add(update(k.SSH_FAILED_PASSWORD, seq=s), now=0)) == 1 for s in range(5))
