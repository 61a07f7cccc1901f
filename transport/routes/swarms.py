"""``/api/agents`` (the latest telemetry) and ``/api/swarms`` (the hive-mind control plane).

Reads come from the hive-mind actor's table and start no process. ``POST`` and ``DELETE``
answer ``202 Accepted`` at once (the session ``spawning`` or ``stopping``, with a ``Location``),
while the actor's worker pool runs the CLI; progress is pushed as ``session_update`` on
``/ws/hybrid-health``. An ``Idempotency-Key`` header makes a retried ``POST`` answer with the
first swarm instead of making a second one.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from aiohttp import web

from actors.hive_mind.messages import (
    STATUSES,
    Accepted,
    GetSwarm,
    Listing,
    ListSwarms,
    RefreshSwarms,
    Session,
    SpawnRequest,
    SpawnSwarm,
    StopSwarm,
)
from actors.mcp.messages import GetAgents
from transport.body_decoding import read_body
from transport.http_errors import DOMAIN_ERRORS, error_response, json_error
from transport.json_input import parse_json
from transport.services import SERVICES

__all__ = [
    "ASK_TIMEOUT_S",
    "MAX_PAGE",
    "REFRESH_TIMEOUT_S",
    "SPAWN_KEYS",
    "add_routes",
    "agents",
    "get_swarm",
    "list_swarms",
    "spawn",
    "stop_swarm",
]

SPAWN_KEYS = {"task", "priority", "strategy", "max_agents"}
ASK_TIMEOUT_S = 10.0  # the actor answers from memory: this is only ever reached when it is stuck
REFRESH_TIMEOUT_S = 5.0  # ?refresh=true waits this long for a re-read, then answers anyway
MAX_PAGE = 10_000
_COUNT = re.compile(r"^[0-9]{1,9}$")  # ASCII digits only (str.isdigit takes "²")
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII without spaces (the IETF draft's)


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


async def _hive(request: web.Request, message: Any) -> Any:
    return await request.app[SERVICES].address("hive_mind").ask_async(message, timeout=ASK_TIMEOUT_S)


def _accepted(session: Session, replayed: bool = False) -> web.Response:
    response = web.json_response(session.to_json(), status=202)
    response.headers["Location"] = f"/api/swarms/{session.id}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def spawn(request: web.Request) -> web.Response:
    key = request.headers.get("Idempotency-Key", "")
    if key and not _KEY.match(key):
        return json_error(400, "Idempotency-Key must be 1 to 255 printable ASCII characters")
    try:
        body = parse_json(await read_body(request, request.app[SERVICES].server.max_body_bytes))
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
        accepted: Accepted = await _hive(request, SpawnSwarm(spawn_request, key))
    except DOMAIN_ERRORS as exc:
        return error_response(exc, "swarm backend")
    return _accepted(accepted.session, accepted.replayed)


def _page(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not _COUNT.match(raw):
        raise ValueError(f"{name} must be a whole number from 0 to 999999999")
    return int(raw)


async def list_swarms(request: web.Request) -> web.Response:
    """``?status=`` filters, ``?limit=&offset=`` pages (by creation time), ``?refresh=true``
    re-reads every session first (waiting at most a few seconds)."""
    status = request.query.get("status")
    if status is not None and status not in STATUSES:
        return json_error(400, f"status must be one of {', '.join(STATUSES)}")
    try:
        limit = min(_page(request, "limit", MAX_PAGE), MAX_PAGE)
        offset = _page(request, "offset", 0)
    except ValueError as exc:
        return json_error(400, str(exc))
    refreshed = None
    try:
        if request.query.get("refresh") == "true":
            waiter = await _hive(request, RefreshSwarms())
            try:
                await asyncio.wait_for(asyncio.wrap_future(waiter), REFRESH_TIMEOUT_S)
                refreshed = True
            except TimeoutError:
                refreshed = False
        listing: Listing = await _hive(request, ListSwarms())
    except DOMAIN_ERRORS as exc:
        return error_response(exc, "swarm backend")
    encoded = listing.encoded
    if status is not None:
        encoded = tuple(e for s, e in zip(listing.sessions, encoded, strict=True)
                        if s.status == status)
    page = encoded[offset:offset + limit]
    tail: dict[str, Any] = {"total": len(encoded), "offset": offset, "limit": limit}
    if refreshed is not None:
        tail["refreshed"] = refreshed
    # each session's JSON was encoded once by the actor: the list is a join
    body = b'{"swarms":[' + b",".join(page) + b"]," + json.dumps(tail)[1:].encode()
    return web.Response(body=body, content_type="application/json")


async def get_swarm(request: web.Request) -> web.Response:
    try:
        session = await _hive(request, GetSwarm(request.match_info["id"]))
    except DOMAIN_ERRORS as exc:
        return error_response(exc, "swarm backend")
    return web.json_response(session.to_json())


async def stop_swarm(request: web.Request) -> web.Response:
    try:
        session = await _hive(request, StopSwarm(request.match_info["id"]))
    except DOMAIN_ERRORS as exc:
        return error_response(exc, "swarm backend")
    if session.status == "stopping":
        return _accepted(session)
    return web.json_response(session.to_json())  # a swarm that never came to be: forgotten
