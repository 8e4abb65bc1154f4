"""Following a log file like `tail -F`, and polling sources, against real files and programs."""

from __future__ import annotations

import json
import select
import stat
from functools import partial

import anyio
import pytest

from secmon.collectors import sources
from secmon.collectors.inotify import FileWatch
from secmon.collectors.positions import FilePosition, JournalCursor, dump_position, load_position
from secmon.collectors.sessions import RECORD, USER_PROCESS
from secmon.collectors.sources import (
    JournalSource,
    follow_file,
    follow_journal,
    poll_sessions,
    read_wg_peers,
)
from secmon.protocol import messages as m

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.positions: list[object] = []  # the position handed over with each batch
        self.status: list[str] = []
        self._changed = anyio.Event()

    def on_lines(self, lines: list[str], position: object) -> None:
        self.lines += lines
        self.positions.append(position)
        self._changed.set()

    def report(self, name: str, value: str) -> None:
        assert name == "auth"
        self.status.append(value)
        self._changed.set()

    async def wait(self, predicate) -> None:
        with anyio.fail_after(10):
            while not predicate():
                self._changed = anyio.Event()
                await self._changed.wait()


@pytest.fixture(params=["inotify", "polling"])
def poll(request, monkeypatch) -> float:
    """The follower's poll interval: with inotify, one so long that only a notification is in time."""
    if request.param == "polling":
        monkeypatch.setattr(FileWatch, "open", classmethod(lambda cls, path: None))
        return 0.01
    return 3600.0


async def test_follow_starts_at_the_end_and_survives_rotation_and_truncation(tmp_path, poll):
    log = tmp_path / "auth.log"
    log.write_text("old line before we started\n")
    (tmp_path / "other.log").write_text("")
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll)
        await rec.wait(lambda: rec.status == [m.AUTH_OK])
        with log.open("a") as f:
            f.write("one\ntw")
            f.flush()
            await rec.wait(lambda: rec.lines == ["one"])
            f.write("o\n")
        await rec.wait(lambda: rec.lines == ["one", "two"])
        (tmp_path / "other.log").write_text("a neighbour's write is not ours\n")
        # rotation: the old file moves away, a new one appears (written to before we look)
        log.rename(tmp_path / "auth.log.1")
        log.write_text("three\n")
        await rec.wait(lambda: rec.lines[-1:] == ["three"])
        # truncation in place
        log.write_text("")
        with log.open("a") as f:
            f.write("four\n")
        await rec.wait(lambda: rec.lines[-1:] == ["four"])
        tg.cancel_scope.cancel()
    assert rec.lines == ["one", "two", "three", "four"]


async def test_follow_waits_for_a_file_that_does_not_exist_yet(tmp_path, poll):
    log = tmp_path / "later.log"
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll)
        await rec.wait(lambda: rec.status and "waiting for" in rec.status[0])
        log.write_text("first\n")
        await rec.wait(lambda: rec.lines == ["first"])  # a new file is read from its start
        tg.cancel_scope.cancel()
    assert rec.status[-1] == m.AUTH_OK


def at(log, offset: int) -> FilePosition:
    info = log.stat()
    return FilePosition(str(log), info.st_dev, info.st_ino, offset)


async def test_each_batch_comes_with_the_offset_after_its_last_whole_line(tmp_path, poll):
    log = tmp_path / "auth.log"
    log.write_text("before\n")
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll)
        await rec.wait(lambda: rec.positions == [at(log, 7)])  # where "from now on" starts, handed over at once
        with log.open("a") as f:
            f.write("one\ntw")
            f.flush()
            await rec.wait(lambda: rec.lines == ["one"])
            f.write("o\n")
        await rec.wait(lambda: rec.lines == ["one", "two"])
        tg.cancel_scope.cancel()
    assert rec.positions == [at(log, 7), at(log, 11), at(log, 15)]  # never inside the unfinished "tw"


async def test_resume_in_the_same_file_reads_only_what_follows(tmp_path, poll):
    log = tmp_path / "auth.log"
    log.write_text("seen\nmissed while down\n")
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll, at(log, 5))
        await rec.wait(lambda: rec.lines == ["missed while down"])
        with log.open("a") as f:
            f.write("live\n")
        await rec.wait(lambda: rec.lines[-1:] == ["live"])
        tg.cancel_scope.cancel()
    assert rec.lines == ["missed while down", "live"]
    assert rec.positions[-1] == at(log, log.stat().st_size)


async def test_resume_reads_the_rest_of_a_file_rotated_meanwhile_then_the_new_one(tmp_path, poll):
    log = tmp_path / "auth.log"
    log.write_text("seen\nmissed before rotation\n")
    saved = at(log, 5)
    log.rename(tmp_path / "auth.log.1")
    with (tmp_path / "auth.log.1").open("a") as f:
        f.write("written to the old file after rotation\n")  # the writer had it open still
    (tmp_path / "auth.log.2.gz").write_bytes(b"\x1f\x8b compressed, never ours")
    (tmp_path / "auth.logger").write_text("a neighbour with a similar name\n")
    log.write_text("in the new file\n")
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll, saved)
        await rec.wait(lambda: rec.lines[-1:] == ["in the new file"])
        with log.open("a") as f:
            f.write("live\n")
        await rec.wait(lambda: rec.lines[-1:] == ["live"])
        tg.cancel_scope.cancel()
    assert rec.lines == [
        "missed before rotation",
        "written to the old file after rotation",
        "in the new file",
        "live",
    ]
    old = tmp_path / "auth.log.1"
    assert rec.positions[0] == FilePosition(str(log), saved.dev, saved.ino, old.stat().st_size)
    assert rec.positions[-1] == at(log, log.stat().st_size)


async def test_resume_in_a_truncated_or_vanished_file_reads_the_file_from_its_start(tmp_path, poll):
    log = tmp_path / "auth.log"
    log.write_text("a long line that was truncated away\n")
    truncated = at(log, 36)
    log.write_text("short\n")
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll, truncated)
        await rec.wait(lambda: rec.lines == ["short"])
        tg.cancel_scope.cancel()

    gone = FilePosition(str(log), truncated.dev, truncated.ino + 10**9, 3)  # no such inode here
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll, gone)
        await rec.wait(lambda: rec.lines == ["short"])
        tg.cancel_scope.cancel()


async def test_a_log_that_does_not_exist_yet_is_read_from_its_start_even_after_a_restart(tmp_path, poll):
    log = tmp_path / "later.log"
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll)
        await rec.wait(lambda: rec.positions)
        tg.cancel_scope.cancel()
    (absent,) = rec.positions
    assert (absent.path, absent.ino, absent.offset) == (str(log), 0, 0)
    log.write_text("written while the node was down\n")
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, poll, absent)
        await rec.wait(lambda: rec.lines == ["written while the node was down"])
        tg.cancel_scope.cancel()


KEPT = [FilePosition("/var/log/auth.log", 2049, 131, 4096), JournalCursor(None, "s=1;i=2"), JournalCursor("/j", "s=3")]
NO_POSITION = [
    "",
    "[]",
    "{}",
    "not json",
    '{"file": "/x", "dev": 1, "ino": 2}',
    '{"file": "/x", "dev": 1, "ino": 2, "offset": -1}',
    '{"file": "/x", "dev": true, "ino": 2, "offset": 1}',
    '{"journal": null, "cursor": ""}',
]


def test_positions_are_kept_as_text_and_odd_text_is_no_position():
    for position in KEPT:
        assert load_position(dump_position(position)) == position
    for text in NO_POSITION:
        assert load_position(text) is None, text


async def test_unreadable_source_is_an_attribute_error(tmp_path):
    log = tmp_path / "a-directory"
    log.mkdir()
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, 0.01)
        await rec.wait(lambda: rec.status)
        tg.cancel_scope.cancel()
    assert rec.status[0] == f"cannot read {log}: Is a directory"


async def test_wg_missing_or_failing_is_an_error_message(tmp_path):
    assert await read_wg_peers(str(tmp_path / "no-such-wg")) == "wg not found: install wireguard-tools"
    fake = tmp_path / "wg"
    fake.write_text("#!/bin/sh\necho 'Unable to access interface: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert await read_wg_peers(str(fake)) == "wg failed (1): Unable to access interface: Operation not permitted"
    fake.write_text("#!/bin/sh\nprintf 'wg0\\tpub\\t(none)\\t(none)\\t10.0.0.2/32\\t0\\t0\\t0\\toff\\n'\n")
    assert await read_wg_peers(str(fake)) == [m.WgPeer("wg0", "pub", None, None)]


ENTRY = (
    '{"__CURSOR":"c%d","SYSLOG_IDENTIFIER":"sshd","_PID":"7","_UID":"0","_EXE":"/usr/sbin/sshd",'
    '"MESSAGE":"Invalid user u%d from 192.0.2.1 port 22"}'
)


def fake_journalctl(tmp_path, monkeypatch, newest: str = "", follow: str = ""):
    """A stand-in journalctl on PATH that logs its arguments to the returned file, and a journal file for it.

    Asked for the newest entry (no -f), it prints ``newest``'s entry if given. Following,
    it prints two entries numbered by how often it followed, then dies (or runs ``follow``).
    """
    calls = tmp_path / "calls"
    fake = tmp_path / "journalctl"
    lookup = f"printf '{ENTRY}\\n' {newest} {newest}" if newest else "true"
    fake.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {calls}\n'
        f'case " $* " in *" -f "*) ;; *) {lookup}; exit 0;; esac\n'
        f"{follow}\n"
        f"n=$(grep -c -- '-f -o json' {calls})\n"
        f"printf '{ENTRY}\\n' $((n*2-1)) $((n*2-1)) $((n*2)) $((n*2))\n"
        "echo 'journal went away' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    journal = tmp_path / "journal" / "0123abcd"  # the machine's journal, with one file
    journal.mkdir(parents=True)
    (journal / "system.journal").write_bytes(b"")
    monkeypatch.setattr(sources, "JOURNAL_DIRECTORIES", (tmp_path / "journal",))
    return calls


async def test_journal_source_is_restarted_after_the_last_cursor(tmp_path, monkeypatch):
    """The stand-in prints two entries and dies; the follower says so and resumes after the last."""
    calls = fake_journalctl(tmp_path, monkeypatch)
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_journal, rec.on_lines, rec.report)
        await rec.wait(lambda: len(rec.lines) >= 4)
        tg.cancel_scope.cancel()
    lookup, first, second = calls.read_text().splitlines()[:3]
    assert lookup.startswith("-n 1 -o json SYSLOG_IDENTIFIER=sshd ")  # the newest entry: there is none
    assert "-f -o json -n 0 SYSLOG_IDENTIFIER=sshd SYSLOG_IDENTIFIER=sshd-session" in first  # an empty journal
    assert "--after-cursor=c2" in second  # nothing between the two runs is skipped or repeated
    assert "journalctl exited with 1: journal went away" in rec.status
    assert rec.status[0] == m.AUTH_OK
    assert [json.loads(x)["MESSAGE"].split()[2] for x in rec.lines[:4]] == ["u1", "u2", "u3", "u4"]
    assert rec.positions[:2] == [JournalCursor(None, "c2"), JournalCursor(None, "c4")]  # the last entry of each


async def test_journal_starts_after_the_newest_entry_and_says_where(tmp_path, monkeypatch):
    """Without a saved cursor, "from now on" is after the newest entry, handed over so it can be kept."""
    calls = fake_journalctl(tmp_path, monkeypatch, newest="0")
    rec = Recorder()
    source = JournalSource(tmp_path / "journal")
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_journal, rec.on_lines, rec.report, source)
        await rec.wait(lambda: len(rec.lines) >= 2)
        tg.cancel_scope.cancel()
    lookup, first = calls.read_text().splitlines()[:2]
    assert lookup.startswith(f"--directory {tmp_path / 'journal'} -n 1 -o json ")
    assert f"--directory {tmp_path / 'journal'} -f -o json --after-cursor=c0 " in first
    where = str(tmp_path / "journal")
    assert rec.positions[:2] == [JournalCursor(where, "c0"), JournalCursor(where, "c2")]
    assert rec.lines[0].startswith('{"__CURSOR":"c1"')  # the newest entry itself is not read


async def test_journal_resumes_after_a_saved_cursor_and_drops_one_it_cannot_use(tmp_path, monkeypatch):
    follow = "case \"$*\" in *after-cursor=bad*) echo 'Failed to seek to cursor: Invalid argument' >&2; exit 1;; esac"
    calls = fake_journalctl(tmp_path, monkeypatch, newest="0", follow=follow)
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(follow_journal, rec.on_lines, rec.report, resume=JournalCursor(None, "c7")))
        await rec.wait(lambda: len(rec.lines) >= 2)
        tg.cancel_scope.cancel()
    assert "--after-cursor=c7 " in calls.read_text().splitlines()[0]  # no look for the newest: we know where

    calls.unlink()
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(follow_journal, rec.on_lines, rec.report, resume=JournalCursor(None, "bad")))
        await rec.wait(lambda: len(rec.lines) >= 2)
        tg.cancel_scope.cancel()
    bad, lookup, after = calls.read_text().splitlines()[:3]
    assert "--after-cursor=bad" in bad and "-f" not in lookup.split() and "--after-cursor=c0" in after
    assert "journalctl exited with 1: Failed to seek to cursor: Invalid argument" in rec.status


async def test_a_journal_without_files_is_waited_for_not_ok(tmp_path, monkeypatch):
    """`journalctl -f` with no journal at all sits silent: that must not read as a healthy source."""
    from secmon.collectors.sources import follow_journal

    fake = tmp_path / "bin" / "journalctl"
    fake.parent.mkdir()
    # What the real one does with nothing to read: a look for the newest entry answers at once, -f sits silent.
    fake.write_text('#!/bin/sh\ncase " $* " in *" -f "*) exec sleep 3600;; esac\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    persistent, volatile = tmp_path / "var-log-journal", tmp_path / "run-log-journal"
    persistent.mkdir()
    monkeypatch.setattr(sources, "JOURNAL_DIRECTORIES", (persistent, volatile))
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_journal, rec.on_lines, rec.report, None, 0.01)
        await rec.wait(lambda: rec.status)
        assert rec.status == [f"waiting for the journal: no journal files in {persistent} or {volatile}"]
        (volatile / "f00d").mkdir(parents=True)
        (volatile / "f00d" / "system.journal").write_bytes(b"")  # journald starts writing
        await rec.wait(lambda: rec.status[-1] == m.AUTH_OK)
        tg.cancel_scope.cancel()
    given = tmp_path / "copied-journal"  # AUTH_LOG=journal:DIR, a directory of journal files
    given.mkdir()
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_journal, rec.on_lines, rec.report, sources.JournalSource(given), 0.01)
        await rec.wait(lambda: rec.status)
        assert rec.status == [f"waiting for the journal: no journal files in {given}"]
        (given / "system@0001.journal").write_bytes(b"")
        await rec.wait(lambda: rec.status[-1] == m.AUTH_OK)
        tg.cancel_scope.cancel()


async def test_sessions_that_cannot_be_read_are_an_error_not_an_empty_list(tmp_path, monkeypatch):
    missing = tmp_path / "utmp"
    monkeypatch.setenv("SECMON_UTMP", str(missing))
    reports: list[object] = []
    reported = anyio.Event()

    def report(name: str, value) -> None:
        reports.append(value)
        reported.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll_sessions, report, 0.01)
        with anyio.fail_after(10):
            await reported.wait()
            reported = anyio.Event()
            missing.write_bytes(utmp_record("alice", "pts/0"))  # logins are recorded from now on
            while not isinstance(reports[-1], list):
                await reported.wait()
                reported = anyio.Event()
        tg.cancel_scope.cancel()
    assert reports[0] == f"cannot see sessions from utmp: cannot read {missing}: No such file or directory"
    assert [s.user for s in reports[-1]] == ["alice"]


def utmp_record(user: str, tty: str) -> bytes:
    fields = [USER_PROCESS, 1, tty.encode(), b"", user.encode(), b"", 0, 0, 0, 1764382141, 0, b""]
    return RECORD.pack(*fields)


async def test_sessions_are_reported_when_utmp_changes(tmp_path, monkeypatch, poll):
    utmp = tmp_path / "utmp"
    utmp.write_bytes(utmp_record("alice", "pts/0"))
    monkeypatch.setenv("SECMON_UTMP", str(utmp))
    reports: list[list[str]] = []
    changed = anyio.Event()

    def report(name: str, value) -> None:
        assert name == "sessions"
        reports.append([s.user for s in value])
        changed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll_sessions, report, poll)
        with anyio.fail_after(10):
            while reports != [["alice"]]:
                await changed.wait()
                changed = anyio.Event()
            (tmp_path / "wtmp").write_bytes(b"x")  # a neighbour changes: no re-read, no report
            with utmp.open("ab") as f:
                f.write(utmp_record("bob", "pts/1"))
            while reports[-1] != ["alice", "bob"]:
                await changed.wait()
                changed = anyio.Event()
        tg.cancel_scope.cancel()
    assert reports == [["alice"], ["alice", "bob"]]


async def test_a_watch_wakes_for_its_file_only_and_follows_rotation(tmp_path):
    assert FileWatch.open(tmp_path / "no-such-dir" / "auth.log") is None  # the caller polls instead
    log = tmp_path / "auth.log"
    neighbour = tmp_path / "syslog"
    neighbour.write_text("")
    watch = FileWatch.open(log)
    assert watch is not None
    try:
        assert await watch.changed(0.05) is False  # nothing happened: the timeout ends the wait
        log.write_text("created\n")
        assert await watch.changed(5) is True
        with neighbour.open("a") as f:
            for _ in range(100):
                f.write("a busy neighbour\n")
                f.flush()
        assert select.select([watch], [], [], 0.1)[0] == []  # its writes do not even wake us
        with log.open("a") as f:
            f.write("written\n")
        assert await watch.changed(5) is True
        log.rename(tmp_path / "auth.log.1")  # rotation: a new file takes the name
        log.write_text("")
        assert await watch.changed(5) is True
        with log.open("a") as f:
            f.write("into the new file\n")
        assert await watch.changed(5) is True  # the watch moved to the new file
    finally:
        watch.close()


def test_the_node_keeps_a_reads_events_and_the_position_after_it_together(tmp_path):
    from secmon.node.journal import SqliteJournal

    journal = SqliteJournal(tmp_path, limit=3)
    assert journal.position is None  # nothing kept yet: the follower starts at the end
    fields = {"time": 1.0, "process": "sshd", "pid": 7, "user": "u", "host": None, "port": None, "kind": "ssh_failed"}
    events = [m.AuthEvent(seq=seq, **fields) for seq in (1, 2)]
    assert journal.add_batch(events, FilePosition("/var/log/auth.log", 1, 2, 300)) == 0
    assert journal.add_batch([], FilePosition("/var/log/auth.log", 1, 2, 400)) == 0  # lines without events move it too
    journal.close()

    again = SqliteJournal(tmp_path, limit=3)
    assert again.position == FilePosition("/var/log/auth.log", 1, 2, 400)
    assert [e.seq for e in again.events] == [1, 2] and again.next_seq == 3
    more = [m.AuthEvent(seq=seq, **fields) for seq in (3, 4)]
    assert again.add_batch(more, JournalCursor(None, "c9")) == 1  # the oldest makes room
    again.close()
    last = SqliteJournal(tmp_path, limit=3)
    assert ([e.seq for e in last.events], last.position) == ([2, 3, 4], JournalCursor(None, "c9"))
    last.close()


async def test_a_position_saved_for_another_auth_source_is_not_used(tmp_path):
    """AUTH_LOG changed between runs: the new source is followed from its end, as on a first start."""
    from secmon.collectors.sources import follow_auth

    log = tmp_path / "secure"
    log.write_text("2026-11-29T02:09:01+00:00 vm sshd[1]: Invalid user old from 192.0.2.1 port 1\n")
    other = tmp_path / "auth.log"
    other.write_text("")
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_auth, str(log), rec.on_lines, rec.report, 0.01, at(other, 0))
        await rec.wait(lambda: rec.positions)
        with log.open("a") as f:
            f.write("2026-11-29T02:09:02+00:00 vm sshd[2]: Invalid user new from 192.0.2.1 port 2\n")
        await rec.wait(lambda: rec.lines)
        tg.cancel_scope.cancel()
    assert [event["user"] for event in rec.lines] == ["new"]
    assert rec.positions == [at(log, 77), at(log, 154)]


async def test_a_journalctl_that_keeps_dying_stays_failing_across_retries(tmp_path, monkeypatch):
    """Each restart that dies at once must not say ok in between: the hub would tell every retry as a change."""
    fake_journalctl(tmp_path, monkeypatch, follow="echo 'Failed to open journal' >&2; exit 3")
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_journal, rec.on_lines, rec.report)
        await rec.wait(lambda: len(rec.status) >= 4)  # ok, then three failed runs (0.5 s, 1 s between them)
        tg.cancel_scope.cancel()
    assert rec.status[0] == m.AUTH_OK  # the first run says ok at once: nothing had failed
    assert rec.status[1:4] == ["journalctl exited with 3: Failed to open journal"] * 3


async def test_a_journalctl_started_again_says_ok_once_it_holds_up(tmp_path, monkeypatch):
    """After a failure, a journalctl that keeps running (with nothing to print) is ok after JOURNAL_STEADY."""
    calls = tmp_path / "calls"
    # the first -f run dies, the next sits silent as a healthy one does
    follow = f"[ $(grep -c -- '-f -o json' {calls}) -ge 2 ] && exec sleep 3600; echo boom >&2; exit 1"
    fake_journalctl(tmp_path, monkeypatch, follow=follow)
    monkeypatch.setattr(sources, "JOURNAL_STEADY", 0.3)
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_journal, rec.on_lines, rec.report)
        await rec.wait(lambda: len(rec.status) >= 3)
        tg.cancel_scope.cancel()
    assert rec.status == [m.AUTH_OK, "journalctl exited with 1: boom", m.AUTH_OK]
