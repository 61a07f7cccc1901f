"""``GET /livez`` and ``GET /readyz``: probes for what runs the daemon (Kubernetes, a load
balancer), apart from ``/api/health``.

``/api/health`` reports the peers too, and ``critical`` there means every external peer is
down: restarting this process cannot fix a peer, so a liveness probe must not look at it.
``/livez`` answers from the event loop (a loop that stalls does not answer at all) and is 503
only once the root supervisor has given up; ``/readyz`` is 200 while the tree runs, the layout
runs (the frames every client watches) and the daemon is not shutting down.
"""

from __future__ import annotations

from aiohttp import web

from transport.services import SERVICES

__all__ = ["add_routes", "livez", "readyz"]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)


async def livez(request: web.Request) -> web.Response:
    failure = request.app[SERVICES].tree.failure
    if failure is not None:
        return web.json_response({"status": "failed", "reason": failure.message}, status=503)
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    reasons: list[str] = []
    if services.stopping:
        reasons.append("shutting down")
    root = services.tree.describe()
    if root["state"] != "running":
        reasons.append(f"the supervision tree is {root['state']}")
    layout = next((c for c in root["children"] if c["name"] == "gpu_layout"), None)
    if layout is not None and layout["state"] != "running":
        reasons.append(f"the layout is {layout['state']}")
    if reasons:
        return web.json_response({"status": "not ready", "reasons": reasons}, status=503)
    return web.json_response({"status": "ready"})
