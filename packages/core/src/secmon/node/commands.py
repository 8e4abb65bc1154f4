"""The node's allowlist and the execution of the commands it allows.

The allowlist file is the only authority for what runs: ``label=command`` a
line, the first ``=`` splits, the command is split like a shell would split
it but never given to a shell. A line that allows nothing (no ``=``, a bad
label, an unterminated quote, a label defined again) is reported with its
number: the node logs each at start and `secmon check` lists them. The file
is re-read on every request and must not be writable by anyone but its
owner (root or us), as sshd's StrictModes demands of its files. A command
runs in its own session, so a timeout or a cancel kills its whole process
group.
"""

from __future__ import annotations

import math
import os
import shlex
import signal
import stat
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE, STDOUT

import anyio

from ..lines import LineSplitter
from ..protocol import messages as m

MAX_LABEL = 64  # labels are names, not payloads
MAX_LINE = 16 * 1024  # one streamed line; longer ones are cut so one frame stays small
# Held of a line without an end before it is passed on as a piece: a command that never ends
# its line still streams, and the node's memory for it stays bounded.
MAX_UNENDED = 4 * MAX_LINE
MAX_OUTPUT = 1024 * 1024  # a whole result; fits a frame many times over


class AllowlistError(Exception):
    """Raised when the allowlist file cannot be trusted or read; the text says why."""


def label_problem(label: str) -> str | None:
    """Why ``label`` can never be a valid label, or None."""
    if not label or len(label) > MAX_LABEL:
        return f"a label has 1 to {MAX_LABEL} characters"
    if any(unicodedata.category(ch)[0] in "CZ" for ch in label):
        return "a label has no spaces or control characters"
    return None


@dataclass(frozen=True, slots=True)
class IgnoredLine:
    """A line of the allowlist that allows nothing, and why."""

    number: int  # from 1, as editors count
    reason: str


@dataclass(frozen=True, slots=True)
class Allowlist:
    """What a parse of the file allows, and the lines it had to leave out."""

    entries: dict[str, list[str]]
    ignored: list[IgnoredLine]


def read_allowlist(text: str) -> Allowlist:
    """Labels and their argv; blank lines and comments are skipped, malformed lines reported as ignored.

    When a label appears twice, the later line wins and the earlier one is reported.
    """
    entries: dict[str, list[str]] = {}
    seen: dict[str, int] = {}
    ignored: list[IgnoredLine] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            ignored.append(IgnoredLine(number, "no '=': a line is label=command"))
            continue
        label, command = line.split("=", 1)
        label = label.strip()
        if problem := label_problem(label):
            ignored.append(IgnoredLine(number, f"label {label!r}: {problem}"))
            continue
        try:
            argv = shlex.split(command)
        except ValueError as exc:  # an unterminated quote, or a backslash at the very end
            ignored.append(IgnoredLine(number, f"the command cannot be split: {str(exc).lower()}"))
            continue
        if not argv:
            ignored.append(IgnoredLine(number, f"label {label!r} has no command after '='"))
            continue
        if label in seen:
            ignored.append(IgnoredLine(seen[label], f"label {label!r} is defined again on line {number}"))
        entries[label] = argv
        seen[label] = number
    ignored.sort(key=lambda item: item.number)
    return Allowlist(entries, ignored)


def parse_allowlist(text: str) -> dict[str, list[str]]:
    """Labels and their argv; lines that are blank, comments or malformed are skipped."""
    return read_allowlist(text).entries


def load_allowlist(path: Path | None) -> dict[str, list[str]]:
    """Read and check the allowlist; no file configured means nothing may run."""
    return check_allowlist(path).entries


def check_allowlist(path: Path | None) -> Allowlist:
    """Read the allowlist and check that it can be trusted (AllowlistError if not); nothing for no file."""
    if path is None:
        return Allowlist({}, [])
    try:
        info = path.stat()
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise AllowlistError(f"cannot read allowlist {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise AllowlistError(f"allowlist {path} is not a regular file")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise AllowlistError(f"allowlist {path} is writable by group or others; refusing to run commands")
    if info.st_uid not in (0, os.getuid()):
        raise AllowlistError(f"allowlist {path} is owned by uid {info.st_uid}, not root or us; refusing")
    return read_allowlist(text)


@dataclass(slots=True)
class Outcome:
    status: str
    exit_code: int | None = None
    output: str = ""
    message: str = ""


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def run_allowed_command(
    argv: list[str],
    *,
    timeout: float = 0.0,
    on_line: Callable[[str], None] | None = None,
) -> Outcome:
    """Run ``argv`` without a shell, stdout and stderr merged in order.

    With ``on_line`` each line is handed over as it arrives (cut at MAX_LINE);
    without, the output is collected up to MAX_OUTPUT. Cancelling the caller
    kills the process group.
    """
    try:
        process = await anyio.open_process(argv, stdin=None, stdout=PIPE, stderr=STDOUT, start_new_session=True)
    except OSError as exc:
        return Outcome(m.ERROR, message=f"cannot start {argv[0]}: {exc.strerror or exc}")
    collected = bytearray()
    omitted = 0
    splitter = LineSplitter(MAX_UNENDED, drop_long=False)

    def emit(line: bytes) -> None:
        assert on_line is not None  # lines are split only when they are streamed
        text = line[:MAX_LINE].decode(errors="replace")
        if len(line) > MAX_LINE:
            text += f" …[{len(line) - MAX_LINE} bytes cut]"
        on_line(text)

    def collect(chunk: bytes) -> None:
        nonlocal omitted
        room = MAX_OUTPUT - len(collected)
        collected.extend(chunk[:room])
        omitted += max(0, len(chunk) - room)

    try:
        with anyio.move_on_after(timeout if timeout > 0 else math.inf) as scope:
            assert process.stdout is not None  # opened with stdout=PIPE
            async for chunk in process.stdout:
                if on_line is None:
                    collect(chunk)
                    continue
                for line in splitter.feed(chunk):
                    emit(line)
            if (last := splitter.finish()) is not None:
                emit(last)
            exit_code = await process.wait()
    finally:
        if process.returncode is None:
            _kill_group(process.pid)
            with anyio.CancelScope(shield=True):
                await process.wait()
        else:
            _kill_group(process.pid)  # leftovers that outlived the leader
        await process.aclose()
    output = collected.decode(errors="replace")
    if omitted:
        output += f"\n…[output cut: {omitted} more bytes]"
    if scope.cancelled_caught:
        return Outcome(m.TIMEOUT, None, output, f"killed after {timeout:g} s")
    status = m.SUCCESS if exit_code == 0 else m.FAILURE
    return Outcome(status, exit_code, output)
