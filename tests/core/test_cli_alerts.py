"""The CLI's human output of notices, event context, mute rules and the audit, as plain function calls.

Every line is checked whole for a table of real-looking inputs, and once more with
hostile strings (terminal escapes, newlines, C1 controls) in every field that comes
from a server, the hub or an operator: none may reach the terminal raw.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from secmon.cli import alerts, render
from secmon.cli.arguments import parse
from secmon.cli.terminal import BOLD, DIM, GREEN, RED, RESET, YELLOW, Painter
from secmon.mutewords import rule_text
from secmon.protocol import messages as m
from secmon.protocol import notices

PLAIN = Painter(False)
T = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC
NODE = m.NodeRef(3, "web-1", "10.0.0.5")
GEO = m.SourceContext("DE", "Germany", "Berlin", 64496, "Example Org")
RULE = m.MuteRule(4, source="203.0.113.0/24", user="root", kind="ssh_failed_password", created=T - 60,
                  expires=T + 7200, reason="pen test", by="root (uid 0)")  # fmt: skip
FAN_OUT = m.CommandRecord(
    7, T, m.Requester(998, "secmon", "telegram:42 @alice"), "uptime", "-",
    [m.CommandOutcome(1, "a", m.SUCCESS, 0, T), m.CommandOutcome(2, "b", m.FAILURE, 3, T)], T,
)  # fmt: skip
REFUSED = m.CommandRecord(8, T, m.Requester(0, "root"), "uptime", "nope", [], T)


@pytest.fixture(autouse=True)
def utc():
    """Local time is UTC here, so the expected lines can say it."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def _auth(kind: str, context: m.EventContext | None, **fields: object) -> m.AuthUpdate:
    event = m.AuthEvent(5, T, kind, "sshd", 12, "alice", "203.0.113.5", 2222, **fields)
    return m.AuthUpdate(11, 3, "web-1", "10.0.0.5", event, context)


@pytest.mark.parametrize(
    ("update", "line"),
    [
        (
            m.NoticeUpdate(1, T, notices.NODE_DOWN, node=NODE, outage=m.Outage(T - 70, 60)),
            "[1] 2027-01-15 08:00:00 Node down: web-1 (node 3, 10.0.0.5), last seen 2027-01-15 07:58:50",
        ),
        (
            m.NoticeUpdate(2, T, notices.NODE_BACK, node=NODE, outage=m.Outage(T - 200, 60, 125.4, 3)),
            "[2] 2027-01-15 08:00:00 Node back: web-1 (node 3, 10.0.0.5) after 2m 5s away, 3 events written while away",
        ),
        (
            m.NoticeUpdate(2, T, notices.NODE_BACK, node=NODE, outage=m.Outage(T - 9000, 60, 9000.0, 1)),
            "[2] 2027-01-15 08:00:00 Node back: web-1 (node 3, 10.0.0.5) after 2h 30m away, 1 event written while away",
        ),
        (
            m.NoticeUpdate(
                3,
                T,
                notices.COLLECTOR_FAILED,
                node=NODE,
                collector=m.CollectorState("auth", "cannot read /var/log/auth.log"),
            ),
            "[3] 2027-01-15 08:00:00 Collector failing: web-1 (node 3, 10.0.0.5): auth: cannot read /var/log/auth.log",
        ),
        (
            m.NoticeUpdate(4, T, notices.COLLECTOR_OK, node=NODE, collector=m.CollectorState("wg_peers")),
            "[4] 2027-01-15 08:00:00 Collector working again: web-1 (node 3, 10.0.0.5): wg_peers",
        ),
        (
            m.NoticeUpdate(5, T, notices.MUTE_ADDED, mute=m.MuteChange(RULE, "root (uid 0)")),
            "[5] 2027-01-15 08:00:00 Mute rule added: #4 203.0.113.0/24 user:root kind:ssh_failed_password, "
            'expires 2027-01-15 10:00:00, reason "pen test", by root (uid 0)',
        ),
        (
            m.NoticeUpdate(6, T, notices.MUTE_REMOVED, mute=m.MuteChange(m.MuteRule(9, node="web-1"), "http:ops")),
            "[6] 2027-01-15 08:00:00 Mute rule removed: #9 node:web-1, expires never, by http:ops",
        ),
        (
            m.NoticeUpdate(7, T, notices.MUTE_EXPIRED, mute=m.MuteChange(RULE)),
            "[7] 2027-01-15 08:00:00 Mute rule expired: #4 203.0.113.0/24 user:root kind:ssh_failed_password, "
            'expires 2027-01-15 10:00:00, reason "pen test"',
        ),
        (
            m.NoticeUpdate(
                8,
                T,
                notices.SOURCE_FAILING,
                source=m.SourceFailures("203.0.113.9", 25, 3, 12, T - 300, T, ["a", "b", "c"], ["root", "admin"], GEO),
            ),
            "[8] 2027-01-15 08:00:00 Failures from one source across the fleet: 203.0.113.9 "
            "DE Berlin · AS64496 Example Org: 25 failures on 3 nodes (a, b, c), 12 users (root, admin, … 10 more), "
            "from 2027-01-15 07:55:00 to 2027-01-15 08:00:00",
        ),
        (
            m.NoticeUpdate(
                9,
                T,
                notices.SOURCE_FAILING,
                source=m.SourceFailures(
                    "198.51.100.1", 40, 3, 1, T - 900, T - 600, ["a", "b", "c"], ["root"], None, ended=True
                ),
            ),
            "[9] 2027-01-15 08:00:00 Failures from one source across the fleet: 198.51.100.1: ended, in all: "
            "40 failures on 3 nodes (a, b, c), 1 user (root), from 2027-01-15 07:45:00 to 2027-01-15 07:50:00",
        ),
        (
            m.NoticeUpdate(10, T, notices.COMMAND_RUN, command=FAN_OUT),
            "[10] 2027-01-15 08:00:00 Command run: uptime on every node by telegram:42 @alice via secmon (uid 998): "
            "a: success (exit 0), b: failure (exit 3)",
        ),
        (
            m.NoticeUpdate(11, T, notices.COMMAND_RUN, command=REFUSED),
            "[11] 2027-01-15 08:00:00 Command run: uptime on nope by root (uid 0): ran nowhere",
        ),
        (
            m.NoticeUpdate(12, T, "brand_new_kind", node=NODE),  # from a newer hub: its label in words and its node
            "[12] 2027-01-15 08:00:00 brand new kind: web-1 (node 3, 10.0.0.5)",
        ),
        (
            _auth("ssh_accepted", m.EventContext(GEO, ["host", "asn"], 12, [3, 5]), method="publickey"),
            "[11] 2027-01-15 08:00:00 web-1 (10.0.0.5): ssh_accepted alice from 203.0.113.5:2222 (publickey) "
            "DE Berlin · AS64496 Example Org [NEW host, asn] after 12 failures [muted #3, #5]",
        ),
        (
            _auth("ssh_failed_password", m.EventContext(summarized=8)),
            "[11] 2027-01-15 08:00:00 web-1 (10.0.0.5): ssh_failed_password alice from 203.0.113.5:2222 [summarized]",
        ),
        (
            _auth("ssh_accepted", m.EventContext(m.SourceContext(asn=64500), after_failures=1), method="password"),
            "[11] 2027-01-15 08:00:00 web-1 (10.0.0.5): ssh_accepted alice from 203.0.113.5:2222 (password) "
            "AS64500 after 1 failure",
        ),
        (
            _auth("ssh_failed_password", None),
            "[11] 2027-01-15 08:00:00 web-1 (10.0.0.5): ssh_failed_password alice from 203.0.113.5:2222",
        ),
    ],
)
def test_one_line_per_notice_and_context_after_each_event(update, line):
    assert render.update_line(update, PLAIN) == line


@pytest.mark.parametrize(
    ("source", "text"),
    [
        (None, ""),
        (m.SourceContext(), ""),
        (m.SourceContext("DE", "Germany"), "DE"),
        (m.SourceContext(city="Berlin"), "Berlin"),
        (m.SourceContext(org="Example Org"), "Example Org"),
        (GEO, "DE Berlin · AS64496 Example Org"),
    ],
)
def test_a_sources_context_says_what_is_known(source, text):
    assert alerts.source_text(source) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (0.4, "0s"), (45, "45s"), (60, "1m"), (125.4, "2m 5s"), (3605, "1h"), (11_400, "3h 10m"),
     (2 * 86_400 + 4 * 3_600 + 59, "2d 4h"), (-3, "0s")],
)  # fmt: skip
def test_a_span_in_its_largest_unit_and_the_next(seconds, text):
    assert alerts.duration_text(seconds) == text


def test_the_mute_table_is_one_rule_a_line_by_id():
    table = alerts.mute_table([m.MuteRule(12, node="web-1", by="http:ops"), RULE], PLAIN)
    assert table.splitlines() == [
        "ID  MATCHES                                            EXPIRES              REASON    BY",
        "4   203.0.113.0/24 user:root kind:ssh_failed_password  2027-01-15 10:00:00  pen test  root (uid 0)",
        "12  node:web-1                                         never                          http:ops",
    ]
    assert alerts.mute_table([], PLAIN) == "no mute rules"


def test_an_expiry_past_any_calendar_still_prints():
    rule = m.MuteRule(1, user="x", expires=1e300)  # another client may ask for a rule that lasts for ages
    assert alerts.mute_table([rule], PLAIN).splitlines()[1].split() == ["1", "user:x", "beyond", "9999"]


def test_the_audit_table_says_who_what_where_and_how_it_ended():
    running = m.CommandRecord(9, T + 1, m.Requester(1000, "bob"), "df", "web-1",
                              [m.CommandOutcome(3, "web-1", m.TIMEOUT, None, T + 5)])  # fmt: skip
    table = alerts.audit_table([FAN_OUT, REFUSED, running], PLAIN)
    assert table.splitlines() == [
        "ID  TIME                 WHO                                      LABEL   TARGET      OUTCOME",
        "7   2027-01-15 08:00:00  telegram:42 @alice via secmon (uid 998)  uptime  every node  "
        "a: success (exit 0), b: failure (exit 3)",
        "8   2027-01-15 08:00:00  root (uid 0)                             uptime  nope        ran nowhere",
        "9   2027-01-15 08:00:01  bob (uid 1000)                           df      web-1       web-1: timeout, running",
    ]
    assert alerts.audit_table([], PLAIN) == "no commands recorded"


def test_colours_mark_severity_flags_and_outcomes_when_on_a_terminal():
    paint = Painter(True)
    down = render.update_line(m.NoticeUpdate(1, T, notices.NODE_DOWN, node=NODE, outage=m.Outage(T, 60)), paint)
    assert f"{RED}Node down{RESET}" in down
    line = render.update_line(_auth("ssh_accepted", m.EventContext(new=["host"], after_failures=2, muted=[1])), paint)
    assert f"{YELLOW}[NEW host]{RESET}" in line and f"{YELLOW}after 2 failures{RESET}" in line
    assert f"{DIM}[muted #1]{RESET}" in line
    table = alerts.audit_table([FAN_OUT], paint).splitlines()
    assert f"{BOLD}ID" in table[0]
    assert table[1].endswith(f"a: {GREEN}success (exit 0){RESET}, b: {RED}failure (exit 3){RESET}")


# --- hostile text -------------------------------------------------------------------------

EVIL = "x\x1b[2J\x1b]0;owned\x07\r\n\x9b31m\x7fy"
_OURS = re.compile("|".join(re.escape(code) for code in (GREEN, RED, YELLOW, DIM, BOLD, RESET)))
_RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


def _hostile_updates() -> list[m.NoticeUpdate | m.AuthUpdate]:
    node = m.NodeRef(3, EVIL, EVIL)
    rule = m.MuteRule(1, source=EVIL, user=EVIL, node=EVIL, kind=EVIL, reason=EVIL, by=EVIL)
    geo = m.SourceContext(EVIL, EVIL, EVIL, 64496, EVIL)
    record = m.CommandRecord(1, T, m.Requester(0, EVIL, EVIL), EVIL, EVIL,
                             [m.CommandOutcome(1, EVIL, EVIL, 1, T)], T)  # fmt: skip
    event = m.AuthEvent(1, T, "ssh_accepted", EVIL, 1, EVIL, EVIL, 22, EVIL, EVIL, EVIL, EVIL)
    return [
        m.NoticeUpdate(1, T, notices.NODE_DOWN, node=node, outage=m.Outage(T, 60)),
        m.NoticeUpdate(2, T, notices.NODE_BACK, node=node, outage=m.Outage(T, 60, 5, 1)),
        m.NoticeUpdate(3, T, notices.COLLECTOR_FAILED, node=node, collector=m.CollectorState(EVIL, EVIL)),
        m.NoticeUpdate(4, T, notices.COLLECTOR_OK, node=node, collector=m.CollectorState(EVIL)),
        m.NoticeUpdate(5, T, notices.MUTE_ADDED, mute=m.MuteChange(rule, EVIL)),
        m.NoticeUpdate(
            6, T, notices.SOURCE_FAILING, source=m.SourceFailures(EVIL, 30, 3, 2, T, T, [EVIL], [EVIL, EVIL], geo)
        ),
        m.NoticeUpdate(7, T, notices.COMMAND_RUN, command=record),
        m.NoticeUpdate(8, T, EVIL, node=node),
        m.AuthUpdate(9, 3, EVIL, EVIL, event, m.EventContext(geo, [EVIL], 3, [1], 6)),
    ]


@pytest.mark.parametrize("paint", [Painter(False), Painter(True)], ids=["plain", "colour"])
def test_no_control_character_from_anyone_reaches_the_terminal(paint):
    rule = m.MuteRule(1, source=EVIL, user=EVIL, node=EVIL, kind=EVIL, reason=EVIL, by=EVIL)
    record = m.CommandRecord(1, T, m.Requester(0, EVIL, EVIL), EVIL, EVIL, [m.CommandOutcome(1, EVIL, EVIL)])
    texts = [render.update_line(update, paint) for update in _hostile_updates()]
    texts += [alerts.mute_table([rule], paint), alerts.audit_table([record], paint)]
    for text in texts:
        for line in text.splitlines():
            assert not _RAW_CONTROL.search(_OURS.sub("", line)), line
            assert "\\x1b[2J" in line or line.startswith(("ID", "\x1b[1mID")), line
    assert all(len(text.splitlines()) == 1 for text in texts[:-2])  # a notice stays one line


def test_a_rule_reads_back_as_the_matchers_that_made_it():
    for argv in (["203.0.113.0/24", "user:root"], ["node:web-1", "kind:su_failed"], ["2001:db8::/32"],
                 ["user:a:b", "node:fe80::1"]):  # fmt: skip
        fields = parse(["mute", "add", *argv]).fields
        assert parse(["mute", "add", *rule_text(m.MuteRule(1, **fields)).split()]).fields == fields
