"""Bytes in, lines out: the one line splitter of the node, for followed logs and command output.

A stream arrives in chunks that cut lines anywhere, so the splitter holds the
unfinished line from one chunk to the next. ``limit`` bounds what it holds: a
stream that never sends a line end cannot grow the node's memory. What happens
to a line past the bound is the one thing its users differ on:

- a followed log drops it (``drop_long=True``): a longer line is junk, not a
  login, and the rest of it up to the next line end is skipped too;
- command output passes it on (``drop_long=False``): the operator sees every
  byte, so what is held is handed over as a piece and the line goes on.

Lines end at ``\\n`` only. A ``\\r`` before it stays in the line: the auth-log
reader strips it, command output shows what the command wrote. No I/O, no
decoding: callers decode (with ``errors="replace"``) what they keep.
"""

from __future__ import annotations


class LineSplitter:
    """Split a byte stream into lines, holding at most ``limit`` bytes of an unfinished one."""

    __slots__ = ("_held", "_skipping", "drop_long", "limit", "pending")

    def __init__(self, limit: int, *, drop_long: bool) -> None:
        self.limit = limit
        self.drop_long = drop_long
        self._held = b""
        self._skipping = False  # dropping the rest of an over-long line, up to its end
        # Bytes fed since the last line end (held, or being dropped): a reader that keeps its
        # position is this far past the end of the last whole line.
        self.pending = 0

    def feed(self, data: bytes) -> list[bytes]:
        """The lines ``data`` completes, without their ``\\n``; with ``drop_long=False`` also the
        piece of an unended line that outgrew ``limit``."""
        buffer = self._held + data if self._held else data
        *lines, rest = buffer.split(b"\n")
        self._held = rest
        self.pending = len(rest) if lines else self.pending + len(data)
        if self._skipping and lines:
            self._skipping = False
            del lines[0]  # the end of the line being dropped
        if self.drop_long:
            lines = [line for line in lines if len(line) <= self.limit]
        if len(rest) > self.limit:
            self._held = b""
            if self.drop_long:
                self._skipping = True
            else:
                lines.append(rest)
                self.pending = 0
        return lines

    def finish(self) -> bytes | None:
        """The last line, which the stream ended without a line end; None if there is none."""
        held, self._held = self._held, b""
        self.pending = 0
        if self._skipping or not held:
            self._skipping = False
            return None
        return held
