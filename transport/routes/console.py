"""``/``: the web console (built by ``make ui`` into ``transport/console_static``), and
``/api/info``, what the page needs to know about this daemon.

The console is served from the daemon's own origin with nothing fetched from elsewhere, and a
Content-Security-Policy that allows only this origin: no inline script, no inline style, no
third party. Without a build (no node or npm on the machine) ``/`` says how to make one.
"""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from aiohttp import web

from transport.services import SERVICES

__all__ = ["CONSOLE_DIR", "CSP", "add_routes", "asset", "index", "info"]

CONSOLE_DIR = Path(__file__).resolve().parents[1] / "console_static"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; worker-src 'self'; media-src 'self' blob:; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
_ASSET = re.compile(r"^[A-Za-z0-9_.-]+$")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml",
          ".html": "text/html"}
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>hive-supervisor</title></head><body>
<h1>hive-supervisor</h1>
<p>The daemon is running, but its web console has not been built on this machine.</p>
<p>Build it with <code>make ui</code> (it needs node and npm: <code>apt-get install nodejs
npm</code>), then reload this page. <code>make run</code> builds it too.</p>
<p>Meanwhile: <a href="/api/health">/api/health</a>, <a href="/metrics">/metrics</a>,
<a href="/api/info">/api/info</a>.</p>
</body></html>
"""


def add_routes(app: web.Application) -> None:
    app.router.add_get("/", index)
    app.router.add_get("/console/{name}", asset)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_get("/api/info", info)


def _headers(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-cache"
    return response


async def index(request: web.Request) -> web.StreamResponse:
    page = CONSOLE_DIR / "index.html"
    if not page.is_file():
        return _headers(web.Response(text=NOT_BUILT, content_type="text/html"))
    return _headers(web.FileResponse(page, headers={"Content-Type": "text/html; charset=utf-8"}))


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    path = CONSOLE_DIR / name
    if not _ASSET.match(name) or name.startswith(".") or not path.is_file():
        raise web.HTTPNotFound()
    kind = _TYPES.get(path.suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
    return _headers(web.FileResponse(path, headers={"Content-Type": kind}))


async def favicon(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/console/favicon.svg")


async def info(request: web.Request) -> web.Response:
    """Public facts the console (or any client) needs before it asks anything else."""
    services = request.app[SERVICES]
    root = services.tree.root_path
    actors = [path.split("/", 1)[1] for path in services.tree.paths() if path != root]
    return web.json_response({
        "name": "hive-supervisor", "protocol": 2, "actors": actors,
        "apiTokenRequired": bool(services.access.api_token),
        "consoleBuilt": (CONSOLE_DIR / "index.html").is_file(),
    })
