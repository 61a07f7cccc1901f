"""What the supervision tree raises to its callers."""

from __future__ import annotations

__all__ = [
    "AskTimeout",
    "ChildCrashed",
    "ChildUnavailable",
    "IntensityExceeded",
    "SupervisionError",
    "UnknownChild",
]


class SupervisionError(Exception):
    """Base of every error this module raises to callers."""


class UnknownChild(SupervisionError, KeyError):
    """No child lives at that path."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown child"


class ChildUnavailable(SupervisionError):
    """The child is not running (restarting, stopped or failed); the message was not delivered."""

    def __init__(self, path: str, state: str) -> None:
        super().__init__(f"{path} is {state}; message not delivered")
        self.path = path
        self.state = state


class AskTimeout(SupervisionError, TimeoutError):
    """The child did not answer in time (it may have died with the message in flight)."""


class ChildCrashed(SupervisionError):
    """The child died of a ``BaseException`` while handling this caller's ask."""


class IntensityExceeded(SupervisionError):
    """A supervisor saw more restarts than its intensity allows and gave up."""
