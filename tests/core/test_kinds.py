"""The event vocabulary: every kind the parser emits has one label, and the JSON form carries it."""

from __future__ import annotations

from pathlib import Path

from secmon import jsonform
from secmon.collectors.authlog import AuthLogParser
from secmon.protocol import kinds
from secmon.protocol import messages as m

CORPUS = Path(__file__).parent / "data" / "authlog"
NOW = 1795918141.0  # the corpus's day


def emitted_kinds(name: str) -> set[str]:
    parser = AuthLogParser()
    lines = (CORPUS / name).read_text().split("\n")
    return {event["kind"] for line in lines if (event := parser.parse_line(line, now=NOW))}


def test_every_kind_the_parser_emits_has_a_label():
    """The corpus holds every shape the parser knows (forged lines only in the journal's form):
    the kinds it yields are exactly the labelled ones."""
    assert emitted_kinds("corpus.log") | emitted_kinds("corpus.jsonl") == set(kinds.LABELS)


def test_every_kind_constant_is_labelled_and_failures_are_kinds():
    constants = {value for name, value in vars(kinds).items() if name.isupper() and isinstance(value, str)}
    assert constants == set(kinds.LABELS)
    assert kinds.FAILURE_KINDS < constants


def test_labels_are_plain_words_one_each():
    labels = list(kinds.LABELS.values())
    assert len(set(labels)) == len(labels)  # two kinds that read the same would hide a difference
    assert all(label and label.isprintable() and label.strip() == label for label in labels)


def test_a_kind_from_a_newer_node_is_still_shown_in_words():
    assert kinds.label("ssh_something_new") == "ssh something new"
    assert kinds.label(kinds.SSH_FAILED_PASSWORD) == "SSH password failed"


def test_the_json_form_carries_the_label():
    event = m.AuthEvent(3, 1764382141.0, kinds.SUDO_FAILURE, "sudo", 9, "alice", None, None)
    shown = jsonform.event_json(event)
    assert (shown["kind"], shown["label"], shown["failure"]) == ("sudo_failure", "sudo refused", True)
