"""docs/protocol.md and docs/architecture.md against the code: the documents cannot drift unnoticed.

The message tables of the protocol document must list every message and record
with the fields, types and defaults of ``messages.py``, and say who sends each
message exactly as ``connection.RULES`` does. Every name either document puts
in code type (a module path, a class, a function, a constant, a setting) must
still exist in the source.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from secmon.protocol import messages as m
from secmon.protocol.connection import RULES, Role

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PROTOCOL = DOCS / "protocol.md"
SOURCES = [ROOT / "packages" / package / "src" for package in ("core", "http", "telegram", "discord")]
RECORDS = {
    cls.__name__: cls
    for cls in (
        m.Session, m.WgPeer, m.AuthEvent, m.NodeInfo, m.EventFilter, m.StoredEvent, m.StatsSeries, m.StatsRow,
        m.SourceContext, m.EventContext, m.MuteRule, m.Requester, m.CommandOutcome, m.CommandRecord, m.NodeRef,
        m.Outage, m.CollectorState, m.MuteChange, m.SourceFailures,
    )
}  # fmt: skip
MESSAGES = {cls.__name__: cls for cls in m.MESSAGE_TYPES.values()}
ROLES = {"node": Role.NODE, "client": Role.CLIENT, "hub": Role.HUB}
# Error and Keepalive are everyone's, so RULES leaves them out; the table says so in these words.
EVERYONES = {m.Error: "any side, at any time", m.Keepalive: "any side, once open"}
PIPE = "\x00"  # stands for an escaped \| inside a cell while a row is split


def table(heading: str) -> list[list[str]]:
    """The rows (cells stripped, header and rule left out) of the first table after ``heading``."""
    lines = PROTOCOL.read_text().splitlines()
    start = lines.index(heading)
    rows = []
    for line in lines[start + 1 :]:
        if rows and not line.startswith("|"):
            break
        if line.startswith("|"):
            cells = line.replace("\\|", PIPE).strip().strip("|").split("|")
            rows.append([cell.strip().replace(PIPE, "|") for cell in cells])
    return rows[2:]


def fields_of(cell: str) -> list[tuple[str, str, object]]:
    """``name: type = default`` code spans as (name, type, default), the default a literal or MISSING."""
    if cell == "—":
        return []
    fields = []
    for span in re.findall(r"`([^`]+)`", cell):
        declaration, _, default = span.partition(" = ")
        name, _, hint = declaration.partition(": ")
        fields.append((name, hint, ast.literal_eval(default) if default else dataclasses.MISSING))
    return fields


def fields_in_code(cls: type) -> list[tuple[str, str, object]]:
    fields = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        fields.append((f.name, f.type, default))
    return fields


def test_the_tables_are_read():
    assert len(table("### Records")) == len(RECORDS)
    assert table("### Messages and who sends them")[0][:2] == ["Hello", "`hello`"]


def test_every_record_is_listed_with_its_fields():
    rows = {row[0]: row for row in table("### Records")}
    assert sorted(rows) == sorted(RECORDS)
    for name, cls in RECORDS.items():
        assert fields_of(rows[name][1]) == fields_in_code(cls), name


def test_every_message_is_listed_once_with_its_tag_and_fields():
    rows = table("### Messages and who sends them")
    names = [row[0] for row in rows]
    assert sorted(names) == sorted(MESSAGES) and len(set(names)) == len(names)
    for name, tag, _sent, fields in rows:
        assert tag == f"`{MESSAGES[name].TAG}`", name
        assert fields_of(fields) == fields_in_code(MESSAGES[name]), name


def directions(cell: str) -> set[tuple[Role, Role, bool]]:
    """``node → hub (opening); hub → client`` as (sender, receiver, is the opening)."""
    found = set()
    for part in cell.split(";"):
        match = re.fullmatch(r"(\w+) → (\w+)( \(opening\))?", part.strip())
        assert match is not None, f"cannot read {part!r}"
        found.add((ROLES[match[1]], ROLES[match[2]], match[3] is not None))
    return found


def test_who_sends_what_is_exactly_the_connection_table():
    documented: set[tuple[Role, Role, type, bool]] = set()
    for name, _tag, sent, _fields in table("### Messages and who sends them"):
        cls = MESSAGES[name]
        if cls in EVERYONES:
            assert sent == EVERYONES[cls]
            continue
        documented |= {(sender, receiver, cls, opening) for sender, receiver, opening in directions(sent)}
    in_code = {
        (sender, receiver, cls, opening)
        for (sender, receiver), rules in RULES.items()
        for opening, types in ((True, rules.opening), (False, rules.then))
        for cls in types
    }
    assert documented == in_code
    assert not any(cls in rules.opening | rules.then for rules in RULES.values() for cls in EVERYONES)


def test_the_direction_reader_rejects_what_it_cannot_read():
    with pytest.raises(AssertionError):
        directions("node to hub")


# --- names ------------------------------------------------------------------------

IDENTIFIER = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\(\))?")
PATH = re.compile(r"[\w.-]+(?:/[\w.-]*)+")


def source_text() -> str:
    """The four packages' code and the names of their files, and the import test the architecture cites."""
    files = [p for source in SOURCES for p in source.rglob("*") if p.suffix in (".py", ".js", ".html")]
    names = [str(p.relative_to(ROOT)) for p in files]
    return "\n".join([*names, *(p.read_text() for p in files), (ROOT / "tests/core/test_imports.py").read_text()])


def path_exists(path: str) -> bool:
    """A path as the documents write it: from the repository, a package's source, or core's ``secmon``."""
    bases = [ROOT, DOCS, ROOT / "packages" / "core" / "src" / "secmon", *SOURCES]
    return any((base / path).exists() for base in bases)


def code_spans() -> list[tuple[str, str]]:
    spans = []
    for document in ("protocol.md", "architecture.md"):
        text = re.sub(r"```.*?```", "", (DOCS / document).read_text(), flags=re.DOTALL)
        spans += [(document, span) for span in re.findall(r"`([^`\n]+)`", text)]
    return spans


def test_every_name_and_path_the_documents_use_exists():
    source = source_text()
    words = set(re.findall(r"\w+", source))
    missing = []
    for document, span in code_spans():
        if PATH.fullmatch(span) and not span.startswith("/"):
            if not path_exists(span):
                missing.append(f"{document}: path {span}")
        elif IDENTIFIER.fullmatch(span):
            parts = span.removesuffix("()").split(".")
            missing += [f"{document}: {span} ({part})" for part in parts if part not in words]
    assert missing == []


def test_the_name_check_would_notice_a_rename():
    words = set(re.findall(r"\w+", source_text()))
    assert "MAX_FRAME" in words and "MAX_FRAMES_PER_READ" not in words
    assert path_exists("hub/nodes.py") and not path_exists("hub/events.py")
