"""hypothesis against every WebSocket route of a real daemon: each message type the AsyncAPI
document lists, with fields of any JSON shape, text that is not JSON, and binary frames of any
bytes (drags with NaN and infinities among them). After each batch the connection still
answers a ping, or was closed with a documented code; no reply ever holds a traceback; the
daemon is healthy at the end."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import hypothesis
import requests
from hypothesis import strategies as st

from tests.fuzz.conftest import EXAMPLES, FuzzTarget
from transport.routes.api_docs import API_DIR

ASYNCAPI = json.loads((API_DIR / "asyncapi.json").read_text())
# closes the protocol documents for bad input: unsupported data, policy (a bad token), too big
DOCUMENTED_CLOSES = {1003, 1008, 1009}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64) | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)


def types_of(channel: str) -> list[str]:
    """The ``type`` of every JSON message on a channel, as the AsyncAPI document lists them."""
    out = []
    for message in ASYNCAPI["channels"][channel]["messages"].values():
        constant = message["payload"].get("properties", {}).get("type", {}).get("const")
        if constant:
            out.append(constant)
    return out


def typed_messages(channel: str) -> st.SearchStrategy[Any]:
    fields = st.sampled_from(["data", "text", "action", "sampleRate", "token", "graphs", "interval",
                              "timestamp", "speak", "voice", "speed", "binary", "message"])
    return st.builds(lambda kind, extra: {**extra, "type": kind},
                     st.sampled_from([*types_of(channel), "nope", ""]),
                     st.dictionaries(fields | st.text(max_size=8), json_values, max_size=4))


def rpc_messages() -> st.SearchStrategy[Any]:
    methods = st.sampled_from(["ping", "tools/list", "tools/call", "initialize", "notifications/initialized",
                               "resources/list", "nope"]) | st.text(max_size=20)
    request = st.fixed_dictionaries(
        {"jsonrpc": st.sampled_from(["2.0", "1.0"]), "method": methods},
        optional={"id": st.integers() | st.text(max_size=8) | st.none(), "params": json_values})
    return request | st.lists(request, max_size=3) | json_values


def frames(channel: str) -> st.SearchStrategy[Any]:
    structured = rpc_messages() if channel == "mcpRelay" else typed_messages(channel)
    drag = st.builds(lambda node, xyz: bytes([2]) * 0 + node.to_bytes(4, "little") + b"".join(
        v.to_bytes(4, "little") for v in xyz) + bytes(20),
        st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2**32 - 1), min_size=3, max_size=3))
    return st.one_of(
        structured.map(lambda m: ("text", json.dumps(m))),
        st.text(max_size=60).map(lambda t: ("text", t)),
        st.binary(max_size=200).map(lambda b: ("binary", b)),
        drag.map(lambda b: ("binary", b)),
    )


def final_ping(channel: str) -> tuple[str, str]:
    if channel == "mcpRelay":
        return "pong", json.dumps({"jsonrpc": "2.0", "id": "final", "method": "ping"})
    return "pong", json.dumps({"type": "ping", "timestamp": 42})


async def exchange(target: FuzzTarget, channel: str, batch: list[tuple[str, Any]]) -> None:
    address = ASYNCAPI["channels"][channel]["address"]
    async with aiohttp.ClientSession() as session, session.ws_connect(
            target.ws_url + address, max_msg_size=0) as ws:
        for kind, payload in batch:
            if ws.closed:
                break
            await (ws.send_str(payload) if kind == "text" else ws.send_bytes(payload))
        _, ping = final_ping(channel)
        if not ws.closed:
            await ws.send_str(ping)
        async with asyncio.timeout(30):
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    assert "Traceback" not in msg.data, msg.data[:500]
                    data = json.loads(msg.data)
                    if data.get("type") == "pong" or (isinstance(data, dict) and data.get("id") == "final"):
                        return
                    if isinstance(data, list) and any(isinstance(d, dict) and d.get("id") == "final" for d in data):
                        return
        assert ws.close_code in DOCUMENTED_CLOSES, (ws.close_code, batch)


def _fuzz(channel: str) -> Any:
    @hypothesis.given(st.lists(frames(channel), min_size=1, max_size=6))
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def run(target: FuzzTarget, batch: list[tuple[str, Any]]) -> None:
        asyncio.run(exchange(target, channel, batch))
    return run


def test_positions(target: FuzzTarget) -> None:
    _fuzz("positions")(target)


def test_health(target: FuzzTarget) -> None:
    _fuzz("health")(target)


def test_mcp_relay(target: FuzzTarget) -> None:
    _fuzz("mcpRelay")(target)


def test_speech(target: FuzzTarget) -> None:
    _fuzz("speech")(target)


def test_the_daemon_is_healthy_after_the_fuzzing(target: FuzzTarget) -> None:
    body = requests.get(f"{target.url}/api/health?refresh=true", timeout=30).json()
    assert body["system_status"] == "healthy", body["components"]
    assert target.daemon.proc.poll() is None
    assert not [line for line in target.daemon.lines if "Traceback" in line]
