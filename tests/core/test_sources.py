"""Following a log file like `tail -F`, and polling sources, against real files and programs."""

from __future__ import annotations

import json
import select
import stat

import anyio
import pytest

from secmon.collectors import sources
from secmon.collectors.authlog import MAX_LINE
from secmon.collectors.inotify import FileWatch
from secmon.collectors.sessions import RECORD, USER_PROCESS
from secmon.collectors.sources import LineSplitter, follow_file, poll_sessions, read_wg_peers
from secmon.protocol import messages as m

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Recorder:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.status: list[str] = []
        self._changed = anyio.Event()

    def on_lines(self, lines: list[str]) -> None:
        self.lines += lines
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


async def test_unreadable_source_is_an_attribute_error(tmp_path):
    log = tmp_path / "a-directory"
    log.mkdir()
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_file, log, rec.on_lines, rec.report, 0.01)
        await rec.wait(lambda: rec.status)
        tg.cancel_scope.cancel()
    assert rec.status[0] == f"cannot read {log}: Is a directory"


def test_splitter_drops_over_long_lines_and_keeps_going():
    splitter = LineSplitter()
    assert splitter.feed(b"a\nb") == ["a"]
    assert splitter.feed(b"x" * (MAX_LINE + 10)) == []
    assert splitter.feed(b"yyy\nc\n") == ["c"]  # the rest of the long line is dropped too
    assert splitter.feed(b"\xff\xfe\n") == ["\ufffd\ufffd"]


async def test_wg_missing_or_failing_is_an_error_message(tmp_path):
    assert await read_wg_peers(str(tmp_path / "no-such-wg")) == "wg not found: install wireguard-tools"
    fake = tmp_path / "wg"
    fake.write_text("#!/bin/sh\necho 'Unable to access interface: Operation not permitted' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    assert await read_wg_peers(str(fake)) == "wg failed (1): Unable to access interface: Operation not permitted"
    fake.write_text("#!/bin/sh\nprintf 'wg0\\tpub\\t(none)\\t(none)\\t10.0.0.2/32\\t0\\t0\\t0\\toff\\n'\n")
    assert await read_wg_peers(str(fake)) == [m.WgPeer("wg0", "pub", None, None)]


async def test_journal_source_is_restarted_after_the_last_cursor(tmp_path, monkeypatch):
    """A stand-in journalctl on PATH prints two entries and dies; the follower says so and resumes."""
    from secmon.collectors.sources import follow_journal

    calls = tmp_path / "calls"
    fake = tmp_path / "journalctl"
    entry = (
        '{"__CURSOR":"c%d","SYSLOG_IDENTIFIER":"sshd","_PID":"7","_UID":"0","_EXE":"/usr/sbin/sshd",'
        '"MESSAGE":"Invalid user u%d from 192.0.2.1 port 22"}'
    )
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {calls}\n'
        f"n=$(wc -l < {calls})\n"
        f"printf '{entry}\\n' $((n*2-1)) $((n*2-1)) $((n*2)) $((n*2))\n"
        "echo 'journal went away' >&2\n"
        "exit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    journal = tmp_path / "journal" / "0123abcd"  # the machine's journal, with one file
    journal.mkdir(parents=True)
    (journal / "system.journal").write_bytes(b"")
    monkeypatch.setattr(sources, "JOURNAL_DIRECTORIES", (tmp_path / "journal",))
    rec = Recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow_journal, rec.on_lines, rec.report)
        await rec.wait(lambda: len(rec.lines) >= 4)
        tg.cancel_scope.cancel()
    first, second = calls.read_text().splitlines()[:2]
    assert "-f -o json -n 0 SYSLOG_IDENTIFIER=sshd SYSLOG_IDENTIFIER=sshd-session" in first
    assert "--after-cursor=c2" in second  # nothing between the two runs is skipped or repeated
    assert "journalctl exited with 1: journal went away" in rec.status
    assert rec.status[0] == m.AUTH_OK
    assert [json.loads(x)["MESSAGE"].split()[2] for x in rec.lines[:4]] == ["u1", "u2", "u3", "u4"]


async def test_a_journal_without_files_is_waited_for_not_ok(tmp_path, monkeypatch):
    """`journalctl -f` with no journal at all sits silent: that must not read as a healthy source."""
    from secmon.collectors.sources import follow_journal

    fake = tmp_path / "bin" / "journalctl"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 3600\n")  # what the real one does with nothing to read
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
