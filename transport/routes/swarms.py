"""``/api/agents`` (the latest telemetry) and ``/api/swarms`` (the hive-mind control plane)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from actors.hive_mind.messages import GetSwarm, ListSwarms, SpawnRequest, SpawnSwarm, StopSwarm
from actors.hive_mind.settings import HiveMindSettings
from actors.mcp.messages import GetAgents
from transport.http_errors import DOMAIN_ERRORS, error_response, json_error
from transport.json_input import parse_json
from transport.services import SERVICES

__all__ = [
    "SPAWN_KEYS",
    "SPAWN_QUEUE_S",
    "add_routes",
    "agents",
    "get_swarm",
    "list_swarms",
    "spawn",
    "stop_swarm",
]


SPAWN_KEYS = {"task", "priority", "strategy", "max_agents"}
SPAWN_QUEUE_S = 60.0  # the longest a spawn may wait behind others before it is refused


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/agents", agents)
    app.router.add_post("/api/swarms", spawn)
    app.router.add_get("/api/swarms", list_swarms)
    app.router.add_get("/api/swarms/{id}", get_swarm)
    app.router.add_delete("/api/swarms/{id}", stop_swarm)


async def agents(request: web.Request) -> web.Response:
    try:
        telemetry = await request.app[SERVICES].address("mcp").ask_async(GetAgents(), timeout=5)
    except DOMAIN_ERRORS as exc:
        return error_response(exc, "MCP actor")
    if telemetry is None:
        return web.json_response({"agents": [], "swarms": [], "total": 0, "polledAt": None})
    return web.json_response(telemetry.to_json())


async def _hive(request: web.Request, message: Any, timeout: float = 120) -> Any:
    return await request.app[SERVICES].address("hive_mind").ask_async(message, timeout=timeout)


def _failure(exc: BaseException) -> web.Response:
    return error_response(exc, "swarm backend")


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
    # Spawns run one at a time. One that cannot begin within SPAWN_QUEUE_S is dropped by the
    # actor ("not created", safe to retry); one that has begun is waited for to the end, within
    # the worst case of its commands, so that a 5xx never hides a swarm that was made.
    worst = request.app[SERVICES].settings("hive_mind", HiveMindSettings).spawn_worst_case_s()
    try:
        session = await _hive(request, SpawnSwarm(spawn_request, time.monotonic() + SPAWN_QUEUE_S),
                              timeout=SPAWN_QUEUE_S + worst)
    except DOMAIN_ERRORS as exc:
        return _failure(exc)
    return web.json_response(session.to_json(), status=201)


async def list_swarms(request: web.Request) -> web.Response:
    try:
        sessions = await _hive(request, ListSwarms(refresh=request.query.get("refresh") == "true"))
    except DOMAIN_ERRORS as exc:
        return _failure(exc)
    return web.json_response({"swarms": [s.to_json() for s in sessions], "total": len(sessions)})


async def get_swarm(request: web.Request) -> web.Response:
    try:
        session = await _hive(request, GetSwarm(request.match_info["id"]))
    except DOMAIN_ERRORS as exc:
        return _failure(exc)
    return web.json_response(session.to_json())


async def stop_swarm(request: web.Request) -> web.Response:
    try:
        session = await _hive(request, StopSwarm(request.match_info["id"]))
    except DOMAIN_ERRORS as exc:
        return _failure(exc)
    return web.json_response(session.to_json())
