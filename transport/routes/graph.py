"""``PUT /api/graph`` loads a knowledge graph into the layout; ``GET /api/graph`` reads it back
with positions. Bodies are validated here, before anything reaches an actor."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from actors.graph import MAX_EDGE_WEIGHT, MAX_NODE_ID, Graph, GraphEdge, GraphNode, NodeKind
from actors.messages import GetGraph, SetGraph
from transport.http_errors import DOMAIN_ERRORS, error_response, json_error
from transport.json_input import parse_json
from transport.services import SERVICES

__all__ = [
    "MAX_EDGES",
    "MAX_NODES",
    "BadGraph",
    "add_routes",
    "get_graph",
    "parse_graph",
    "put_graph",
]


MAX_NODES = 1_000_000
MAX_EDGES = 5_000_000


class BadGraph(ValueError):
    pass


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/graph", put_graph)
    app.router.add_get("/api/graph", get_graph)


def parse_graph(body: Any) -> Graph:
    if not isinstance(body, dict):
        raise BadGraph("body must be a JSON object with 'nodes' and 'edges'")
    nodes_in, edges_in = body.get("nodes"), body.get("edges", [])
    if not isinstance(nodes_in, list):
        raise BadGraph("'nodes' must be a list")
    if not isinstance(edges_in, list):
        raise BadGraph("'edges' must be a list")
    if len(nodes_in) > MAX_NODES:
        raise BadGraph(f"too many nodes: {len(nodes_in)} > {MAX_NODES}")
    if len(edges_in) > MAX_EDGES:
        raise BadGraph(f"too many edges: {len(edges_in)} > {MAX_EDGES}")
    nodes = []
    for i, raw in enumerate(nodes_in):
        if not isinstance(raw, dict):
            raise BadGraph(f"nodes[{i}] must be an object")
        node_id = raw.get("id")
        if isinstance(node_id, bool) or not isinstance(node_id, int):
            raise BadGraph(f"nodes[{i}].id must be an integer")
        if not 0 <= node_id < MAX_NODE_ID:
            raise BadGraph(f"nodes[{i}].id {node_id} is outside [0, 2^30)")
        kind = raw.get("kind", "knowledge")
        if kind != "knowledge":
            raise BadGraph(f"nodes[{i}].kind must be 'knowledge' (agents come from telemetry)")
        label = raw.get("label", "")
        if not isinstance(label, str):
            raise BadGraph(f"nodes[{i}].label must be a string")
        nodes.append(GraphNode(node_id, label))
    edges = []
    for i, raw in enumerate(edges_in):
        if not isinstance(raw, dict):
            raise BadGraph(f"edges[{i}] must be an object")
        source, target = raw.get("source"), raw.get("target")
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (source, target)):
            raise BadGraph(f"edges[{i}].source and .target must be integer node ids")
        weight = raw.get("weight", 1.0)
        try:
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise TypeError
            assert isinstance(source, int) and isinstance(target, int)
            edges.append(GraphEdge(source, target, float(weight)))  # float(10**400): OverflowError
        except (TypeError, ValueError, OverflowError):
            raise BadGraph(
                f"edges[{i}].weight must be a number in [0, {MAX_EDGE_WEIGHT:g}]") from None
    try:
        return Graph.build(NodeKind.KNOWLEDGE, nodes, edges)
    except ValueError as exc:
        raise BadGraph(str(exc)) from None


def _graph_from_body(raw: bytes) -> Graph:
    try:
        body = parse_json(raw)
    except ValueError as exc:
        raise BadGraph(f"body is not valid JSON: {exc}") from None
    return parse_graph(body)


async def put_graph(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        # Seconds of parsing for a million nodes: off the event loop, which keeps serving.
        graph = await asyncio.get_running_loop().run_in_executor(None, _graph_from_body, raw)
    except BadGraph as exc:
        return json_error(400, str(exc))
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
