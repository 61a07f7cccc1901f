"""``GET /metrics``: Prometheus text format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from actors.messages import ActorStatus, StatusQuery
from supervisor import SupervisionError
from transport.services import SERVICES

__all__ = ["add_routes", "metrics"]


def add_routes(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics)


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    try:
        status = await services.address("gpu_layout").ask_async(StatusQuery(), timeout=1)
    except SupervisionError:
        status = None
    if isinstance(status, ActorStatus):
        services.metrics.step_ms.set(float(status.detail.get("step_ms", 0.0)))
        services.metrics.layout_nodes.set(float(status.detail.get("nodes", 0)))
    body = generate_latest(services.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
