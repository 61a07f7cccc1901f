"""The daemon's actors, one module each, and the messages they exchange (frozen dataclasses)."""

__all__: list[str] = []


