"""Health routes on a real server: the snapshot, the critical state and the pushed stream."""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import Daemon, get_json, receive, receive_json
from transport.routes import health as health_routes


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
    assert body["cluster"] == {"role": "single"}  # no [cluster]: one process, and it says so
    assert "cluster" not in body["components"]


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
