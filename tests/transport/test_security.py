"""The open doors of issue 10, against a real server on loopback: DNS rebinding, cross-site
simple requests, Origin ports, and the API token on every route and WebSocket that changes
state. The claude-flow parts (the relay's allow-list, swarms) are in tests/agents."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import aiohttp
import pytest

from actors.graph import KNOWLEDGE_FLAG
from actors.schema import SettingError
from tests.conftest import (
    JSON,
    WITHOUT_AGENTS,
    Daemon,
    decode_by_spec,
    load_graph,
    receive_binary,
    receive_json,
    start_daemon,
)
from transport.security import AccessPolicy, is_loopback_host
from transport.settings import ServerSettings

API_TOKEN = "api-token-for-the-tests-0123"
WS_ROUTES = ("/wss", "/ws/hybrid-health", "/ws/speech", "/ws/mcp-relay")
GRAPH = {"nodes": [{"id": 1, "label": "a"}, {"id": 2, "label": "b"}],
         "edges": [{"source": 1, "target": 2}]}


def port_of(d: Daemon) -> int:
    return int(d.url.rsplit(":", 1)[1])


async def knowledge_ids(d: Daemon) -> list[int]:
    async with d.session.get(f"{d.url}/api/graph") as r:
        view = await r.json()
    return [n["id"] for n in view.get("knowledge", {}).get("nodes", [])]


# -- the rules, as pure functions --------------------------------------------------------------

@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True), ("127.1.2.3", True),
    ("10.0.0.7:8080", False),  # bound to loopback: not one of its names
    ("8.8.8.8", False), ("evil.example:8080", False), ("localhost.evil.example", False),
    ("", False), ("[::1", False), ("evil.example@127.0.0.1", False), ("127.0.0.1/evil", False),
])
def test_host_rule(host: str, allowed: bool) -> None:
    assert AccessPolicy().host_allowed(host) is allowed


def test_host_rule_beyond_loopback() -> None:
    """Bound to one address, that address is a name; bound to every address, any address
    literal is (a rebinding attack needs a DNS name); names still need allowed_hosts."""
    assert AccessPolicy(bind_host="10.0.0.7").host_allowed("10.0.0.7:8080")
    assert not AccessPolicy(bind_host="10.0.0.7").host_allowed("10.0.0.8:8080")
    assert AccessPolicy(bind_host="0.0.0.0").host_allowed("10.0.0.8:8080")
    assert not AccessPolicy(bind_host="0.0.0.0").host_allowed("hive.lan:8080")


def test_configured_host_names_are_allowed() -> None:
    rules = AccessPolicy(allowed_hosts=("hive.lan",))
    assert rules.host_allowed("hive.lan:8080") and not rules.host_allowed("other.lan:8080")


@pytest.mark.parametrize(("origin", "host", "allowed"), [
    ("http://127.0.0.1:8080", "127.0.0.1:8080", True),
    ("http://localhost:8080", "127.0.0.1:8080", True),  # loopback names stand for each other
    ("http://localhost:9999", "localhost:8080", False),  # another port: another origin
    ("http://localhost", "localhost:8080", False),
    ("https://127.0.0.1:8080", "127.0.0.1:8080", False),  # another scheme
    ("http://evil.example:8080", "evil.example:8080", True),  # (the Host rule stops this pair)
    ("http://evil.example:8080", "127.0.0.1:8080", False),
    ("http://10.0.0.9:8080", "127.0.0.1:8080", False),  # a page served elsewhere on our port
    ("null", "127.0.0.1:8080", False),
    ("http://[::1", "127.0.0.1:8080", False),
])
def test_origin_rule(origin: str, host: str, allowed: bool) -> None:
    assert AccessPolicy().origin_allowed(origin, host, 8080) is allowed


def test_configured_origins_replace_the_default() -> None:
    rules = AccessPolicy(allowed_origins=("https://console.example",))
    assert rules.origin_allowed("https://console.example:443", "127.0.0.1:8080", 8080)
    assert not rules.origin_allowed("http://127.0.0.1:8080", "127.0.0.1:8080", 8080)
    assert not rules.origin_allowed("null", "127.0.0.1:8080", 8080)


@pytest.mark.parametrize("entry", ["*", "null", "localhost:3000", "127.0.0.1:3000", "ftp://x",
                                   "http://a/path", "http://"])
def test_an_allow_list_entry_must_be_an_origin(entry: str) -> None:
    """A schemeless entry or a wildcard once compared equal to ``Origin: null`` (found by
    review: a sandboxed frame could then change things)."""
    with pytest.raises(SettingError, match=r"allowed_origins: .* is not an origin"):
        ServerSettings(allowed_origins=(entry,))


def test_loopback_names() -> None:
    assert all(map(is_loopback_host, ("127.0.0.1", "localhost", "::1", "[::1]", "127.9.9.9")))
    assert not any(map(is_loopback_host, ("0.0.0.0", "10.1.1.1", "example.com", "::")))


# -- DNS rebinding and cross-site requests, without a token -----------------------------------

async def test_dns_rebinding_is_refused_on_every_websocket_and_route(daemon: Daemon) -> None:
    evil = f"evil.example:{port_of(daemon)}"
    for route in WS_ROUTES:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await daemon.session.ws_connect(f"{daemon.ws_url}{route}", origin=f"http://{evil}",
                                            headers={"Host": evil})
        assert info.value.status == 403, route
    async with daemon.session.put(f"{daemon.url}/api/graph", json=GRAPH,
                                  headers={"Host": evil, "Origin": f"http://{evil}"}) as r:
        assert r.status == 403 and "DNS rebinding" in (await r.json())["error"]
    async with daemon.session.get(f"{daemon.url}/api/graph", headers={"Host": evil}) as r:
        assert r.status == 403
    assert await knowledge_ids(daemon) == []  # nothing was loaded


async def test_an_origin_with_another_port_is_refused(daemon: Daemon) -> None:
    for route in WS_ROUTES:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await daemon.session.ws_connect(f"{daemon.ws_url}{route}",
                                            origin="http://localhost:9999")
        assert info.value.status == 403, route
    async with daemon.session.put(f"{daemon.url}/api/graph", json=GRAPH,
                                  headers={"Origin": "http://localhost:9999"}) as r:
        assert r.status == 403
    own = f"http://localhost:{port_of(daemon)}"
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss", origin=own) as ws:
        await receive_json(ws, "connection_established")
    async with daemon.session.put(f"{daemon.url}/api/graph", json=GRAPH,
                                  headers={"Origin": own}) as r:
        assert r.status == 200


async def test_a_cross_site_simple_request_changes_nothing(daemon: Daemon) -> None:
    """The browser sends a text/plain POST or PUT without a preflight: refused by its Origin,
    and even without one (a non-browser) a body that is not declared JSON is 415."""
    body = '{"nodes": [{"id": 5}], "edges": []}'
    plain = {"Content-Type": "text/plain"}
    async with daemon.session.put(f"{daemon.url}/api/graph", data=body,
                                  headers={**plain, "Origin": "http://evil.example"}) as r:
        assert r.status == 403
    async with daemon.session.put(f"{daemon.url}/api/graph", data=body, headers=plain) as r:
        assert r.status == 415 and "application/json" in (await r.json())["error"]
    async with daemon.session.put(f"{daemon.url}/api/graph", data=body,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"}) as r:
        assert r.status == 415
    assert await knowledge_ids(daemon) == []
    async with daemon.session.put(f"{daemon.url}/api/graph", data=body,
                                  headers={"Content-Type": "application/json; charset=utf-8"}) as r:
        assert r.status == 200
    async with daemon.session.get(f"{daemon.url}/metrics") as r:
        metrics = await r.text()
    assert 'hive_http_refused_total{reason="content_type"} 2.0' in metrics
    assert 'hive_http_refused_total{reason="origin"} 1.0' in metrics


# -- with an API token -------------------------------------------------------------------------

@pytest.fixture
async def guarded() -> AsyncIterator[Daemon]:
    d = await start_daemon(WITHOUT_AGENTS, api_token=API_TOKEN)
    yield d
    await d.stop()


async def test_with_a_token_changes_need_it_and_reads_do_not(guarded: Daemon) -> None:
    d = guarded
    async with d.session.put(f"{d.url}/api/graph", json=GRAPH) as r:
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    async with d.session.put(f"{d.url}/api/graph", json=GRAPH,
                             headers={"Authorization": "Bearer wrong-token-0000000000"}) as r:
        assert r.status == 401
    async with d.session.put(f"{d.url}/api/graph", json=GRAPH,
                             headers={"Authorization": f"Bearer {API_TOKEN}"}) as r:
        assert r.status == 200
    async with d.session.put(f"{d.url}/api/graph?token={API_TOKEN}", json=GRAPH) as r:
        assert r.status == 200  # the browsers' form
    for method, path in (("POST", "/api/swarms"), ("DELETE", "/api/swarms/x")):
        async with d.session.request(method, f"{d.url}{path}", json={"task": "t"}) as r:
            assert r.status == 401, (method, path)
    async with d.session.get(f"{d.url}/api/graph") as r:
        assert r.status == 200
    # the admin routes keep their own token: the API token is not it
    async with d.session.post(f"{d.url}/admin/actors/root/health/restart",
                              headers={"Authorization": f"Bearer {API_TOKEN}"}) as r:
        assert r.status == 401
    async with d.session.post(f"{d.url}/admin/actors/root/health/restart",
                              headers=d.admin()) as r:
        assert r.status == 200


async def _drag(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_bytes(struct.pack("<I3f3ffi", KNOWLEDGE_FLAG | 3, 100.0, -50.0, 25.0,
                                    0, 0, 0, 0, -1))


async def _position_of_node_3(ws: aiohttp.ClientWebSocketResponse) -> tuple[float, ...]:
    await ws.send_json({"type": "request_full_snapshot"})
    records = {r[0]: r for r in decode_by_spec(await receive_binary(ws))}
    return records[KNOWLEDGE_FLAG | 3][1]


async def test_with_a_token_drags_need_it(guarded: Daemon) -> None:
    d = guarded
    async with d.session.put(f"{d.url}/api/graph?token={API_TOKEN}",
                             json={"nodes": [{"id": i} for i in range(5)], "edges": []}) as r:
        assert r.status == 200
    async with d.session.ws_connect(f"{d.ws_url}/wss") as ws:  # reading needs no token
        await receive_json(ws, "connection_established")
        await _drag(ws)
        assert (await receive_json(ws, "error"))["code"] == "unauthorized"
        assert await _position_of_node_3(ws) != pytest.approx((100.0, -50.0, 25.0), abs=1e-3)
        await ws.send_json({"type": "auth", "token": API_TOKEN})  # the first-message form
        await receive_json(ws, "authenticated")
        await _drag(ws)  # handled before the snapshot request that follows it
        assert await _position_of_node_3(ws) == pytest.approx((100.0, -50.0, 25.0), abs=1e-3)
    async with d.session.ws_connect(f"{d.ws_url}/wss?token={API_TOKEN}") as ws:
        await receive_json(ws, "connection_established")
        await _drag(ws)
        await ws.send_json({"type": "ping", "timestamp": 1})
        await receive_json(ws, "pong")  # no error came before it
    async with d.session.ws_connect(f"{d.ws_url}/wss") as ws:
        await receive_json(ws, "connection_established")
        await ws.send_json({"type": "auth", "token": "wrong-token-0000000000"})
        msg = await ws.receive()
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1008
    with pytest.raises(aiohttp.WSServerHandshakeError):  # a wrong token at the upgrade: 401
        await d.session.ws_connect(f"{d.ws_url}/wss?token=nope")


async def test_with_a_token_typed_voice_commands_need_it(guarded: Daemon) -> None:
    d = guarded
    async with d.session.ws_connect(f"{d.ws_url}/ws/speech") as ws:
        await receive_json(ws, "connected")
        await ws.send_json({"type": "voice_command", "text": "stop all swarms"})
        reply = await receive_json(ws, "voice_response")
        assert reply["data"]["ok"] is False and "API token" in reply["data"]["text"]
        assert (await receive_json(ws, "error"))["code"] == "unauthorized"


async def test_with_a_token_the_relay_needs_it(guarded: Daemon) -> None:
    d = guarded
    request = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    async with d.session.ws_connect(f"{d.ws_url}/ws/mcp-relay") as ws:
        await ws.send_json(request)
        answer = await ws.receive_json(timeout=5)
        assert answer["id"] == 1 and answer["error"]["code"] == -32001
        assert "API token" in answer["error"]["message"]
        await ws.send_json({"type": "auth", "token": API_TOKEN})
        assert (await ws.receive_json(timeout=5))["type"] == "authenticated"
        await ws.send_json(request)  # now forwarded (MCP is off here: a clear error, not -32001)
        answer = await ws.receive_json(timeout=5)
        assert answer["error"]["code"] == -32000 and "MCP unavailable" in answer["error"]["message"]


async def test_the_loopback_default_is_still_open_to_local_tools(daemon: Daemon) -> None:
    """No token set (loopback only): curl-style clients without an Origin change things."""
    await load_graph(daemon, 3)
    async with daemon.session.put(f"{daemon.url}/api/graph", json=GRAPH, headers=JSON) as r:
        assert r.status == 200
