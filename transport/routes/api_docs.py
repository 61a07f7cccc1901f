"""``/api/openapi.json`` (every HTTP route, OpenAPI 3.1) and ``/api/asyncapi.json`` (the
WebSockets, AsyncAPI 3.0): the API contract, served from ``transport/api/`` as written there.

Both are written by hand, for people as much as for tools, and checked against the daemon:
``tests/fuzz`` runs schemathesis on the first and checks that every route the app serves is in
it; the second lists every message type the WebSocket handlers answer to.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

__all__ = ["API_DIR", "add_routes", "asyncapi", "openapi"]

API_DIR = Path(__file__).resolve().parent.parent / "api"


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/asyncapi.json", asyncapi)


def _document(name: str) -> web.Response:
    return web.Response(body=(API_DIR / name).read_bytes(), content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


async def openapi(_request: web.Request) -> web.Response:
    return _document("openapi.json")


async def asyncapi(_request: web.Request) -> web.Response:
    return _document("asyncapi.json")
