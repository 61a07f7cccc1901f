"""``/admin/actors``: the live actor tree, and control of each actor, behind a bearer token."""

from __future__ import annotations

from aiohttp import web

from supervisor import SupervisionError, UnknownChild
from transport.http_errors import error_response, json_error
from transport.security import tokens_match
from transport.services import SERVICES

__all__ = ["ACTIONS", "add_routes", "control", "node", "not_an_action", "tree"]


ACTIONS = ("restart", "stop", "start", "kill")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/actors", tree)
    app.router.add_get("/admin/actors/{path:.+}", node)
    app.router.add_post(f"/admin/actors/{{path:.+}}/{{action:{'|'.join(ACTIONS)}}}", control)
    app.router.add_post("/admin/actors/{path:.+}", not_an_action)


def _authorized(request: web.Request) -> bool:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and tokens_match(token, request.app[SERVICES].server.admin_token)


def _deny() -> web.Response:
    response = json_error(401, "admin routes need 'Authorization: Bearer <token>'")
    response.headers["WWW-Authenticate"] = 'Bearer realm="hive-supervisor admin"'
    return response


async def tree(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _deny()
    return web.json_response(request.app[SERVICES].tree.describe())


async def node(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _deny()
    try:
        return web.json_response(request.app[SERVICES].tree.describe(request.match_info["path"]))
    except UnknownChild as exc:
        return error_response(exc, "actor")


async def control(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _deny()
    path, action = request.match_info["path"], request.match_info["action"]
    services = request.app[SERVICES]
    try:
        result = await services.tree.control_async(action, path)
    except UnknownChild as exc:
        return error_response(exc, "actor")
    except (ValueError, SupervisionError) as exc:  # the tree refuses it in its current state
        return json_error(409, f"{action} {path}: {exc}")
    return web.json_response({"action": action, "path": path, "node": result})


async def not_an_action(request: web.Request) -> web.Response:
    """A POST that names no action (found by fuzzing: it was a bare 405)."""
    if not _authorized(request):
        return _deny()
    return json_error(400, f"POST {request.path}: end the path with one of {', '.join(ACTIONS)} "
                           "(e.g. /admin/actors/root/gpu_layout/restart)")
