"""``/api/agents`` (the latest telemetry) and ``/api/swarms`` (the hive-mind control plane)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from actors.hive_mind import BackendUnavailable, GetSwarm, ListSwarms, SpawnSwarm, StopSwarm
from actors.mcp import GetAgents
from actors.swarm_backend import CommandFailed, SpawnRequest, UnknownSession
from supervisor import SupervisionError
from transport.app import SERVICES, json_error
from transport.ws import parse_json

SPAWN_KEYS = {"task", "priority", "strategy", "max_agents"}


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/agents", agents)
    app.router.add_post("/api/swarms", spawn)
    app.router.add_get("/api/swarms", list_swarms)
    app.router.add_get("/api/swarms/{id}", get_swarm)
    app.router.add_delete("/api/swarms/{id}", stop_swarm)


async def agents(request: web.Request) -> web.Response:
    try:
        telemetry = await request.app[SERVICES].address("mcp").ask_async(GetAgents(), timeout=5)
    except (SupervisionError, KeyError) as exc:
        return json_error(503, f"MCP actor unavailable: {exc}")
    if telemetry is None:
        return web.json_response({"agents": [], "swarms": [], "total": 0, "polledAt": None})
    return web.json_response(telemetry.to_json())


async def _hive(request: web.Request, message: Any, timeout: float = 120) -> Any:
    return await request.app[SERVICES].address("hive_mind").ask_async(message, timeout=timeout)


def _failure(exc: Exception) -> web.Response:
    if isinstance(exc, UnknownSession):
        return json_error(404, str(exc))
    if isinstance(exc, BackendUnavailable | SupervisionError | KeyError):
        return json_error(503, f"swarm backend unavailable: {exc}")
    if isinstance(exc, CommandFailed):
        return json_error(502, f"the hive-mind command failed: {exc}")
    raise exc


async def spawn(request: web.Request) -> web.Response:
    try:
        body = parse_json(await request.read())
    except ValueError as exc:
        return json_error(400, f"body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return json_error(400, "body must be a JSON object with a 'task'")
    unknown = set(body) - SPAWN_KEYS
    if unknown:
        return json_error(400, f"unknown field(s): {', '.join(sorted(unknown))}")
    try:
        task: Any = body.get("task")
        spawn_request = SpawnRequest(task, body.get("priority") or "medium",
                                     body.get("strategy"), body.get("max_agents"))
    except (ValueError, TypeError) as exc:
        return json_error(400, str(exc))
    try:
        session = await _hive(request, SpawnSwarm(spawn_request))
    except (BackendUnavailable, SupervisionError, CommandFailed, KeyError) as exc:
        return _failure(exc)
    return web.json_response(session.to_json(), status=201)


async def list_swarms(request: web.Request) -> web.Response:
    try:
        sessions = await _hive(request, ListSwarms(refresh=request.query.get("refresh") == "true"))
    except (BackendUnavailable, SupervisionError, KeyError) as exc:
        return _failure(exc)
    return web.json_response({"swarms": [s.to_json() for s in sessions], "total": len(sessions)})


async def get_swarm(request: web.Request) -> web.Response:
    try:
        session = await _hive(request, GetSwarm(request.match_info["id"]))
    except (UnknownSession, BackendUnavailable, SupervisionError, CommandFailed) as exc:
        return _failure(exc)
    return web.json_response(session.to_json())


async def stop_swarm(request: web.Request) -> web.Response:
    try:
        session = await _hive(request, StopSwarm(request.match_info["id"]))
    except (UnknownSession, BackendUnavailable, SupervisionError, CommandFailed) as exc:
        return _failure(exc)
    return web.json_response(session.to_json())
