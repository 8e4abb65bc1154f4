"""The notices the hub keeps for QueryNotices, so a client that opens late (the dashboard) shows
the recent ones, then follows the rest live from the answer's ``last_seq``.

Bounded (SECMON_NOTICES_MAX), in memory and, with SECMON_STATE_DIR, in
``notices.sqlite3``: a restarted hub still answers with the notices of its last run.
"""

from __future__ import annotations

from pathlib import Path

from ..protocol import messages as m
from ..protocol.codec import encode_body
from .kept import KeptLog

DATABASE = "notices.sqlite3"  # in SECMON_STATE_DIR


class NoticeLog:
    """Every notice the hub gave, the latest ``limit`` of them, by seq."""

    def __init__(self, limit: int, directory: Path | None = None) -> None:
        self.kept = KeptLog(limit, directory, DATABASE, "notices")

    def add(self, notice: m.NoticeUpdate) -> None:
        self.kept.put(notice.seq, notice.time, encode_body(notice))

    def latest(self, since: float | None, limit: int) -> tuple[list[m.NoticeUpdate], bool]:
        """The latest ``limit`` notices given at or after ``since``, oldest first, and whether there are older."""
        messages, more = self.kept.latest_messages(since, limit)
        found = [notice for notice in messages if isinstance(notice, m.NoticeUpdate)]
        return found, more

    def close(self) -> None:
        self.kept.close()
