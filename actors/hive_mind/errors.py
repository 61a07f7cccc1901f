"""What the hive-mind control plane raises, each mapped to an HTTP status by transport."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

__all__ = ["BackendError", "BackendUnavailable", "CommandFailed", "UnknownSession"]


class BackendError(RuntimeError):
    """The runner could not run a command (engine down, container missing, timeout)."""


class CommandFailed(RuntimeError):
    """The command ran and exited non-zero: an answer, not a broken backend."""

    def __init__(self, argv: Sequence[str], code: int, output: str) -> None:
        super().__init__(f"{posixpath.basename(argv[0])} ... exited {code}: {_said(output)}")
        self.code = code
        self.output = output


def _said(output: str) -> str:
    """What a failed command said, without a Node.js stack trace: its last 300 characters."""
    lines = [line for line in output.strip().splitlines()
             if not line.lstrip().startswith("at ") and line.strip()]
    return "\n".join(lines).strip()[-300:]


class UnknownSession(KeyError):
    def __str__(self) -> str:
        return f"no swarm session {self.args[0]!r}"


class BackendUnavailable(RuntimeError):
    """The backend cannot be reached (breaker open, engine down): HTTP 503."""


class QueueFull(BackendUnavailable):
    """The worker pool's queue is full: nothing was made; try again later (HTTP 503)."""


class IdempotencyConflict(ValueError):
    """An idempotency key used again with a different request (HTTP 422)."""


class SwarmBusy(RuntimeError):
    """A spawn or stop of this swarm is under way; ask again when it is done (HTTP 409)."""
