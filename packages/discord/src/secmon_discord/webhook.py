"""Delivering payloads to a Discord webhook without losing any, within its rate limits.

A 429 is waited out for ``retry_after`` seconds; a bucket that the headers
say is empty (X-RateLimit-Remaining: 0) is waited out for
X-RateLimit-Reset-After before the next post; 5xx answers and network errors
are retried with capped backoff. Only a 4xx other than 429 (a bad webhook or
payload) gives up on a message, with a log line saying so. ``post_within``
gives the same retries a deadline, for `secmon-dc test`, where someone waits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import aiohttp
import anyio

log = logging.getLogger("secmon.discord")

MAX_BACKOFF = 60.0
TIMEOUT = aiohttp.ClientTimeout(total=30)


class WebhookRejected(Exception):
    """Raised when Discord refuses a message for good (4xx other than 429); the text says why."""


class WebhookUnreachable(Exception):
    """Raised by ``post`` given a deadline, when Discord has not accepted the message by then."""


class Webhook:
    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        self.url = url
        self.session = session
        self._bucket_empty_until = 0.0
        self.last_failure: str | None = None  # why the latest post's latest attempt failed, for a deadline's message

    async def post_within(self, body: dict[str, Any], seconds: float) -> dict[str, Any]:
        """``post``, but give up after ``seconds`` with WebhookUnreachable saying why (an operator is waiting)."""
        with anyio.move_on_after(seconds):
            return await self.post(body)
        why = self.last_failure or "no answer"
        raise WebhookUnreachable(f"Discord did not accept the message within {seconds:g} s ({why})")

    async def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Deliver one message, retrying until Discord accepts it; returns Discord's answer."""
        self.last_failure = None
        delay = 1.0
        while True:
            wait = self._bucket_empty_until - anyio.current_time()
            if wait > 0:
                await anyio.sleep(wait)
            try:
                async with self.session.post(self.url, params={"wait": "true"}, json=body, timeout=TIMEOUT) as answer:
                    self._note_bucket(answer.headers)
                    text = await answer.text()
                    if answer.status == 429:
                        retry = _retry_after(text, answer.headers)
                        log.warning("Discord rate limit: waiting %.2f s", retry)
                        await anyio.sleep(retry)
                        continue
                    if answer.status >= 500:
                        raise aiohttp.ClientResponseError(
                            answer.request_info, (), status=answer.status, message=text[:200]
                        )
                    if answer.status >= 400:
                        raise WebhookRejected(f"Discord refused the message ({answer.status}): {text[:300]}")
                    return await answer.json(content_type=None) if text else {}
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.last_failure = _failure_text(exc)
                log.warning("Discord unreachable (%s); retrying in %.0f s", exc, delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    def _note_bucket(self, headers: Mapping[str, str]) -> None:
        if headers.get("X-RateLimit-Remaining") == "0":
            try:
                reset_after = float(headers.get("X-RateLimit-Reset-After", "1"))
            except ValueError:
                reset_after = 1.0
            self._bucket_empty_until = anyio.current_time() + min(reset_after, MAX_BACKOFF)


def _retry_after(text: str, headers: Mapping[str, str]) -> float:
    import json

    try:
        value = float(json.loads(text).get("retry_after"))
    except (ValueError, TypeError, AttributeError):
        try:
            value = float(headers.get("Retry-After", "1"))
        except ValueError:
            value = 1.0
    return min(max(value, 0.0), MAX_BACKOFF)


def _failure_text(exc: BaseException) -> str:
    """A few words on a failed attempt: the system's reason, an HTTP status, or no answer."""
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return os.strerror(exc.os_error.errno).lower()
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"HTTP {exc.status}"
    if isinstance(exc, TimeoutError):
        return "no answer"
    return str(exc) or type(exc).__name__
