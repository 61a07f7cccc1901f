"""``/wss``: the binary position stream (protocol v2, or v3 on request) and its JSON control
messages."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from actors.graph import AGENT_FLAG, KNOWLEDGE_FLAG, NodeKind
from actors.messages import GetGraph, GetSnapshot, PinNodes
from supervisor import SupervisionError
from transport.codec import FrameError, decode_client_update, encode_records
from transport.ws import (
    Connection,
    guarded,
    messages,
    now_ms,
    open_ws,
    release,
)

__all__ = ["MAX_INTERVAL_MS", "MIN_INTERVAL_MS", "add_routes", "positions_ws"]


MIN_INTERVAL_MS = 0
MAX_INTERVAL_MS = 60_000
PROTOCOLS = (2, 3)  # v2: transport.codec, the default; v3: transport.codec_v3, on request


def add_routes(app: web.Application) -> None:
    app.router.add_get("/wss", positions_ws)


async def positions_ws(request: web.Request) -> web.StreamResponse:
    opened = await open_ws(request, "/wss")
    if not isinstance(opened, Connection):
        return opened
    conn = opened
    services = conn.services
    hub = services.hub
    client = hub.add_client()
    sender = asyncio.create_task(hub.run_sender(client, conn.send_bytes))
    try:
        await conn.send_json({"type": "connection_established", "timestamp": now_ms(),
                              "protocol": 2, "client_id": client.id})
        async for incoming in messages(conn):
            if incoming.binary is not None:
                await _position_update(conn, incoming.binary)
                continue
            assert incoming.data is not None
            await guarded(conn, _control(conn, client, incoming.data))
    finally:
        hub.remove_client(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
        await release(conn)
    return conn.ws


async def _control(conn: Connection, client: Any, data: dict[str, Any]) -> None:
    kind = data["type"]
    if kind == "ping":
        await conn.send_json({"type": "pong", "timestamp": data.get("timestamp", now_ms())})
    elif kind == "subscribe_position_updates":
        options = data.get("data") or {}
        if not isinstance(options, dict):
            await conn.error("subscribe_position_updates: 'data' must be an object")
            return
        interval = options.get("interval", 60)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not (
            MIN_INTERVAL_MS <= interval <= MAX_INTERVAL_MS
        ):
            await conn.error(
                f"subscribe_position_updates: interval must be a number of ms in "
                f"[{MIN_INTERVAL_MS}, {MAX_INTERVAL_MS}]"
            )
            return
        if options.get("binary", True) is not True:
            await conn.error("only binary position updates are supported (binary: true)")
            return
        protocol = options.get("protocol", 2)
        if protocol not in PROTOCOLS or isinstance(protocol, bool | float):
            await conn.error(f"subscribe_position_updates: protocol must be one of {list(PROTOCOLS)}")
            return
        try:
            resume = _resume(options.get("resume")) if protocol == 3 else None
        except ValueError:
            await conn.error("subscribe_position_updates: resume must be "
                             '{"key": k, "seq": s}, two integers in [0, 2^32)')
            return
        confirmed: dict[str, Any] = {"interval": interval, "binary": True}
        if "protocol" in options:  # a v2 client that names no protocol gets v2's reply, unchanged
            confirmed["protocol"] = protocol
        await conn.send_json({"type": "subscription_confirmed", "timestamp": now_ms(),
                              "data": confirmed})
        # frames after the confirmation
        conn.services.hub.subscribe(client, interval / 1000.0, protocol, resume)
    elif kind == "unsubscribe_position_updates":
        client.subscribed = False
        client.pending = None
        await conn.send_json({"type": "unsubscription_confirmed", "timestamp": now_ms()})
    elif kind == "request_full_snapshot":
        await _snapshot(conn, data)
    elif kind == "requestBotsGraph":
        await _bots_graph(conn)
    else:
        await conn.error(f"unknown message type {kind!r}",
                         known=["ping", "subscribe_position_updates",
                                "unsubscribe_position_updates", "request_full_snapshot",
                                "requestBotsGraph"])


def _resume(value: Any) -> tuple[int, int] | None:
    """A v3 client's ``resume`` state (key, seq); None when absent; ValueError when malformed."""
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"key", "seq"}:
        raise ValueError(value)
    key, seq = value["key"], value["seq"]
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32
               for v in (key, seq)):
        raise ValueError(value)
    return key, seq


async def _snapshot(conn: Connection, data: dict[str, Any]) -> None:
    graphs = data.get("graphs", ["knowledge", "agent"])
    if not isinstance(graphs, list) or not all(g in ("knowledge", "agent") for g in graphs):
        await conn.error("request_full_snapshot: graphs must be a list of 'knowledge', 'agent'")
        return
    if conn.services.has("cluster"):  # in a cluster: what viewers see (maybe the leader's)
        frame = conn.services.hub.latest
        if frame is None:
            await conn.error("no frame yet: the layout is empty or the leader has sent none")
            return
    else:
        try:
            frame = await conn.services.address("gpu_layout").ask_async(GetSnapshot(), timeout=5)
        except SupervisionError as exc:
            await conn.error(f"layout unavailable: {exc}")
            return
    ids = frame.wire_ids
    keep = None
    if "agent" not in graphs:
        keep = (ids & AGENT_FLAG) == 0
    if "knowledge" not in graphs:
        k = (ids & KNOWLEDGE_FLAG) == 0
        keep = k if keep is None else keep & k
    if keep is None:
        payload = encode_records(ids, frame.positions, frame.velocities)
    else:
        payload = encode_records(ids[keep], frame.positions[keep], frame.velocities[keep])
    await conn.send_bytes(payload)


async def _bots_graph(conn: Connection) -> None:
    try:
        view = await conn.services.address("gpu_layout").ask_async(
            GetGraph(NodeKind.AGENT), timeout=5)
    except SupervisionError as exc:
        await conn.error(f"layout unavailable: {exc}")
        return
    graph = view.get("agent", {"nodes": [], "edges": []})
    await conn.send_json({"type": "botsGraphUpdate", "timestamp": now_ms(), "data": graph})


async def _position_update(conn: Connection, payload: bytes) -> None:
    if not conn.authorized:
        await conn.refuse_change("a drag (binary position update)")
        return
    try:
        records = decode_client_update(payload)
    except FrameError as exc:
        await conn.error(f"bad position update: {exc}")
        return
    if len(records) == 0:
        return
    message = PinNodes(
        tuple(int(i) for i in records["id"]),
        tuple((float(p[0]), float(p[1]), float(p[2])) for p in records["position"]),
    )
    # in a cluster the drag goes to the layout viewers see (the leader's), by the cluster actor
    target = "cluster" if conn.services.has("cluster") else "gpu_layout"
    try:
        conn.services.address(target).tell(message)
    except SupervisionError as exc:
        await conn.error(f"layout unavailable: {exc}")
    else:
        conn.services.metrics.position_updates.inc(len(records))

