"""The daemon's own MCP tools and resources, each tool with a JSON Schema for its input and its
structured output. A tool answers a dict (its ``structuredContent``); :class:`ToolError` is a
failure the caller should see (``isError``); bad arguments are refused before a tool runs.

The admin tools (``restart_actor``, ``stop_actor``, ``start_actor``) need the admin token on
the request (``X-Admin-Token``), as ``/admin`` does; everything else follows the API token.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.graph import AGENT_FLAG, ID_MASK, KNOWLEDGE_FLAG, NodeKind
from actors.health import GetHealth, HealthSnapshot
from actors.hive_mind.messages import GetSwarm, ListSwarms, SpawnRequest, SpawnSwarm, StopSwarm
from actors.mcp.messages import GetAgents
from actors.messages import GetGraph, GetSnapshot, SetGraph
from supervisor import SupervisionError
from transport.graph_input import BadGraph, read_graph
from transport.http_errors import DOMAIN_ERRORS
from transport.services import Services

__all__ = ["RESOURCES", "TOOLS", "Tool", "ToolContext", "ToolError", "check_arguments",
           "read_resource", "resource_signature"]

ASK_S = 10.0
SPAWN_WAIT_S = 300.0  # a spawn reported until active or failed, at most this long
MAX_NEAREST = 500


class ToolError(Exception):
    """A failure the caller is told about as the tool's result (``isError``)."""


@dataclass(frozen=True)
class ToolContext:
    services: Services
    admin: bool  # the request carried the admin token
    progress: Callable[[float, float | None, str], Awaitable[None]]  # no-op without a token


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    input_schema: Mapping[str, Any]
    output_schema: Mapping[str, Any]
    run: Callable[[ToolContext, dict[str, Any]], Awaitable[dict[str, Any]]]
    admin: bool = False

    def listing(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "inputSchema": dict(self.input_schema), "outputSchema": dict(self.output_schema)}


def _object(properties: Mapping[str, Any] | None = None, required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": dict(properties or {}), "required": list(required),
            "additionalProperties": False}


_ANY_OBJECT = {"type": "object"}
_SESSION = {"type": "object", "properties": {"id": {"type": "string"}, "status": {"type": "string"},
                                             "task": {"type": "string"}}, "required": ["id", "status"]}
_ID = {"type": "string", "minLength": 1, "maxLength": 100, "description": "the swarm's id"}
_PATH = {"type": "string", "minLength": 1, "maxLength": 200,
         "description": "an actor's path in the tree, e.g. root/mcp"}


# -- argument checking: the subset of JSON Schema the tools above use ----------------------------

_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
}


def check_arguments(schema: Mapping[str, Any], value: Any, where: str = "arguments") -> str | None:
    """Why ``value`` does not fit ``schema``, or None."""
    kind = schema.get("type")
    if kind is not None and not _TYPES[kind](value):
        return f"{where} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} must be one of {', '.join(map(str, schema['enum']))}"
    if isinstance(value, str) and not schema.get("minLength", 0) <= len(value) <= schema.get(
            "maxLength", 1 << 30):
        return f"{where} must have {schema.get('minLength', 0)} to {schema.get('maxLength')} characters"
    if isinstance(value, int | float) and not isinstance(value, bool) and (
            value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf)):
        return f"{where} must be from {schema.get('minimum')} to {schema.get('maximum')}"
    if isinstance(value, dict) and kind == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", ()):
            if name not in value:
                return f"{where}.{name} is required"
        for name, item in value.items():
            if name not in properties:
                if schema.get("additionalProperties", True) is False:
                    return f"{where}: unknown field {name[:60]!r} (known: {', '.join(properties) or 'none'})"
                continue
            problem = check_arguments(properties[name], item, f"{where}.{name}")
            if problem:
                return problem
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value[:100_000]):
            problem = check_arguments(schema["items"], item, f"{where}[{i}]")
            if problem:
                return problem
    return None


# -- the tools ----------------------------------------------------------------------------------

async def _ask(services: Services, actor: str, message: Any, timeout: float = ASK_S) -> Any:
    try:
        return await services.address(actor).ask_async(message, timeout=timeout)
    except DOMAIN_ERRORS as exc:
        raise ToolError(f"{actor}: {exc}") from None


async def spawn_swarm(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    try:
        request = SpawnRequest(args["task"], args.get("priority", "medium"), args.get("strategy"),
                               args.get("max_agents"))
    except (ValueError, TypeError) as exc:
        raise ToolError(str(exc)) from None
    accepted = await _ask(ctx.services, "hive_mind", SpawnSwarm(request, args.get("idempotency_key", "")))
    session = accepted.session
    await ctx.progress(0, 2, f"{session.id}: spawning")
    if not args.get("wait", True):
        return {"swarm": session.to_json()}
    deadline = time.monotonic() + SPAWN_WAIT_S
    last, step = session.status, 0
    while session.status not in ("active", "failed", "completed") and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        session = await _ask(ctx.services, "hive_mind", GetSwarm(session.id))
        if session.status != last and session.status not in ("active", "failed", "completed"):
            last, step = session.status, step + 1  # progress only ever increases
            await ctx.progress(step, step + 2, f"{session.id}: {session.status}")
    await ctx.progress(step + 2, step + 2, f"{session.id}: {session.status}")
    if session.status == "failed":
        raise ToolError(f"swarm {session.id} failed: {session.error or 'no reason given'}")
    return {"swarm": session.to_json()}


async def list_swarms(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    listing = await _ask(ctx.services, "hive_mind", ListSwarms())
    sessions = [s.to_json() for s in listing.sessions
                if args.get("status") in (None, s.status)][: args.get("limit", 1000)]
    return {"swarms": sessions, "total": len(listing.sessions)}


async def get_swarm(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return {"swarm": (await _ask(ctx.services, "hive_mind", GetSwarm(args["id"]))).to_json()}


async def stop_swarm(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    return {"swarm": (await _ask(ctx.services, "hive_mind", StopSwarm(args["id"]))).to_json()}


async def list_agents(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    telemetry = await _ask(ctx.services, "mcp", GetAgents())
    if telemetry is None:
        return {"agents": [], "total": 0}
    agents = [a.to_json() for a in telemetry.agents if args.get("swarm") in (None, a.swarm_id)]
    return {"agents": agents, "total": len(agents)}


async def load_graph(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    raw = json.dumps({"nodes": args["nodes"], "edges": args.get("edges", [])}).encode()
    try:
        graph = await asyncio.get_running_loop().run_in_executor(None, read_graph, raw)
    except BadGraph as exc:
        raise ToolError(str(exc)) from None
    try:
        counts = await _ask(ctx.services, "gpu_layout", SetGraph(graph), timeout=60)
    except ValueError as exc:
        raise ToolError(f"graph rejected: {exc}") from None
    return {"loaded": counts}


def _node(wire: int) -> dict[str, Any]:
    kind = "agent" if wire & AGENT_FLAG else "knowledge" if wire & KNOWLEDGE_FLAG else "unknown"
    return {"kind": kind, "id": wire & ID_MASK}


async def layout_snapshot(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    limit = args.get("limit", 100)
    if "swarm" in args:
        view = await _ask(ctx.services, "gpu_layout", GetGraph(NodeKind.AGENT))
        nodes = [{"kind": "agent", "id": n["id"], "label": n.get("label", ""), "position": n["position"]}
                 for n in view.get("agent", {}).get("nodes", [])
                 if args["swarm"] in (n.get("swarmId"), n.get("swarm")) and n.get("position")]
        return {"nodes": nodes[:limit], "total": len(nodes)}
    if "node" not in args:
        raise ToolError("layout_snapshot needs node (with kind) or swarm")
    frame = await _ask(ctx.services, "gpu_layout", GetSnapshot())
    kind = NodeKind(args.get("kind", "knowledge"))
    wires = frame.wire_ids.astype(np.int64)
    at = np.flatnonzero(wires == (kind.flag | int(args["node"])))
    if len(at) == 0:
        raise ToolError(f"no {kind} node {args['node']} in the layout")
    distance = np.linalg.norm(frame.positions - frame.positions[at[0]], axis=1)
    nearest = np.argsort(distance)[:limit]
    return {"nodes": [{**_node(int(wires[i])), "position": frame.positions[i].tolist(),
                       "distance": float(distance[i])} for i in nearest], "total": len(wires)}


async def health(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    snap: HealthSnapshot = await _ask(ctx.services, "health", GetHealth(bool(args.get("refresh"))))
    return dict(snap.body)


async def actor_tree(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(ctx.services.tree.describe(args["path"]) if "path" in args
                    else ctx.services.tree.describe())
    except SupervisionError as exc:  # no actor at that path
        raise ToolError(str(exc)) from None


def _control(op: str) -> Callable[[ToolContext, dict[str, Any]], Awaitable[dict[str, Any]]]:
    async def run(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        try:
            node = await ctx.services.tree.control_async(op, args["path"])
        except (ValueError, SupervisionError) as exc:  # unknown path, or not in that state
            raise ToolError(f"{op} {args['path']}: {exc}") from None
        return {"action": op, "path": args["path"], "node": node}
    return run


_NODES = {"type": "array", "maxItems": 1_000_000, "items": {"type": "object"}}
_CONTROL_OUT = {"type": "object", "properties": {"action": {"type": "string"},
                                                 "path": {"type": "string"}, "node": _ANY_OBJECT}}
TOOLS: tuple[Tool, ...] = (
    Tool("spawn_swarm", "Spawn a swarm of agents for a task. Reports progress (spawning, "
         "active) when asked, and answers once the swarm is active (or at once with wait=false).",
         _object({"task": {"type": "string", "minLength": 1, "maxLength": 10_000},
                  "priority": {"type": "string", "enum": ["low", "medium", "high", "critical"]},
                  "strategy": {"type": "string", "maxLength": 100},
                  "max_agents": {"type": "integer", "minimum": 1, "maximum": 100},
                  "wait": {"type": "boolean"},
                  "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 255}},
                 ("task",)),
         _object({"swarm": _SESSION}, ("swarm",)), spawn_swarm),
    Tool("list_swarms", "The swarms the daemon keeps, newest last (from memory: fast).",
         _object({"status": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 10_000}}),
         _object({"swarms": {"type": "array", "items": _SESSION}, "total": {"type": "integer"}},
                 ("swarms", "total")), list_swarms),
    Tool("get_swarm", "One swarm: status, task, workers, error.", _object({"id": _ID}, ("id",)),
         _object({"swarm": _SESSION}, ("swarm",)), get_swarm),
    Tool("stop_swarm", "Stop a swarm (answers at once, status stopping).", _object({"id": _ID}, ("id",)),
         _object({"swarm": _SESSION}, ("swarm",)), stop_swarm),
    Tool("list_agents", "The latest agent telemetry from the MCP pool, optionally of one swarm.",
         _object({"swarm": {"type": "string", "maxLength": 100}}),
         _object({"agents": {"type": "array", "items": _ANY_OBJECT}, "total": {"type": "integer"}},
                 ("agents", "total")), list_agents),
    Tool("load_graph", "Replace the knowledge graph the layout shows (nodes with integer ids "
         "and labels, edges between them).",
         _object({"nodes": _NODES, "edges": {"type": "array", "items": {"type": "object"}}}, ("nodes",)),
         _object({"loaded": _ANY_OBJECT}, ("loaded",)), load_graph),
    Tool("layout_snapshot", f"3D positions of the nodes nearest one node (node, kind) or of one "
         f"swarm's agents (swarm), at most {MAX_NEAREST}.",
         _object({"node": {"type": "integer", "minimum": 0, "maximum": ID_MASK},
                  "kind": {"type": "string", "enum": ["knowledge", "agent"]},
                  "swarm": {"type": "string", "maxLength": 100},
                  "limit": {"type": "integer", "minimum": 1, "maximum": MAX_NEAREST}}),
         _object({"nodes": {"type": "array", "items": _ANY_OBJECT}, "total": {"type": "integer"}},
                 ("nodes", "total")), layout_snapshot),
    Tool("health", "The health snapshot: each actor, the peers, the breakers.",
         _object({"refresh": {"type": "boolean"}}), _ANY_OBJECT, health),
    Tool("actor_tree", "The supervision tree (or one node of it): state, incarnation, restarts, "
         "last failure.", _object({"path": _PATH}), _ANY_OBJECT, actor_tree),
    Tool("restart_actor", "Restart an actor (needs the admin token: X-Admin-Token).",
         _object({"path": _PATH}, ("path",)), _CONTROL_OUT, _control("restart"), admin=True),
    Tool("stop_actor", "Stop an actor (needs the admin token: X-Admin-Token).",
         _object({"path": _PATH}, ("path",)), _CONTROL_OUT, _control("stop"), admin=True),
    Tool("start_actor", "Start a stopped actor (needs the admin token: X-Admin-Token).",
         _object({"path": _PATH}, ("path",)), _CONTROL_OUT, _control("start"), admin=True),
)


# -- resources ----------------------------------------------------------------------------------

RESOURCES: tuple[dict[str, str], ...] = (
    {"uri": "hive://health", "name": "health", "title": "Health snapshot",
     "description": "Each actor's health, the peers and the breakers", "mimeType": "application/json"},
    {"uri": "hive://actors", "name": "actors", "title": "Actor tree",
     "description": "The supervision tree: state, incarnation and restarts of each actor",
     "mimeType": "application/json"},
)


async def read_resource(services: Services, uri: str) -> dict[str, Any] | None:
    if uri == "hive://health":
        snap: HealthSnapshot = await _ask(services, "health", GetHealth(False))
        return dict(snap.body)
    if uri == "hive://actors":
        return dict(services.tree.describe())
    return None


def resource_signature(services: Services, uri: str, body: Mapping[str, Any] | None) -> Any:
    """What a change of the resource is (a timestamp alone is none)."""
    if uri == "hive://actors":
        def walk(node: Mapping[str, Any]) -> list[Any]:
            own = [(node["path"], node["state"], node["incarnation"], node["restarts"])]
            return own + [x for child in node["children"] for x in walk(child)]
        return walk(services.tree.describe())
    if body is None:
        return None
    components = body.get("components") or {}  # not "performance": it moves with every request
    return (body.get("system_status"), body.get("docker_health"), body.get("mcp_health"),
            tuple(sorted((name, c.get("health"), c.get("state"), c.get("restarts"))
                         for name, c in components.items() if isinstance(c, Mapping))))
