"""The vocabulary of supervision: strategies, restart types, states, exit reasons, and the
specifications of workers and supervisors."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from pykka import ThreadingActor

from _supervision.backoff import Backoff

__all__ = [
    "KILLED",
    "NORMAL",
    "ChildSpec",
    "ChildState",
    "ExitReason",
    "RestartType",
    "Strategy",
    "SupervisorSpec",
    "WorkerSpec",
]


class Strategy(enum.StrEnum):
    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class RestartType(enum.StrEnum):
    PERMANENT = "permanent"
    TRANSIENT = "transient"
    TEMPORARY = "temporary"


class ChildState(enum.StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ExitReason:
    """Why an incarnation ended. ``kind`` is ``normal``, ``crashed``, ``killed`` or ``shutdown``."""

    kind: str
    error_type: str | None = None
    message: str | None = None

    @property
    def abnormal(self) -> bool:
        """``transient`` children are restarted only after an abnormal exit, as in OTP."""
        return self.kind in ("crashed", "killed")

    @classmethod
    def from_exception(cls, exc: BaseException) -> ExitReason:
        return cls("crashed", type(exc).__name__, str(exc))


NORMAL = ExitReason("normal")
KILLED = ExitReason("killed", "Killed", "killed by request")


@dataclass(frozen=True)
class WorkerSpec:
    """A pykka ``ThreadingActor`` class and the arguments to construct it with."""

    name: str
    actor_class: type[ThreadingActor]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    restart: RestartType | str = RestartType.PERMANENT
    shutdown_timeout: float = 5.0
    start_timeout: float = 30.0
    # Optional limits of this child's own, on top of its supervisor's intensity: more than
    # ``max_restarts`` of this child inside ``within_seconds`` fails the supervisor too.
    max_restarts: int | None = None
    within_seconds: float = 5.0
    backoff: Backoff | None = None  # replaces the supervisor's backoff for this child

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "restart", RestartType(self.restart))


@dataclass(frozen=True)
class SupervisorSpec:
    """A supervisor: its children in start order and how it reacts to their failures."""

    name: str
    children: tuple[ChildSpec, ...] = ()
    strategy: Strategy | str = Strategy.ONE_FOR_ONE
    max_restarts: int = 3
    within_seconds: float = 5.0
    backoff: Backoff | None = None
    restart: RestartType | str = RestartType.PERMANENT
    shutdown_timeout: float = 60.0
    start_timeout: float = 120.0

    def __post_init__(self) -> None:
        _check_name(self.name)
        object.__setattr__(self, "strategy", Strategy(self.strategy))
        object.__setattr__(self, "restart", RestartType(self.restart))
        if self.max_restarts < 0 or self.within_seconds <= 0:
            raise ValueError("max_restarts must be >= 0 and within_seconds > 0")
        names = [c.name for c in self.children]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate child names under {self.name}: {names}")


ChildSpec: TypeAlias = WorkerSpec | SupervisorSpec


def _check_name(name: str) -> None:
    if not name or "/" in name:
        raise ValueError(f"a child name must be non-empty and contain no '/': {name!r}")
