"""Stopping a daemon on SIGTERM or SIGINT the same way everywhere: one log line, then its scope ends.

Cancelling the scope lets what runs in it clean up (a node closes its link, a
notifier delivers the bursts it is still folding) instead of dying mid-write.
"""

from __future__ import annotations

import logging
import signal

import anyio


async def cancel_on_signal(scope: anyio.CancelScope, log: logging.Logger) -> None:
    """Wait for SIGTERM or SIGINT, log it, and cancel ``scope``."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("received %s, stopping", signal.Signals(signum).name)
            scope.cancel()
            return
