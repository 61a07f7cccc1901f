"""HTTP routes on a real server: health, metrics, graph loading, admin, errors and limits."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
from aiohttp.http_exceptions import BadHttpMessage

from hive.logs import demote_bad_http
from tests.conftest import JSON, Daemon, receive, receive_json, start_daemon
from transport.routes import health as health_routes


async def get_json(d: Daemon, path: str, **kw: Any) -> tuple[int, Any]:
    async with d.session.get(f"{d.url}{path}", **kw) as r:
        assert r.content_type == "application/json", path
        return r.status, await r.json()


async def test_health_snapshot(daemon: Daemon) -> None:
    status, body = await get_json(daemon, "/api/health?refresh=true")
    assert status == 200
    for key in ("system_status", "docker_health", "mcp_health", "active_sessions",
                "container_health", "performance", "last_updated", "actors", "components"):
        assert key in body
    assert body["system_status"] == "healthy"
    assert body["mcp_health"] == "unknown"  # the MCP actor is not in the tree yet
    assert body["actors"]["total_actors"] == 3
    assert body["components"]["gpu_layout"]["detail"]["backend"] == "cpu"


async def test_health_is_critical_when_every_worker_is_down(daemon: Daemon) -> None:
    async with daemon.session.post(f"{daemon.url}/admin/actors/root/gpu_layout/stop",
                                   headers=daemon.admin()) as r:
        assert r.status == 200
    status, body = await get_json(daemon, "/api/health?refresh=true")
    # the layout is the only actor besides health here, so its loss is critical: 503
    assert status == 503 and body["system_status"] == "critical"
    assert body["components"]["gpu_layout"]["health"] == "down"
    # the layout being down is a clear 503 on the routes that need it
    async with daemon.session.get(f"{daemon.url}/api/graph") as r:
        assert r.status == 503 and "layout unavailable" in (await r.json())["error"]


async def test_hybrid_health_stream(daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    # no periodic push during the test: any later status_update is the pushed change
    monkeypatch.setattr(health_routes, "UPDATE_EVERY_S", 600.0)
    async with daemon.session.ws_connect(f"{daemon.ws_url}/ws/hybrid-health") as ws:
        initial = await receive_json(ws, "initial_status")
        assert initial["data"]["system_status"] in ("healthy", "degraded")
        assert "actors" in initial["data"]
        await ws.send_json({"type": "ping", "timestamp": 5})
        assert (await receive_json(ws, "pong"))["timestamp"] == 5
        await ws.send_json({"type": "request_status", "data": {"force_refresh": True}})
        assert (await receive_json(ws, "status_update"))["data"]["system_status"]
        # a change (an actor stopped) is pushed without asking
        await daemon.tree.control_async("stop", "root/gpu_layout")
        update = await receive_json(ws, "status_update", timeout=30)
        while update["data"]["system_status"] == "healthy":  # pushed before the stop took effect
            update = await receive_json(ws, "status_update", timeout=30)
        await ws.send_json({"type": "bogus"})
        assert "unknown message type" in (await receive_json(ws, "error"))["message"]
        await ws.send_bytes(b"\x00")
        msg = await receive(ws, 5)
        while msg.type == aiohttp.WSMsgType.TEXT:  # a status_update may have been on its way
            msg = await receive(ws, 5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1003


async def test_metrics(daemon: Daemon) -> None:
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss"), daemon.session.get(f"{daemon.url}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    assert 'hive_actor_restarts{path="root/gpu_layout"} 0.0' in text
    assert 'hive_actor_mailbox_depth{path="root/health"}' in text
    assert 'hive_websocket_clients{route="/wss"} 1.0' in text
    for name in ("hive_frames_sent_total", "hive_frames_dropped_total", "hive_layout_step_ms",
                 "hive_event_loop_lag_ms"):
        assert name in text


async def test_graph_round_trip_and_validation(daemon: Daemon) -> None:
    body = {"nodes": [{"id": 0, "label": "a"}, {"id": 7, "label": "b"}],
            "edges": [{"source": 0, "target": 7, "weight": 2}]}
    async with daemon.session.put(f"{daemon.url}/api/graph", json=body) as r:
        assert r.status == 200 and (await r.json())["loaded"] == {"nodes": 2, "edges": 1}
    status, view = await get_json(daemon, "/api/graph")
    assert status == 200
    nodes = view["knowledge"]["nodes"]
    assert [n["label"] for n in nodes] == ["a", "b"] and all(len(n["position"]) == 3 for n in nodes)
    bad = [
        (b"{nope", "not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (json.dumps({"nodes": "x"}).encode(), "'nodes' must be a list"),
        (json.dumps({"nodes": [{"id": -1}]}).encode(), "outside [0, 2^30)"),
        (json.dumps({"nodes": [{"id": 2**30}]}).encode(), "outside [0, 2^30)"),
        (json.dumps({"nodes": [{"id": 1}, {"id": 1}]}).encode(), "unique"),
        (json.dumps({"nodes": [{"id": 1}], "edges": [{"source": 1, "target": 9}]}).encode(),
         "edges[0] references unknown node 9"),
        (json.dumps({"nodes": [{"id": 1}], "edges": [{"source": 1, "target": 1, "weight": -2}]})
         .encode(), "weight"),
        # finite in float64 but not in float32 (the layout's precision), and past float64
        (json.dumps({"nodes": [{"id": 1}, {"id": 2}], "edges": [{"source": 1, "target": 2, "weight": 1e308}]})
         .encode(), "edges[0].weight must be a number in [0, 1e+06]"),
        (b'{"nodes": [{"id": 1}, {"id": 2}], "edges": [{"source": 1, "target": 2, "weight": 1' + b"0" * 400
         + b"}]}", "edges[0].weight"),
        (b'{"nodes": [{"id": 1}, {"id": 2}], "edges": [{"source": 1, "target": 2, "weight": NaN}]}',
         "not valid JSON"),
    ]
    for payload, expected in bad:
        async with daemon.session.put(f"{daemon.url}/api/graph", data=payload, headers=JSON) as r:
            assert r.status == 400, payload
            assert expected in (await r.json())["error"], payload
    # the bad bodies lost nothing: the graph is still there
    _, view = await get_json(daemon, "/api/graph")
    assert len(view["knowledge"]["nodes"]) == 2


async def test_large_graph_is_accepted() -> None:
    """100,000 nodes and 1,000,000 edges fit the default body limit."""
    d = await start_daemon()
    try:
        n, m = 100_000, 1_000_000
        import numpy as np

        rng = np.random.default_rng(0)
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        nodes = ",".join(f'{{"id":{i}}}' for i in range(n))
        edges = ",".join(f'{{"source":{s},"target":{t}}}' for s, t in zip(src.tolist(), dst.tolist(), strict=True))
        payload = f'{{"nodes":[{nodes}],"edges":[{edges}]}}'.encode()
        assert len(payload) < 64 * 1024 * 1024
        async with d.session.put(f"{d.url}/api/graph", data=payload, headers=JSON) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["loaded"] == {"nodes": n, "edges": m}
    finally:
        await d.stop()


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


async def test_admin_needs_the_right_token(daemon: Daemon) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        async with daemon.session.get(f"{daemon.url}/admin/actors", headers=headers) as r:
            assert r.status == 401
            assert "Bearer" in (await r.json())["error"]
        async with daemon.session.post(f"{daemon.url}/admin/actors/root/health/kill",
                                       headers=headers) as r:
            assert r.status == 401
    assert daemon.tree.describe("root/health")["incarnation"] == 1
    status, tree = await get_json(daemon, "/admin/actors", headers=daemon.admin())
    assert status == 200 and tree["path"] == "root"
    assert [c["name"] for c in tree["children"]] == ["gpu_layout", "health"]


async def raw_http(d: Daemon, request: bytes, read: bool = True) -> bytes:
    """Bytes no well-behaved client library would send, on a socket of our own."""
    reader, writer = await asyncio.open_connection("127.0.0.1", d.server.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10) if read else b""
    finally:
        writer.close()


def status_and_json(response: bytes) -> tuple[int, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"application/json" in head, head
    return int(head.split(b" ", 2)[1]), json.loads(body)


async def test_admin_token_that_is_not_utf8_is_401(daemon: Daemon) -> None:
    response = await raw_http(daemon, b"GET /admin/actors HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
    status, body = status_and_json(response)
    assert status == 401 and "Bearer" in body["error"]


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
    assert 'hive_http_requests_total{status="4xx"} 2.0' in text, text
    assert 'status="5xx"' not in text, text


async def test_malformed_http_is_answered_by_aiohttp_and_logged_without_a_traceback(daemon: Daemon) -> None:
    response = await raw_http(daemon, b"FOO\x01 / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert response.split(b" ", 2)[1] == b"400" and b"Traceback" not in response
    error = BadHttpMessage("Invalid method")
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 0, "Error handling request",
                               None, (BadHttpMessage, error, None))
    assert demote_bad_http(record) and record.levelno == logging.INFO and record.exc_info is None
    assert "Invalid method" in record.getMessage()


def test_tokens_in_a_malformed_request_are_redacted_from_the_log() -> None:
    """aiohttp quotes the raw request line and headers of what it cannot parse; a client's
    ?token= or Authorization header must not reach the log that way (found by review)."""
    secret = "Tok3n-secret-value-123456"
    for raw in (f"b'GET /api/graph?token={secret}\\x01 HTTP/1.1'",
                f"Bad header: b'Authorization: Bearer {secret}\\x7f'",
                f"b'PUT /x?a=1&token={secret}&pad=aaaa HTTP/9'"):
        error = BadHttpMessage(raw)
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 0, "Error", None,
                                   (BadHttpMessage, error, None))
        demote_bad_http(record)
        assert secret not in record.getMessage() and "[redacted]" in record.getMessage()


async def test_admin_kill_restarts_the_actor_and_shows_the_new_incarnation(daemon: Daemon) -> None:
    async with daemon.session.post(f"{daemon.url}/admin/actors/root/gpu_layout/kill",
                                   headers=daemon.admin()) as r:
        assert r.status == 200
        result = await r.json()
    assert result["node"]["incarnation"] == 2
    status, tree = await get_json(daemon, "/admin/actors", headers=daemon.admin())
    layout = tree["children"][0]
    assert layout["incarnation"] == 2 and layout["state"] == "running"
    assert layout["last_failure"]["type"] == "Killed"
    status, node = await get_json(daemon, "/admin/actors/root/gpu_layout", headers=daemon.admin())
    assert status == 200 and node["restarts"] == 1
    for action, expected in (("restart", 3), ("stop", 3), ("start", 4)):
        async with daemon.session.post(f"{daemon.url}/admin/actors/root/gpu_layout/{action}",
                                       headers=daemon.admin()) as r:
            assert r.status == 200
            assert (await r.json())["node"]["incarnation"] == expected
    status, _ = await get_json(daemon, "/admin/actors/root/nope", headers=daemon.admin())
    assert status == 404
    async with daemon.session.post(f"{daemon.url}/admin/actors/root/kill",
                                   headers=daemon.admin()) as r:
        assert r.status == 409 and "root" in (await r.json())["error"]
