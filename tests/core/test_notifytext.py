"""The plain words both chat notifiers use, with plain calls."""

from __future__ import annotations

import pytest

from secmon import notifytext as words
from secmon.protocol import messages as m
from secmon.protocol import notices


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (0.4, "0 s"), (45, "45 s"), (60, "1 min"), (312, "5 min 12 s"), (3600, "1 h"),
     (12_000, "3 h 20 min"), (2 * 86_400 + 4 * 3600 + 5, "2 d 4 h"), (None, "?")],
)  # fmt: skip
def test_span(seconds, text):
    assert words.span(seconds) == text


def test_counts_and_labels():
    assert [words.count(n, "failure") for n in (0, 1, 2)] == ["0 failures", "1 failure", "2 failures"]
    assert words.kind_label(notices.NODE_DOWN) == "Node down"
    assert words.kind_label("ssh_accepted") == "SSH login accepted"


@pytest.mark.parametrize(
    ("source", "text"),
    [
        (None, ""),
        (m.SourceContext(), ""),
        (m.SourceContext("DE", "Germany", "Berlin", 64496, "Example"), "Germany (DE), Berlin · AS64496 Example"),
        (m.SourceContext(country="FR"), "FR"),
        (m.SourceContext(asn=64497), "AS64497"),
        (m.SourceContext(org="Example"), "Example"),
    ],
)
def test_place(source, text):
    assert words.place(source) == text


def test_flags_only_for_what_the_hub_flagged():
    def update(kind, context):
        return m.AuthUpdate(1, 1, "web-1", "10.0.0.1", m.AuthEvent(1, 0.0, kind, "sshd", 1, "alice", "192.0.2.1"),
                            context)  # fmt: skip

    assert words.flags(update("ssh_accepted", None)) == []
    assert words.flags(update("ssh_accepted", m.EventContext(new=["host"], after_failures=1))) == [
        "🆕 New host for alice",
        "⚠️ After 1 failure from this source",
    ]
    assert words.flags(update("ssh_failed_password", m.EventContext(after_failures=3))) == []
