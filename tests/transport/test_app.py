"""The application around the routes, on a real server: unknown routes, body limits, bodies that cannot
be read and HTTP that cannot be parsed, each a JSON error without a traceback."""

from __future__ import annotations

import asyncio
import logging

from aiohttp.http_exceptions import BadHttpMessage

from hive.logs import demote_bad_http
from tests.conftest import JSON, Daemon, get_json, raw_http, start_daemon, status_and_json


async def test_body_over_the_limit_is_413_json() -> None:
    d = await start_daemon(max_body_bytes=2048)
    try:
        async with d.session.put(f"{d.url}/api/graph", data=b"x" * 5000, headers=JSON) as r:
            assert r.status == 413
            assert "too large" in (await r.json())["error"]
    finally:
        await d.stop()


async def test_unknown_route_is_404_json(daemon: Daemon) -> None:
    status, body = await get_json(daemon, "/no/such/thing")
    assert status == 404 and body["error"] == "no route for GET /no/such/thing"
    async with daemon.session.delete(f"{daemon.url}/api/health") as r:
        assert r.status == 405 and "error" in await r.json()
    async with daemon.session.get(f"{daemon.url}/wss") as r:  # no Upgrade header
        assert r.status == 400 and "WebSocket" in (await r.json())["error"]


async def test_body_that_cannot_be_decoded_is_400_and_a_client_gone_is_no_500(daemon: Daemon) -> None:
    body = b'{"nodes": []}'
    response = await raw_http(daemon, b"PUT /api/graph HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Encoding: gzip\r\n"
                              b"Content-Type: application/json\r\nConnection: close\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    status, answer = status_and_json(response)
    assert status == 400 and "request body could not be read" in answer["error"]
    # a client that promises a body and leaves half-way is not one of our failures
    metrics = daemon.services.metrics
    seen = metrics.total
    await raw_http(daemon, b"PUT /api/graph HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   b"Content-Length: 1000\r\n\r\n{\"nod",
                   read=False)
    async with asyncio.timeout(10):
        while metrics.total == seen:  # until the server has seen the request end
            await asyncio.sleep(0.01)
    async with daemon.session.get(f"{daemon.url}/metrics") as r:
        text = await r.text()
    put = 'hive_http_requests_total{method="PUT",route="/api/graph",status='
    assert f'{put}"400"}} 1.0' in text and f'{put}"499"}} 1.0' in text, text
    assert 'status="5' not in text, text


async def test_malformed_http_is_answered_by_aiohttp_and_logged_without_a_traceback(daemon: Daemon) -> None:
    response = await raw_http(daemon, b"FOO\x01 / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert response.split(b" ", 2)[1] == b"400" and b"Traceback" not in response
    error = BadHttpMessage("Invalid method")
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 0, "Error handling request",
                               None, (BadHttpMessage, error, None))
    assert demote_bad_http(record) and record.levelno == logging.INFO and record.exc_info is None
    assert "Invalid method" in record.getMessage()


