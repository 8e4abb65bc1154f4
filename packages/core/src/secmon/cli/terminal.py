"""What every human output of the CLI shares: text made safe for a terminal, colours, times.

Every string that came from a monitored server, the hub or another operator
passes through ``clean``, so a user name carrying terminal escape sequences
prints as visible text and cannot move the cursor, retitle the window or
recolour what follows.
"""

from __future__ import annotations

import time

GREEN, RED, YELLOW, DIM, BOLD, RESET = "\x1b[32m", "\x1b[31m", "\x1b[33m", "\x1b[2m", "\x1b[1m", "\x1b[0m"
_CONTROL = {i: f"\\x{i:02x}" for i in [*range(0x20), 0x7F, *range(0x80, 0xA0)]}


def clean(text: object) -> str:
    """Text safe for a terminal: control characters shown as \\xNN escapes."""
    return str(text).translate(_CONTROL)


class Painter:
    """Colours when writing to a terminal, plain text otherwise."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, code: str, text: str) -> str:
        return f"{code}{text}{RESET}" if self.colour else text


def local_time(stamp: float | None) -> str:
    """A Unix time as this machine's local time, to the second; None is "never"."""
    if stamp is None:
        return "never"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(stamp))
    except (OverflowError, OSError, ValueError):  # past what the platform's time_t holds (a rule for ages)
        return "beyond 9999" if stamp > 0 else "before 1970"


def table(rows: list[list[str]], paint: Painter) -> str:
    """Rows as aligned columns, the first one (the header) in bold.

    The last column is never padded, so its cells may carry colours (escape codes have no width).
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + row[-1:]
        if index == 0:
            cells = [paint(BOLD, c) for c in cells]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
