"""``GET /metrics``: Prometheus text format (docs/operations.md lists every name)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.health import GetHealth, HealthSnapshot
from supervisor import SupervisionError
from transport.services import SERVICES

__all__ = ["add_routes", "metrics"]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)


async def metrics(request: web.Request) -> web.Response:
    """The actors' figures come from the health actor's last snapshot (every actor's status,
    collected off the scrape's path); with the health actor down, the tree's own figures and
    the front end's are still served."""
    services = request.app[SERVICES]
    components = {}
    if services.has("health"):
        try:
            snap = await services.address("health").ask_async(GetHealth(False), timeout=2)
            if isinstance(snap, HealthSnapshot):
                components = dict(snap.body.get("components") or {})
        except SupervisionError:
            pass
    services.metrics.components = components
    body = generate_latest(services.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
