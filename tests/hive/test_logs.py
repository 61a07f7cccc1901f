"""aiohttp's own bad-request log lines: demoted, without a traceback, tokens redacted."""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import BadHttpMessage

from hive.logs import demote_bad_http


def test_tokens_in_a_malformed_request_are_redacted_from_the_log() -> None:
    """aiohttp quotes the raw request line and headers of what it cannot parse; a client's
    ?token= or Authorization header must not reach the log that way (found by review)."""
    secret = "Tok3n-secret-value-123456"
    for raw in (f"b'GET /api/graph?token={secret}\\x01 HTTP/1.1'",
                f"Bad header: b'Authorization: Bearer {secret}\\x7f'",
                f"b'PUT /x?a=1&token={secret}&pad=aaaa HTTP/9'",
                # second probe round: a percent-encoded key is the token too, and was logged
                f"b'DELETE /api/swarms/x?%74oken={secret} HTTP/9.9'",
                f"b'DELETE /api/swarms/x?tok%65n={secret} HTTP/9.9'",
                f"b'DELETE /api/swarms/x?token%3D{secret} HTTP/9.9'",
                f"b'GET /x?%2574%256f%256B%2565%256e%253d{secret} HTTP/9.9'"):
        error = BadHttpMessage(raw)
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 0, "Error", None,
                                   (BadHttpMessage, error, None))
        demote_bad_http(record)
        assert secret not in record.getMessage() and "[redacted]" in record.getMessage()


def test_the_repeat_limiter_forgets_windows_that_are_over() -> None:
    """Every line naming a swarm is a key of its own: the limiter held each for good until
    10,000 had piled up (a churn soak's RSS grew with its history)."""
    from hive.logs import RepeatLimiter

    now = [0.0]
    limiter = RepeatLimiter(burst=5, window_s=10.0, clock=lambda: now[0])
    for i in range(500):
        assert limiter.allow(("swarm.expired", i)) == (True, 0)
    assert len(limiter) == 500
    now[0] = 10.5
    limiter.allow(("another",))
    assert len(limiter) == 1
