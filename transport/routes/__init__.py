"""The route modules: one per resource, each with ``add_routes(app)``; handlers translate
requests to actor messages and back, keeping no state beyond their connection."""

from __future__ import annotations

__all__: list[str] = []

