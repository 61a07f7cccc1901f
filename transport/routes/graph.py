"""``PUT /api/graph`` loads a knowledge graph into the layout; ``GET /api/graph`` reads it back
with positions. Bodies are read and checked by :mod:`transport.graph_input` before anything
reaches an actor."""

from __future__ import annotations

from concurrent.futures import BrokenExecutor

from aiohttp import web

from actors.graph import NodeKind
from actors.messages import GetGraph, SetGraph
from transport.body_decoding import read_body
from transport.graph_input import BadGraph, GraphReader
from transport.http_errors import DOMAIN_ERRORS, RETRY_AFTER_S, error_response, json_error
from transport.services import SERVICES

__all__ = ["GRAPH_READER", "add_routes", "get_graph", "put_graph"]

GRAPH_READER = web.AppKey("graph_reader", GraphReader)


def add_routes(app: web.Application) -> None:
    app[GRAPH_READER] = GraphReader()
    app.router.add_put("/api/graph", put_graph)
    app.router.add_get("/api/graph", get_graph)

    async def close_reader(app: web.Application) -> None:
        app[GRAPH_READER].close()

    app.on_cleanup.append(close_reader)


async def put_graph(request: web.Request) -> web.Response:
    raw = await read_body(request, request.app[SERVICES].server.max_body_bytes)
    try:
        graph = await request.app[GRAPH_READER].read(raw)
    except BadGraph as exc:
        return json_error(400, str(exc))
    except BrokenExecutor:
        response = json_error(503, "the graph reader stopped twice while reading this body (out "
                                   "of memory?); try again, or send a smaller graph")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response
    except MemoryError:
        return json_error(413, "the graph is too large to read in this daemon's memory")
    try:
        counts = await request.app[SERVICES].address("gpu_layout").ask_async(
            SetGraph(graph), timeout=60)
    except DOMAIN_ERRORS as exc:
        return error_response(exc, "layout")
    except ValueError as exc:  # the engine refused it; the layout kept its last good graph
        return json_error(400, f"graph rejected: {exc}")
    return web.json_response({"loaded": counts})


async def get_graph(request: web.Request) -> web.Response:
    kind = request.query.get("kind")
    if kind not in (None, "agent", "knowledge"):
        return json_error(400, "kind must be 'agent' or 'knowledge'")
    try:
        view = await request.app[SERVICES].address("gpu_layout").ask_async(
            GetGraph(NodeKind(kind) if kind else None), timeout=30)
    except DOMAIN_ERRORS as exc:
        return error_response(exc, "layout")
    return web.json_response(view)
