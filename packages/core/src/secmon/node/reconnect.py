"""When the node tries the hub again, which of its troubles it reports, and in which words.

Pure: the clock and the randomness are passed in, so the rules are tested with
plain calls. The agent (agent.py) owns the sockets and calls these.

- ``HubRotation``: which of the hubs in HUB_ADDRS is tried next, and whether the
  node waits first (the rule is in its docstring).
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

from ..config import HubAddress
from ..link import HandshakeFailed
from ..tls import node_side_tls_failure

MIN_DELAY = 0.5  # seconds before the first retry: a hub restart takes about this long
# Lines of one kind (losses, failed attempts) per window; past that they are counted, and the
# count is told with the next line. Ten in ten minutes is every loss of a hub restarted by hand.
REPORT_BURST = 10
REPORT_WINDOW = 600.0  # seconds

# Hints for the connect errors an operator meets, by errno; {address} and {host} name the variable the address
# came from (_ADDRESS_WORDS).
_CONNECT_HINTS = {
    errno.ECONNREFUSED: "nothing listens there: is the hub running, and {address} right?",
    errno.EHOSTUNREACH: "check {host} and the network between this server and the hub",
    errno.ENETUNREACH: "check {host} and the network between this server and the hub",
}
_ADDRESS_WORDS = {  # by the variable the hubs came from (NodeSettings.hubs_variable)
    "HUB_IP": {"address": "are HUB_IP and HUB_PORT", "host": "HUB_IP"},
    "HUB_ADDRS": {"address": "is this address in HUB_ADDRS", "host": "this address in HUB_ADDRS"},
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


@dataclass(frozen=True, slots=True)
class NextAttempt:
    """What the node does after an attempt failed or a link ended: which hub, and after how long."""

    hub: HubAddress
    wait: float  # seconds; 0 within a round
    round_over: bool  # every hub had its turn without a healthy link: a node without --reconnect gives up
    reasons: tuple[str, ...]  # why each turn of the round ended, in order (for the line of one that gives up)


@dataclass(slots=True)
class HubRotation:
    """The order in which a node tries its hubs, with the backoff between rounds.

    The rule:

    - The node starts with the first hub, and moves through the list in order,
      wrapping around; it never goes back to an earlier hub on its own, so it stays
      with a hub that welcomed it until that link ends.
    - After a failed attempt, or a link that ended without being healthy
      (``LinkEnded.healthy``), the next hub is tried at once, until every hub had
      its turn in this round; then the node waits ``backoff.delay()`` and starts a
      new round with the hub after the last one tried.
    - A healthy link that ended starts a fresh round: the backoff starts again from
      its minimum, the lost hub's turn counts as taken, and the next hub is tried at
      once. Nodes that left a failed hub therefore stay where they landed when it
      returns, instead of all piling back on it; the lost hub is tried again only
      after the others (with one hub: after the backoff's shortest wait).

    With one hub this is the single hub's old rule: each failure waits the backoff.
    """

    hubs: tuple[HubAddress, ...]
    backoff: Backoff
    _index: int = 0
    _reasons: list[str] = field(default_factory=list)  # turns taken in this round, each ended for this reason

    def __post_init__(self) -> None:
        if not self.hubs:
            raise ValueError("a node needs at least one hub")

    @property
    def current(self) -> HubAddress:
        """The hub to try now."""
        return self.hubs[self._index]

    def failed(self, reason: str) -> NextAttempt:
        """The attempt at ``current`` failed, or its link ended unhealthy, for ``reason``."""
        self._reasons.append(reason)
        return self._advance()

    def lost(self, reason: str, healthy: bool) -> NextAttempt:
        """The link ``current`` welcomed us on ended, for ``reason``; ``healthy`` as LinkEnded.healthy says."""
        if not healthy:
            return self.failed(reason)
        self.backoff.reset()
        self._reasons = [reason]
        return self._advance()

    def _advance(self) -> NextAttempt:
        self._index = (self._index + 1) % len(self.hubs)
        reasons = tuple(self._reasons)
        if len(self._reasons) < len(self.hubs):
            return NextAttempt(self.current, 0.0, False, reasons)
        self._reasons = []
        return NextAttempt(self.current, self.backoff.delay(), True, reasons)


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


def describe_failure(exc: BaseException, where: str, *, tls: bool, variable: str = "HUB_IP") -> str:
    """Why connecting to the hub at ``where`` (with ``tls`` or without) failed, with the remedy where there is one.

    ``variable`` is where the address came from (HUB_IP or HUB_ADDRS), for the remedy to name it.
    """
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
            if hint is not None:
                hint = hint.format_map(_ADDRESS_WORDS.get(variable, _ADDRESS_WORDS["HUB_IP"]))
            return f"cannot reach the hub at {where}: {reason}" + (f" ({hint})" if hint else "")
    return f"cannot reach the hub at {where}: {str(exc) or exc.__class__.__name__}"
