"""Where a followed auth source has been read up to, and the text it is kept as.

A follower hands each batch of lines over together with the position just
after them; the node stores that position in the same transaction as the
batch's events, so after a restart it resumes exactly there. A file is named
by the path it is followed under (AUTH_LOG) and identified by device and
inode, so a position still finds its file after rotation renamed it; the
journal's own cursor names an entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FilePosition:
    """Just past the last whole line handed over from the file ``(dev, ino)``, followed as ``path``."""

    path: str
    dev: int
    ino: int
    offset: int


@dataclass(frozen=True, slots=True)
class JournalCursor:
    """Just after the journal entry ``cursor``, in the machine's journal or the one in ``directory``."""

    directory: str | None
    cursor: str


Position = FilePosition | JournalCursor


def dump_position(position: Position) -> str:
    """The text a position is stored as."""
    if isinstance(position, FilePosition):
        return json.dumps({"file": position.path, "dev": position.dev, "ino": position.ino, "offset": position.offset})
    return json.dumps({"journal": position.directory, "cursor": position.cursor})


def load_position(text: str) -> Position | None:
    """The position ``text`` holds; None for anything else (an unknown form is never fatal)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("file"), str) and all(_is_count(data.get(k)) for k in ("dev", "ino", "offset")):
        return FilePosition(data["file"], data["dev"], data["ino"], data["offset"])
    directory, cursor = data.get("journal"), data.get("cursor")
    if (directory is None or isinstance(directory, str)) and isinstance(cursor, str) and cursor and "journal" in data:
        return JournalCursor(directory, cursor)
    return None


def _is_count(value: object) -> bool:
    return type(value) is int and value >= 0
