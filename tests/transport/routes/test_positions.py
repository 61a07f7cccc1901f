"""``/wss`` against a real server on loopback with real aiohttp WebSocket clients. Frames are
decoded here by the protocol's text (struct), not by the server's own codec."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import time

import aiohttp
import numpy as np
import pytest

from actors.graph import AGENT_FLAG, KNOWLEDGE_FLAG, Graph, GraphEdge, GraphNode, NodeKind
from actors.messages import PositionFrame, SetGraph, Step
from tests.conftest import (
    Daemon,
    V3BySpec,
    decode_by_spec,
    load_graph,
    receive,
    receive_binary,
    receive_json,
    start_daemon,
)


async def test_connect_ping_subscribe_and_stream(daemon: Daemon) -> None:
    await load_graph(daemon)
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss") as ws:
        hello = await receive_json(ws, "connection_established")
        assert isinstance(hello["timestamp"], int)
        await ws.send_json({"type": "ping", "timestamp": 1234})
        assert (await receive_json(ws, "pong"))["timestamp"] == 1234
        await ws.send_json({"type": "subscribe_position_updates", "data": {"interval": 30}})
        confirmed = await receive_json(ws, "subscription_confirmed")
        assert confirmed["data"]["interval"] == 30
        frames = [decode_by_spec(await receive_binary(ws)) for _ in range(5)]
    first = frames[0]
    assert len(first) == 20  # a client's first frame is full
    ids = {r[0] for r in first}
    assert ids == {KNOWLEDGE_FLAG | i for i in range(20)}
    for record in first:
        assert record[3] == float("inf") and record[4] == -1
        assert all(np.isfinite(record[1]))
    assert all(len(f) >= 1 for f in frames)


async def test_full_snapshot_and_bots_graph(daemon: Daemon) -> None:
    await load_graph(daemon, 12)
    agents = Graph.build(NodeKind.AGENT, [GraphNode(1, "coordinator"), GraphNode(2, "coder")],
                         [GraphEdge(1, 2)])
    await daemon.services.address("gpu_layout").ask_async(SetGraph(agents))
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss") as ws:
        await receive_json(ws, "connection_established")
        await ws.send_json({"type": "request_full_snapshot", "graphs": ["knowledge", "agent"]})
        records = decode_by_spec(await receive_binary(ws))
        assert len(records) == 14
        assert {r[0] for r in records if r[0] & AGENT_FLAG} == {AGENT_FLAG | 1, AGENT_FLAG | 2}
        await ws.send_json({"type": "request_full_snapshot", "graphs": ["agent"]})
        assert len(decode_by_spec(await receive_binary(ws))) == 2
        await ws.send_json({"type": "requestBotsGraph"})
        bots = await receive_json(ws, "botsGraphUpdate")
        assert [n["id"] for n in bots["data"]["nodes"]] == [1, 2]
        assert bots["data"]["edges"] == [{"source": 1, "target": 2, "weight": 1.0}]
        assert all(len(n["position"]) == 3 for n in bots["data"]["nodes"])


async def test_drag_update_pins_a_node(daemon: Daemon) -> None:
    await load_graph(daemon, 5)
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss") as ws:
        await receive_json(ws, "connection_established")
        record = struct.pack("<I3f3ffi", KNOWLEDGE_FLAG | 3, 100.0, -50.0, 25.0, 0, 0, 0, 0, -1)
        await ws.send_bytes(record)  # the browser sends records without the version byte
        await asyncio.sleep(0.3)
        await ws.send_json({"type": "request_full_snapshot"})
        records = {r[0]: r for r in decode_by_spec(await receive_binary(ws))}
    pos = records[KNOWLEDGE_FLAG | 3][1]
    assert pos == pytest.approx((100.0, -50.0, 25.0), abs=1e-3)


async def test_bad_messages_get_errors_and_the_stream_stays_usable(daemon: Daemon) -> None:
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss") as ws:
        await receive_json(ws, "connection_established")
        await ws.send_str("{not json")
        assert "malformed JSON" in (await receive_json(ws, "error"))["message"]
        await ws.send_str("[" * 50_000 + "]" * 50_000)  # nested past Python's recursion limit
        assert "nested too deeply" in (await receive_json(ws, "error"))["message"]
        await ws.send_str("[1, 2]")
        assert "JSON object" in (await receive_json(ws, "error"))["message"]
        await ws.send_str('{"type": "ping", "timestamp": NaN}')  # Python's extension, not JSON
        assert "NaN is not JSON" in (await receive_json(ws, "error"))["message"]
        await ws.send_str('{"type": "ping", "timestamp": 1e400}')  # JSON, but no float holds it
        assert "out of the float range" in (await receive_json(ws, "error"))["message"]
        await ws.send_json({"type": "launch_missiles"})
        assert "unknown message type" in (await receive_json(ws, "error"))["message"]
        await ws.send_json({"type": "subscribe_position_updates", "data": {"interval": "fast"}})
        assert "interval" in (await receive_json(ws, "error"))["message"]
        await ws.send_bytes(b"\x01\x02\x03")
        assert "36-byte records" in (await receive_json(ws, "error"))["message"]
        await ws.send_json({"type": "ping", "timestamp": 7})
        assert (await receive_json(ws, "pong"))["timestamp"] == 7


async def test_oversize_message_closes_with_1009_and_others_are_unaffected(daemon: Daemon) -> None:

    d = await start_daemon(max_ws_message_bytes=4096)
    try:
        async with d.session.ws_connect(f"{d.ws_url}/wss") as other, \
                d.session.ws_connect(f"{d.ws_url}/wss") as big:
            await receive_json(other, "connection_established")
            await receive_json(big, "connection_established")
            await big.send_str(json.dumps({"type": "ping", "pad": "x" * 10_000}))
            msg = await receive(big, 5)
            assert msg.type == aiohttp.WSMsgType.CLOSE
            assert big.close_code == 1009
            await other.send_json({"type": "ping", "timestamp": 1})
            assert (await receive_json(other, "pong"))["timestamp"] == 1
    finally:
        await d.stop()


async def test_a_message_of_exactly_the_limit_is_taken_and_one_byte_more_is_not() -> None:
    """The docs say messages *over* max_ws_message_bytes close with 1009; aiohttp refused one of
    exactly that size (second probe round)."""
    limit = 4096
    d = await start_daemon(max_ws_message_bytes=limit)
    try:
        for size, closed in ((limit, False), (limit + 1, True)):
            async with d.session.ws_connect(f"{d.ws_url}/wss") as ws:
                await receive_json(ws, "connection_established")
                head = '{"type": "ping", "timestamp": 3, "pad": "'
                await ws.send_str(head + "x" * (size - len(head) - 2) + '"}')
                if closed:
                    assert (await receive(ws, 5)).type == aiohttp.WSMsgType.CLOSE
                    assert ws.close_code == 1009
                else:
                    assert (await receive_json(ws, "pong"))["timestamp"] == 3
    finally:
        await d.stop()


async def test_origin_allow_list(daemon: Daemon) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await daemon.session.ws_connect(f"{daemon.ws_url}/wss", origin="http://evil.example")
    assert info.value.status == 403
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await daemon.session.ws_connect(f"{daemon.ws_url}/wss", origin="http://[::1")
    assert info.value.status == 403
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss", origin=daemon.url) as ws:
        await receive_json(ws, "connection_established")


async def test_max_clients(daemon: Daemon) -> None:

    d = await start_daemon(max_clients=2)
    try:
        a = await d.session.ws_connect(f"{d.ws_url}/wss")
        b = await d.session.ws_connect(f"{d.ws_url}/wss")
        c = await d.session.ws_connect(f"{d.ws_url}/wss")
        msg = await receive(c, 5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and c.close_code == 1013
        await a.send_json({"type": "ping", "timestamp": 2})
        assert (await receive_json(a, "pong"))["timestamp"] == 2
        for ws in (a, b, c):
            await ws.close()
    finally:
        await d.stop()


async def test_silent_client_is_closed_and_pings_are_sent() -> None:

    d = await start_daemon(ping_interval_s=0.2, idle_timeout_s=1.0)
    try:
        # autoping off: this client never answers pings, so it is silent
        ws = await d.session.ws_connect(f"{d.ws_url}/wss", autoping=False)
        pings = 0
        started = time.monotonic()
        while True:
            msg = await receive(ws, 10)
            if msg.type == aiohttp.WSMsgType.PING:
                pings += 1
            elif msg.type == aiohttp.WSMsgType.CLOSE:
                break
        assert pings >= 1
        assert ws.close_code == 1008 and msg.extra == "no message for 1 s"
        assert time.monotonic() - started >= 0.9  # not before the idle limit
        # a client that answers pings stays connected past the idle limit
        # (aiohttp's client answers pings only inside receive(), so keep one running, as a
        # browser always does)
        async with d.session.ws_connect(f"{d.ws_url}/wss") as alive:
            await receive_json(alive, "connection_established")
            reader = asyncio.create_task(receive_json(alive, "pong", timeout=5))
            await asyncio.sleep(1.5)
            await alive.send_json({"type": "ping", "timestamp": 3})
            assert (await reader)["timestamp"] == 3
    finally:
        await d.stop()


def frame(seq: int, n: int, full: bool = False) -> PositionFrame:
    ids = (np.arange(n) | KNOWLEDGE_FLAG).astype(np.uint32)
    pos = np.full((n, 3), float(seq), dtype=np.float32)
    return PositionFrame.make(seq, ids, pos, np.zeros((n, 3), np.float32),
                              np.ones(n, dtype=bool), full)


async def test_slow_client_loses_frames_and_never_slows_a_fast_one(daemon: Daemon) -> None:
    """A client that stops reading lets its slot overflow (counted); the fast one keeps pace."""
    hub = daemon.services.hub
    n = 2000  # 72 KB frames: the slow reader's socket buffers fill quickly
    fast = await daemon.session.ws_connect(f"{daemon.ws_url}/wss")
    slow = await daemon.session.ws_connect(f"{daemon.ws_url}/wss")
    for ws in (fast, slow):
        await receive_json(ws, "connection_established")
        await ws.send_json({"type": "subscribe_position_updates", "data": {"interval": 0}})
        await receive_json(ws, "subscription_confirmed")
    seq0 = 1_000_000  # far from the layout's own frames
    last = float(seq0 + 199)

    async def read_fast_until_the_last_frame() -> None:
        while True:
            msg = await fast.receive()
            assert msg.type == aiohttp.WSMsgType.BINARY, msg
            if decode_by_spec(msg.data[:37])[0][1][0] == last:
                return

    reader = asyncio.create_task(read_fast_until_the_last_frame())
    for i in range(200):
        hub.publish(frame(seq0 + i, n))
        await asyncio.sleep(0.005)
    async with asyncio.timeout(30):
        await reader  # the fast reader got the newest frame while the slow one sat blocked...
    by_drops = sorted(hub._clients.values(), key=lambda c: c.dropped)
    assert by_drops[-1].dropped > 0  # ...whose slot was overwritten (counted), not queued
    assert by_drops[-1].dropped > by_drops[0].dropped
    await fast.close()
    await slow.close()


async def test_bad_drags_never_crash_the_layout_and_a_restart_keeps_the_stream(daemon: Daemon) -> None:
    """Non-finite drag positions (with or without the version byte) are refused; and after the
    layout restarts, subscribed clients keep receiving frames (the hub's subscription survives)."""
    await load_graph(daemon, 10)
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss") as ws:
        await receive_json(ws, "connection_established")
        nan = struct.pack("<I3f3ffi", KNOWLEDGE_FLAG | 1, float("nan"), 0, 0, 0, 0, 0, 0, -1)
        for payload in (nan, b"\x02" + nan):
            await ws.send_bytes(payload)
            assert "finite" in (await receive_json(ws, "error"))["message"]
        assert daemon.tree.describe("root/gpu_layout")["incarnation"] == 1
        far = struct.pack("<I3f3ffi", KNOWLEDGE_FLAG | 1, 3e38, -3e38, 3e38, 0, 0, 0, 0, -1)
        await ws.send_bytes(far)  # finite but absurd: clamped to the world's bounds
        await asyncio.sleep(0.3)
        await ws.send_json({"type": "request_full_snapshot"})
        records = {r[0]: r for r in decode_by_spec(await receive_binary(ws))}
        assert records[KNOWLEDGE_FLAG | 1][1] == pytest.approx((5000.0, -5000.0, 5000.0))
        await ws.send_json({"type": "subscribe_position_updates", "data": {"interval": 0}})
        await receive_json(ws, "subscription_confirmed")
        await receive_binary(ws)
        await daemon.tree.control_async("restart", "root/gpu_layout")
        # frames keep coming from the new incarnation
        await daemon.services.address("gpu_layout").ask_async(Step(5))
        frames = [decode_by_spec(await receive_binary(ws, timeout=5)) for _ in range(3)]
        assert all(frames)
        # and it came back with the graph: with the stream stopped, the next binary is the snapshot
        await ws.send_json({"type": "unsubscribe_position_updates"})
        await receive_json(ws, "unsubscription_confirmed")
        await ws.send_json({"type": "request_full_snapshot"})
        await ws.send_json({"type": "ping", "timestamp": 1})
        binaries = []
        while (msg := await receive(ws, 5)).type != aiohttp.WSMsgType.TEXT or "pong" not in msg.data:
            if msg.type == aiohttp.WSMsgType.BINARY:
                binaries.append(bytes(msg.data))
        assert [len(decode_by_spec(b)) for b in binaries] == [10]


async def test_wrongly_typed_fields_get_errors_not_a_closed_stream(daemon: Daemon) -> None:
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss") as ws:
        await receive_json(ws, "connection_established")
        await ws.send_json({"type": "request_full_snapshot", "graphs": [["agent"]]})
        assert "graphs" in (await receive_json(ws, "error"))["message"]
        await ws.send_json({"type": "subscribe_position_updates", "data": [1]})
        assert "data" in (await receive_json(ws, "error"))["message"]
        await ws.send_json({"type": "ping", "timestamp": 11})
        assert (await receive_json(ws, "pong"))["timestamp"] == 11
    async with daemon.session.ws_connect(f"{daemon.ws_url}/ws/hybrid-health") as ws:
        await receive_json(ws, "initial_status")
        await ws.send_json({"type": "request_status", "data": [1]})
        assert "data" in (await receive_json(ws, "error"))["message"]
        await ws.send_json({"type": "ping", "timestamp": 12})
        assert (await receive_json(ws, "pong"))["timestamp"] == 12


# -- a layout at rest (issue 20) ----------------------------------------------------------------

REST_FAST = ("[actors.gpu_layout]\nrest_window_s = 0.25\n"
             "[actors.gpu_layout.params]\ncooling_rate = 0.97\nwarmup_iterations = 20\n")


async def layout_detail(d: Daemon) -> dict[str, object]:
    async with d.session.get(f"{d.url}/api/health?refresh=true") as r:
        health = await r.json()
    return dict(health["components"]["gpu_layout"]["detail"])


async def test_a_still_graph_goes_quiet_on_wss_and_a_drag_wakes_it() -> None:
    """Found in use: a still 500-node graph streamed 340 KB/s to every viewer forever. Now it
    comes to rest, /wss sends nothing, health and /metrics say so; a drag wakes it."""
    from tests.conftest import WITHOUT_AGENTS

    d = await start_daemon(WITHOUT_AGENTS + REST_FAST)
    try:
        await load_graph(d, 300)
        async with d.session.ws_connect(f"{d.ws_url}/wss") as ws:
            await receive_json(ws, "connection_established")
            await ws.send_json({"type": "subscribe_position_updates", "data": {"interval": 30}})
            await receive_json(ws, "subscription_confirmed")
            async with asyncio.timeout(30):
                while not (await layout_detail(d))["at_rest"]:
                    await asyncio.sleep(0.1)
            await asyncio.sleep(0.2)  # the still frame on its way
            while True:  # drain what was sent before rest
                try:
                    await asyncio.wait_for(ws.receive(), 0.3)
                except TimeoutError:
                    break
            quiet_since = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.receive(), 1.5)  # nothing at all while at rest
            assert time.monotonic() - quiet_since >= 1.5
            async with d.session.get(f"{d.url}/metrics") as r:
                assert "hive_layout_at_rest 1.0" in await r.text()
            async with d.session.ws_connect(f"{d.ws_url}/wss") as late:  # a newcomer at rest
                await late.send_json({"type": "subscribe_position_updates", "data": {"interval": 30}})
                await receive_json(late, "subscription_confirmed")
                assert len(decode_by_spec(await receive_binary(late, 5))) == 300  # every node
            record = struct.pack("<I3f3ffi", KNOWLEDGE_FLAG | 3, 80.0, -40.0, 20.0, 0, 0, 0, 0, -1)
            await ws.send_bytes(record)
            frame = decode_by_spec(await receive_binary(ws, 5))  # awake: frames again
            assert frame
            assert not (await layout_detail(d))["at_rest"]
    finally:
        await d.stop()


async def graph_positions(d: Daemon) -> dict[int, tuple[float, float, float]]:
    async with d.session.get(f"{d.url}/api/graph?kind=knowledge") as r:
        nodes = (await r.json())["knowledge"]["nodes"]
    return {KNOWLEDGE_FLAG | n["id"]: tuple(n["position"]) for n in nodes}


async def test_protocol_v3_streams_compact_frames_that_end_where_the_layout_is() -> None:
    """Issue 21: a client asks for v3 and gets it echoed, a keyframe first, then deltas; read
    by a decoder written from docs/protocol.md, its positions end within the stated bound
    (bounds / 65535, plus float32 rounding) of GET /api/graph's."""
    from tests.conftest import WITHOUT_AGENTS

    d = await start_daemon(WITHOUT_AGENTS + REST_FAST)
    try:
        await load_graph(d, 300)
        async with d.session.ws_connect(f"{d.ws_url}/wss") as ws:
            await receive_json(ws, "connection_established")
            await ws.send_json({"type": "subscribe_position_updates",
                                "data": {"interval": 30, "protocol": 3}})
            confirmed = await receive_json(ws, "subscription_confirmed")
            assert confirmed["data"] == {"interval": 30, "binary": True, "protocol": 3}
            client = V3BySpec()
            first = await receive_binary(ws, 5)
            assert first[0] == 3 and client.apply(first) == "key"
            assert len(first) == 32 + 10 * 300  # 10 bytes a node, v2's 36
            kinds = []
            async with asyncio.timeout(40):
                while not (await layout_detail(d))["at_rest"]:
                    with contextlib.suppress(TimeoutError):
                        kinds.append(client.apply(await receive_binary(ws, 0.5)))
            with contextlib.suppress(TimeoutError):
                while True:  # what was sent before rest
                    kinds.append(client.apply(await receive_binary(ws, 0.5)))
            assert kinds and set(kinds) == {"delta"}
            truth = await graph_positions(d)
            got = client.positions()
            assert set(got) == set(truth)
            error = max(abs(a - b) for i in truth for a, b in zip(got[i], truth[i], strict=True))
            assert error <= 5000.0 / 65535 + 5000.0 * 2**-23, error
    finally:
        await d.stop()


async def test_a_v3_client_that_reconnects_resumes_with_a_delta() -> None:
    from tests.conftest import WITHOUT_AGENTS

    d = await start_daemon(WITHOUT_AGENTS)
    try:
        await load_graph(d, 200)
        client = V3BySpec()
        async with d.session.ws_connect(f"{d.ws_url}/wss") as ws:
            await ws.send_json({"type": "subscribe_position_updates",
                                "data": {"interval": 30, "protocol": 3}})
            await receive_json(ws, "subscription_confirmed")
            for _ in range(3):
                client.apply(await receive_binary(ws, 5))
        async with d.session.ws_connect(f"{d.ws_url}/wss") as ws:
            await ws.send_json({"type": "subscribe_position_updates", "data": {
                "interval": 30, "protocol": 3, "resume": {"key": client.key, "seq": client.seq}}})
            await receive_json(ws, "subscription_confirmed")
            assert client.apply(await receive_binary(ws, 5)) == "delta"  # from its own state
    finally:
        await d.stop()


async def test_bad_v3_subscriptions_get_errors_and_v2_replies_are_unchanged(daemon: Daemon) -> None:
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss") as ws:
        for data, words in (({"protocol": 4}, "protocol must be one of [2, 3]"),
                            ({"protocol": "3"}, "protocol must be one of"),
                            ({"protocol": True}, "protocol must be one of"),
                            ({"protocol": 3, "resume": {"key": -1, "seq": 0}}, "resume must be"),
                            ({"protocol": 3, "resume": [1, 2]}, "resume must be")):
            await ws.send_json({"type": "subscribe_position_updates", "data": data})
            error = await receive_json(ws, "error")
            assert words in error["message"], error
        await ws.send_json({"type": "subscribe_position_updates", "data": {"interval": 30}})
        confirmed = await receive_json(ws, "subscription_confirmed")
        assert confirmed["data"] == {"interval": 30, "binary": True}  # v2: no new field


async def test_wss_declines_permessage_deflate(daemon: Daemon) -> None:
    """Each connection would compress its own copy of every frame (16 ms a viewer for a v2
    frame of 10,000 nodes): /wss declines it, as browsers offer it by default."""
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss", compress=15) as ws:
        assert ws.compress == 0
    async with daemon.session.ws_connect(f"{daemon.ws_url}/ws/hybrid-health", compress=15) as ws:
        assert ws.compress == 15  # the small JSON routes keep it
