"""`secmon-dc test` against a webhook that cannot be reached: a clear line within 15 s, not minutes of retries."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from conftest import free_port

LIMIT = 15.0  # seconds the operator may wait before being told


def run_test_command(base_env: dict[str, str], url: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "secmon_discord", "test"],
        env={**base_env, "DISCORD_WEBHOOK_URL": url},
        capture_output=True,
        text=True,
        timeout=LIMIT + 15,  # far enough past the limit to measure an overrun instead of hiding it
    )
    return result, time.monotonic() - started


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_closed_port_fails_fast_with_the_reason(base_env):
    url = f"http://127.0.0.1:{free_port()}/api/webhooks/1/token"  # nothing listens there
    result, elapsed = run_test_command(base_env, url)
    assert result.returncode == 1 and elapsed < LIMIT, (elapsed, result.stderr)
    assert result.stderr == "secmon-dc: Discord did not accept the message within 6 s (connection refused)\n"
    assert result.stdout == ""


def test_a_server_that_never_answers_fails_within_the_limit(base_env, silent_port):
    url = f"http://127.0.0.1:{silent_port}/api/webhooks/1/token"
    result, elapsed = run_test_command(base_env, url)
    assert result.returncode == 1 and elapsed < LIMIT, (elapsed, result.stderr)
    assert result.stderr == "secmon-dc: Discord did not accept the message within 6 s (no answer)\n"
