"""The command audit: who asked for which command on which nodes, and how it ended on each.

Every client Execute is one ``CommandRecord``, opened when the hub knows where it
runs (or that it runs nowhere) and finished when every node it ran on has
answered; a request the hub refuses (no such node, not connected in time) is a
record with no outcomes, finished at once. The hub publishes a command_run
notice with each finished record. Records are kept bounded (SECMON_AUDIT_MAX)
in memory and, with SECMON_STATE_DIR, in ``audit.sqlite3``; ids go on increasing
across restarts. Pure apart from that store: times are passed in.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..protocol import messages as m
from ..protocol.codec import encode_body
from .kept import KeptLog

log = logging.getLogger("secmon.hub")

DATABASE = "audit.sqlite3"  # in SECMON_STATE_DIR


@dataclass(slots=True)
class _Open:
    """A record whose nodes have not all answered."""

    record: m.CommandRecord
    nodes: dict[int, str]  # serial → hostname, of the nodes it runs on
    outcomes: dict[int, m.CommandOutcome] = field(default_factory=dict)


class CommandAudit:
    """The audit's records; ``open`` ones change as their nodes answer."""

    def __init__(self, limit: int, directory: Path | None = None, now: float | None = None) -> None:
        """The records kept in ``directory`` (None: memory only); a record a stopped hub left open is
        finished at ``now`` (the start; default the clock's) with the outcomes it had."""
        self.kept = KeptLog(limit, directory, DATABASE, "records")
        self._next_id = self.kept.last_key + 1
        self._open: dict[int, _Open] = {}
        if self.kept.db is not None:
            self._finish_left_open(time.time() if now is None else now)

    def _finish_left_open(self, now: float) -> None:
        """Finish the records of requests that were still running when the hub stopped: their nodes'
        answers will never come (a node that had not answered has no outcome)."""
        left = [record for record in self.records(None, len(self.kept))[0] if record.finished is None]
        for record in left:
            self._keep(replace(record, finished=now))
        if left:
            log.info("audit: %d command records left open by the last run finished (their nodes' answers are lost)",
                     len(left))  # fmt: skip

    def open(
        self, requester: m.Requester, label: str, target: str, nodes: list[tuple[int, str]], now: float
    ) -> m.CommandRecord:
        """The record of a request that runs on ``nodes`` ((serial, hostname) each), or, with none,
        that ran nowhere (refused, or no node connected): that one is finished at once."""
        record = m.CommandRecord(self._next_id, now, requester, label, target, finished=None if nodes else now)
        self._next_id += 1
        if nodes:
            self._open[record.id] = _Open(record, dict(nodes))
        return self._keep(record)

    def outcome(
        self, record_id: int, serial: int, status: str, exit_code: int | None, now: float
    ) -> m.CommandRecord | None:
        """A node's answer; the finished record when it was the last one awaited."""
        pending = self._open.get(record_id)
        if pending is None or serial not in pending.nodes or serial in pending.outcomes:
            return None
        pending.outcomes[serial] = m.CommandOutcome(serial, pending.nodes[serial], status, exit_code, now)
        done = len(pending.outcomes) == len(pending.nodes)
        if done:
            del self._open[record_id]
        outcomes = [pending.outcomes[s] for s in sorted(pending.outcomes)]
        record = replace(pending.record, outcomes=outcomes, finished=now if done else None)
        self._keep(record)
        return record if done else None

    def records(self, since: float | None, limit: int) -> tuple[list[m.CommandRecord], bool]:
        """The latest ``limit`` records started at or after ``since``, oldest first, and whether there are older."""
        answers, more = self.kept.latest_messages(since, limit)
        records = [record for answer in answers if isinstance(answer, m.AuditList) for record in answer.records]
        return records, more

    def close(self) -> None:
        self.kept.close()

    def _keep(self, record: m.CommandRecord) -> m.CommandRecord:
        self.kept.put(record.id, record.time, encode_body(m.AuditList(0, [record])))  # the codec checks it back
        return record
