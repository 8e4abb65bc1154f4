"""When the node tries the hub again, which of its troubles it reports, and in which words.

Pure: the clock and the randomness are passed in, so the rules are tested with
plain calls. The agent (agent.py) owns the sockets and calls these.

- ``Backoff``: exponential with jitter, back to its minimum after a healthy link,
  so a hub restarted many times is found again as fast the tenth time as the first.
- ``ReportLimit``: a few lines per window and then a count, so a hub that flaps
  every second cannot fill the node's log, and no loss goes untold.
- ``describe_failure``: an exception from connecting, in the words of whoever must
  fix it ("connection refused" is not "lost the hub"; a TLS refusal says which).
"""

from __future__ import annotations

import errno
import os
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from ..link import HandshakeFailed
from ..tls import node_side_tls_failure

MIN_DELAY = 0.5  # seconds before the first retry: a hub restart takes about this long
# Lines of one kind (losses, failed attempts) per window; past that they are counted, and the
# count is told with the next line. Ten in ten minutes is every loss of a hub restarted by hand.
REPORT_BURST = 10
REPORT_WINDOW = 600.0  # seconds

# Hints for the connect errors an operator meets, by errno.
_CONNECT_HINTS = {
    errno.ECONNREFUSED: "nothing listens there: is the hub running, and are HUB_IP and HUB_PORT right?",
    errno.EHOSTUNREACH: "check HUB_IP and the network between this server and the hub",
    errno.ENETUNREACH: "check HUB_IP and the network between this server and the hub",
}


@dataclass(slots=True)
class Backoff:
    """Delays between attempts: doubling from ``minimum`` to ``maximum``, each jittered down by up to half."""

    maximum: float
    minimum: float = MIN_DELAY
    uniform: Callable[[float, float], float] = random.uniform
    _next: float = field(init=False)

    def __post_init__(self) -> None:
        self._next = min(self.minimum, self.maximum)

    def delay(self) -> float:
        """The wait before the next attempt; the one after is twice as long (up to ``maximum``)."""
        delay = self._next * self.uniform(0.5, 1.0)
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """After a healthy link: the next wait is the shortest again."""
        self._next = min(self.minimum, self.maximum)


@dataclass(slots=True)
class ReportLimit:
    """At most ``burst`` reports per ``window`` seconds; the rest are counted, not lost."""

    burst: int = REPORT_BURST
    window: float = REPORT_WINDOW
    _window_start: float | None = None
    _used: int = 0
    _held_back: int = 0

    def allow(self, now: float) -> int | None:
        """None when this report is to be held back; otherwise how many were held back before it."""
        if self._window_start is None or now - self._window_start >= self.window:
            self._window_start, self._used = now, 0
        if self._used >= self.burst:
            self._held_back += 1
            return None
        self._used += 1
        held, self._held_back = self._held_back, 0
        return held


def held_back_note(count: int) -> str:
    """The tail of a report that follows ``count`` held back ones ("" for none)."""
    return f" ({count} similar report{'s' if count != 1 else ''} held back)" if count else ""


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and its causes and contexts, outermost first, each once (groups opened)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo += list(current.exceptions)
        todo += [current.__cause__, current.__context__]
    return seen


def describe_failure(exc: BaseException, where: str, *, tls: bool) -> str:
    """Why connecting to the hub at ``where`` (with ``tls`` or without) failed, with the remedy where there is one."""
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, ssl.SSLError):
            return node_side_tls_failure(item, where)
    if isinstance(exc, HandshakeFailed):
        if exc.__cause__ is None:
            return f"the hub at {where} did not answer our hello: {exc}"
        # The stream ended without a word. A SecMon hub refuses a plain node in a frame that says why,
        # except on a TLS port, which speaks nothing before TLS.
        if not tls:
            return (
                f"the hub at {where} requires TLS, or is no SecMon hub: it closed the connection without "
                "answering our hello; set SECMON_TLS_CA to the CA of its certificate"
            )
        return f"the hub at {where} closed the connection without answering our hello"
    if any(isinstance(item, anyio.EndOfStream) for item in chain):
        return f"the hub at {where} closed the connection during the TLS handshake (does it speak TLS?)"
    for item in chain:
        if isinstance(item, TimeoutError):
            return f"cannot reach the hub at {where}: no answer within the handshake timeout"
        if isinstance(item, OSError) and item.errno:
            reason = os.strerror(item.errno).lower()
            hint = _CONNECT_HINTS.get(item.errno)
            return f"cannot reach the hub at {where}: {reason}" + (f" ({hint})" if hint else "")
    return f"cannot reach the hub at {where}: {str(exc) or exc.__class__.__name__}"
