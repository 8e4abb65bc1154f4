"""The auth-log corpus: every shape SecMon knows, in file order, as syslog text and as journal JSON.

data/authlog/corpus.log and corpus.jsonl hold the same messages (plus junk);
corpus.expected.json holds, per line, the event expected from a parser that
has read the lines before it. make_corpus.py beside them writes all three.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from secmon.collectors import authlog as a
from secmon.collectors.connections import ConnectionTracker
from secmon.protocol import kinds as k

DATA = Path(__file__).parent / "data" / "authlog"
EXPECTED = json.loads((DATA / "corpus.expected.json").read_text())
FORMS = {"syslog": "corpus.log", "journal": "corpus.jsonl"}
NOW = 1795918141.0  # 2026-11-29, the corpus's day: classic stamps take this year


def lines(form: str) -> list[str]:
    text = (DATA / FORMS[form]).read_text()
    return text.split("\n")[:-1]


def expected_event(row: dict, form: str) -> dict | None:
    """The event a line should give; a journal record can show a writer other than the one named."""
    return row["journal_event"] if form == "journal" and "journal_event" in row else row["event"]


def expected_unmatched(row: dict, form: str) -> str | None:
    return None if form == "journal" and row.get("journal_event") else row["unmatched"]


def without_time(event: dict | None) -> dict | None:
    if event is None:
        return None
    return {k: v for k, v in event.items() if k != "time" and v is not None}


@pytest.mark.parametrize("form", FORMS)
def test_every_line_gives_its_expected_event_in_file_order(form):
    corpus = lines(form)
    assert len(corpus) == len(EXPECTED)
    parser = a.AuthLogParser()
    wrong = []
    for number, (line, expected) in enumerate(zip(corpus, EXPECTED, strict=True), 1):
        event = parser.parse_line(line, now=NOW)
        want = expected_event(expected, form)
        if without_time(event) != want:
            got = without_time(event)
            wrong.append(f"line {number}: {line[:160]!r}\n  got      {got}\n  expected {want}")
            continue
        exact = form == "journal" or expected["header"] in ("iso", "rfc5424")
        if event is not None and exact:
            assert event["time"] == pytest.approx(expected["time"], abs=1e-3), line
    assert not wrong, "\n".join(wrong[:20]) + f"\n({len(wrong)} lines differ)"


def test_the_corpus_covers_every_kind_and_both_ssh_programs():
    events = [e for row in EXPECTED for form in FORMS if (e := expected_event(row, form))]
    kinds = {e["kind"] for e in events}
    assert kinds >= k.FAILURE_KINDS | {k.SSH_ACCEPTED, k.SSH_DISCONNECTED, k.SU_OPENED, k.SU_CLOSED, k.SUDO_COMMAND}
    assert {e["process"] for e in events} >= {"sshd", "sshd-session", "sshd-auth", "su", "runuser", "sudo"}
    assert len(EXPECTED) >= 500 and sum(row["event"] is not None for row in EXPECTED) >= 300
    headers = {row["header"] for row in EXPECTED}
    assert headers == {"classic", "iso", "rfc5424", "solaris", "pri", "junk"}


def test_sshd_failures_name_their_host():
    """What the issue measured: an sshd failure event that names no host is of no use to a ban."""
    failures = [e for row in EXPECTED if (e := row["event"]) and e["kind"] in k.FAILURE_KINDS and e["process"] != "su"]
    ssh = [e for e in failures if e["kind"].startswith("ssh_") and e["kind"] != k.SSH_THROTTLED]
    assert ssh and all(e.get("host") for e in ssh)


def test_lines_taken_alone_never_invent_a_host():
    """Without the lines before it, a line gives at most what it says itself."""
    for line in lines("syslog"):
        alone = a.parse_line(line, now=NOW)
        if alone is not None and alone.get("host"):
            assert alone["host"] in line or "::ffff:" + alone["host"] in line, line


@pytest.mark.parametrize("form", FORMS)
def test_truncated_lines_never_raise(form):
    parser = a.AuthLogParser()
    for line in lines(form)[::7]:
        for cut in range(0, len(line), 9):
            parser.parse_line(line[:cut], now=NOW)
            a.parse_line(line[cut:], now=NOW)


def test_the_tracker_forgets_old_connections_and_stays_bounded():
    tracker = ConnectionTracker(limit=3, ttl=60.0)
    parser = a.AuthLogParser(tracker)
    failed = "2026-11-29T02:00:00+00:00 web1 sshd[7]: Failed password for root from 203.0.113.4 port 4000 ssh2"
    later = "2026-11-29T02:{:02d}:00+00:00 web1 sshd[7]: Disconnecting: Too many authentication failures [preauth]"
    assert parser.parse_line(failed)["host"] == "203.0.113.4"
    assert parser.parse_line(later.format(0))["host"] == "203.0.113.4"
    parser.parse_line(failed)
    assert parser.parse_line(later.format(5)).get("host") is None  # five minutes on: expired
    for pid in range(100, 110):
        parser.parse_line(failed.replace("sshd[7]", f"sshd[{pid}]"))
    assert len(tracker) == 3


def test_a_new_connection_on_a_reused_pid_starts_afresh():
    parser = a.AuthLogParser()
    stamp = "2026-11-29T02:00:00+00:00 web1 sshd[7]: "
    parser.parse_line(stamp + "Invalid user admin from 203.0.113.4 port 4000")
    parser.parse_line(stamp + "Received disconnect from 203.0.113.4 port 4000:11: Bye [preauth]")
    parser.parse_line(stamp + "Failed password for root from 198.51.100.2 port 5000 ssh2")
    event = parser.parse_line(stamp + "Connection closed by 198.51.100.2 port 5000 [preauth]")
    assert (event["kind"], event["user"], event["host"]) == (k.SSH_CLOSED_PREAUTH, "root", "198.51.100.2")


def test_authlog_stats_over_the_corpus(tmp_path):
    """`secmon authlog FILE --stats` as an operator runs it: events as JSON lines, then the summary."""
    result = subprocess.run(
        [sys.executable, "-m", "secmon", "authlog", str(DATA / "corpus.log"), "--stats"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    events = [json.loads(line) for line in out if line.startswith("{")]
    expected = [row["event"] for row in EXPECTED if row["event"]]
    assert [e["kind"] for e in events] == [e["kind"] for e in expected]
    assert [e.get("host") for e in events] == [e.get("host") for e in expected]
    summary = "\n".join(line for line in out if not line.startswith("{"))
    assert f"lines read: {len(EXPECTED)}" in summary
    assert f"events: {len(expected)}" in summary
    for kind in {e["kind"] for e in expected}:
        count = sum(e["kind"] == kind for e in expected)
        assert f"  {kind}: {count}" in summary
    unknown = Counter(row["unmatched"] for row in EXPECTED if row["unmatched"])
    by_program = ", ".join(f"{program} {count}" for program, count in sorted(unknown.items()))
    assert f"not recognised: {sum(unknown.values())} ({by_program})" in summary


@pytest.mark.parametrize("form", FORMS)
def test_authlog_unmatched_lists_exactly_the_lines_of_no_known_shape(form):
    result = subprocess.run(
        [sys.executable, "-m", "secmon", "authlog", str(DATA / FORMS[form]), "--unmatched"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    corpus = lines(form)
    unknown = [line for line, row in zip(corpus, EXPECTED, strict=True) if expected_unmatched(row, form)]
    assert result.stdout.splitlines() == unknown


def test_authlog_unmatched_prints_the_lines_it_did_not_know(tmp_path):
    log = tmp_path / "auth.log"
    known = "2026-11-29T02:00:00+00:00 web1 sshd[7]: Invalid user admin from 203.0.113.4 port 4000"
    odd = "2026-11-29T02:00:01+00:00 web1 sudo[9]: alice : a shape from a future sudo"
    other = "2026-11-29T02:00:02+00:00 web1 cron[3]: nothing to see"
    log.write_text("\n".join([known, odd, other]) + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "secmon", "authlog", "-", "--unmatched"],
        input=log.read_text(), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [odd]


def test_authlog_help_and_bad_usage():
    run = [sys.executable, "-m", "secmon", "authlog"]
    helped = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert helped.returncode == 0 and "--stats" in helped.stdout and "--unmatched" in helped.stdout
    bad = subprocess.run([*run, "--bogus"], capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    missing = subprocess.run([*run, "/nonexistent/auth.log"], capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 1 and "cannot read /nonexistent/auth.log" in missing.stderr
