"""`secmon authlog`: what SecMon makes of auth-log lines, for an operator checking a log.

Like fail2ban-regex: it reads a file (or standard input, ``-``) of syslog text
or ``journalctl -o json`` lines, decided per line, and prints each event it
recognises as a JSON line, in file order, as the node would send it. With
``--stats`` a summary follows: lines read, events by kind, and how many lines
of sshd, su and sudo matched no known shape; ``--unmatched`` prints those
lines instead of the events, so an operator can send us the ones SecMon misses.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from typing import IO

from .. import jsonform
from ..collectors.authlog import AuthLogParser, read_line
from ..protocol import messages as m

USAGE = """\
usage: secmon authlog [FILE|-] [--stats] [--unmatched]

Print, as JSON lines, the auth events SecMon recognises in FILE (standard input
when FILE is - or absent). Lines may be syslog text or journalctl -o json
records, mixed.

options:
  --stats       after the events, print lines read, events by kind and the
                number of sshd, su and sudo lines that matched no known shape
  --unmatched   print those unrecognised lines instead of the events
  -h, --help    show this help"""


def _open(source: str) -> IO[bytes]:
    return sys.stdin.buffer if source == "-" else open(source, "rb")


def run_authlog(source: str, stats: bool, unmatched: bool) -> int:
    """Read ``source`` (a path, or - for stdin) and print events, unmatched lines, a summary; the exit code."""
    try:
        stream = _open(source)
    except OSError as exc:
        print(f"secmon: cannot read {source}: {exc.strerror}", file=sys.stderr)
        return 1
    parser = AuthLogParser()
    read = 0
    kinds: Counter[str] = Counter()
    unknown: Counter[str] = Counter()
    out = sys.stdout
    with stream:
        for raw in stream:
            read += 1
            text = raw.decode(errors="replace")
            line = read_line(text, time.time())
            if line is None:
                continue
            fields = parser.examine(line)
            if fields is None:
                unknown[line.process] += 1
                if unmatched:
                    out.write(text.rstrip("\r\n") + "\n")
            elif fields:
                kinds[fields["kind"]] += 1
                if not unmatched:
                    event = m.AuthEvent(seq=sum(kinds.values()), **fields)
                    out.write(json.dumps(jsonform.event_json(event), ensure_ascii=False) + "\n")
    if stats:
        out.write(summary(read, kinds, unknown))
    out.flush()
    return 0


def summary(read: int, kinds: Counter[str], unknown: Counter[str]) -> str:
    """The --stats text: lines read, events by kind, unrecognised lines by program."""
    lines = [f"lines read: {read}", f"events: {sum(kinds.values())}"]
    lines += [f"  {kind}: {count}" for kind, count in sorted(kinds.items())]
    by_program = ", ".join(f"{program} {count}" for program, count in sorted(unknown.items()))
    lines.append(f"not recognised: {sum(unknown.values())}" + (f" ({by_program})" if by_program else ""))
    return "\n".join(lines) + "\n"
