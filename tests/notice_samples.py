"""Samples for the chat formatters' tests: one notice of each kind, hostile text where people write."""

from __future__ import annotations

from secmon.folding import Notice
from secmon.protocol import kinds as k
from secmon.protocol import messages as m
from secmon.protocol import notices

T = 1764382141.0  # 2025-11-29 02:09:01 UTC
HOSTILE = '<b>x</b> & </code><script>"@everyone **b** _i_ `c` [l](http://e) <@123> ||s||'
NODE = m.NodeRef(2, "web-1", "10.0.0.2")
GEO = m.SourceContext("DE", "Germany", "Berlin", 64496, "Example Net")


def login(context=None, kind=k.SSH_ACCEPTED, user="alice", host="203.0.113.5") -> Notice:
    event = m.AuthEvent(1, T, kind, "sshd", 42, user, host, 22, "publickey")
    return Notice(m.AuthUpdate(9, 2, "web-1", "10.0.0.2", event, context))


def rule(**fields) -> m.MuteRule:
    base = {"id": 3, "source": "203.0.113.0/24", "user": "root", "created": T, "expires": T + 7200,
            "reason": "scanner", "by": "alice (uid 1000)"}  # fmt: skip
    return m.MuteRule(**{**base, **fields})


def every_notice(text: str = "ok") -> dict[str, m.NoticeUpdate]:
    """One notice of each kind, with ``text`` in every field a person or a server wrote."""
    node = m.NodeRef(2, text, "10.0.0.2")
    requester = m.Requester(1000, text, f"telegram:42 @{text}")
    record = m.CommandRecord(
        5, T, requester, text, text,
        [m.CommandOutcome(2, text, m.SUCCESS, 0, T + 1), m.CommandOutcome(3, "db-1", "failure", 1, T + 1)], T + 1,
    )  # fmt: skip
    failing = m.SourceFailures("203.0.113.9", 30, 3, 2, T - 60, T, [text, "web-2", "web-3"], [text, "root"],
                               m.SourceContext("DE", text, text, 64496, text))  # fmt: skip
    return {
        notices.NODE_DOWN: m.NoticeUpdate(1, T, notices.NODE_DOWN, node=node, outage=m.Outage(T - 65, 60.0)),
        notices.NODE_BACK: m.NoticeUpdate(
            2, T, notices.NODE_BACK, node=node, outage=m.Outage(T - 312, 60.0, away=312, events=4)
        ),
        notices.COLLECTOR_FAILED: m.NoticeUpdate(
            3, T, notices.COLLECTOR_FAILED, node=node, collector=m.CollectorState("auth", text)
        ),
        notices.COLLECTOR_OK: m.NoticeUpdate(4, T, notices.COLLECTOR_OK, node=node, collector=m.CollectorState("auth")),
        notices.MUTE_ADDED: m.NoticeUpdate(5, T, notices.MUTE_ADDED, mute=m.MuteChange(rule(reason=text), text)),
        notices.MUTE_REMOVED: m.NoticeUpdate(6, T, notices.MUTE_REMOVED, mute=m.MuteChange(rule(user=text), text)),
        notices.MUTE_EXPIRED: m.NoticeUpdate(7, T, notices.MUTE_EXPIRED, mute=m.MuteChange(rule(reason=text), "")),
        notices.SOURCE_FAILING: m.NoticeUpdate(8, T, notices.SOURCE_FAILING, source=failing),
        notices.COMMAND_RUN: m.NoticeUpdate(9, T, notices.COMMAND_RUN, command=record),
    }
