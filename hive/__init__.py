"""The composition root: configuration, logging, the supervision tree and the web app, wired."""

__all__: list[str] = []


