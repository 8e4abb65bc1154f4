"""The node's reconnect rules: backoff, report limits and the words for each failure, with plain calls."""

from __future__ import annotations

import errno
import ssl

import anyio

from secmon.link import HandshakeFailed
from secmon.node.reconnect import Backoff, ReportLimit, describe_failure, held_back_note

WHERE = "192.0.2.9:9992"


def no_jitter(low: float, high: float) -> float:
    return high


def test_backoff_doubles_to_its_cap_and_a_healthy_link_starts_it_again():
    backoff = Backoff(maximum=4.0, minimum=0.5, uniform=no_jitter)
    assert [backoff.delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.delay() == 0.5


def test_backoff_jitter_only_shortens_the_wait():
    backoff = Backoff(maximum=30.0, uniform=lambda low, high: low)
    assert backoff.delay() == 0.25


def test_report_limit_holds_back_past_the_burst_and_counts_what_it_held():
    limit = ReportLimit(burst=2, window=60)
    assert [limit.allow(t) for t in (0, 1, 2, 3)] == [0, 0, None, None]
    assert limit.allow(60) == 2  # a new window: the next report says two were held back
    assert limit.allow(61) == 0
    assert held_back_note(2) == " (2 similar reports held back)" and held_back_note(0) == ""


def chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def test_connection_refused_is_not_a_lost_hub():
    refused = chained(OSError("All connection attempts failed"), ConnectionRefusedError(errno.ECONNREFUSED, "x"))
    text = describe_failure(refused, WHERE, tls=False)
    assert text.startswith(f"cannot reach the hub at {WHERE}: connection refused (")
    assert "HUB_IP" in text and "lost" not in text


def test_tls_refusals_say_which_certificate_is_missing_or_unknown():
    def alert(reason: str) -> BaseException:
        error = ssl.SSLError(1, f"[SSL: {reason}]")
        error.reason = reason
        return chained(anyio.BrokenResourceError(), error)

    missing = describe_failure(alert("TLSV13_ALERT_CERTIFICATE_REQUIRED"), WHERE, tls=True)
    assert missing == f"the hub at {WHERE} requires a client certificate: set SECMON_TLS_CERT and SECMON_TLS_KEY"
    unknown = describe_failure(alert("TLSV1_ALERT_UNKNOWN_CA"), WHERE, tls=True)
    assert unknown.startswith(f"the hub at {WHERE} does not accept our certificate (unknown ca)")
    plain = describe_failure(alert("WRONG_VERSION_NUMBER"), WHERE, tls=True)
    assert plain.startswith(f"the hub at {WHERE} does not speak TLS")


def test_a_hub_that_closes_without_a_word_requires_tls_when_we_speak_plain_tcp():
    closed = chained(HandshakeFailed("connection closed before hello"), anyio.EndOfStream())
    plain = describe_failure(closed, WHERE, tls=False)
    assert plain.startswith(f"the hub at {WHERE} requires TLS") and "set SECMON_TLS_CA" in plain
    assert "TLS" not in describe_failure(closed, WHERE, tls=True)
    silent = HandshakeFailed("no hello within 5 s")
    expected = f"the hub at {WHERE} did not answer our hello: no hello within 5 s"
    assert describe_failure(silent, WHERE, tls=False) == expected


def test_a_failure_without_words_is_named_by_its_class():
    # anyio.BrokenResourceError() carries no message: the line still says what happened.
    text = describe_failure(anyio.BrokenResourceError(), WHERE, tls=False)
    assert text == f"cannot reach the hub at {WHERE}: BrokenResourceError"
