"""The project's one circuit breaker (and its one backoff, which lives in ``supervisor``).

A breaker sits in front of a peer that can fail (the MCP server, the Docker engine, an HTTP
speech service): after ``failure_threshold`` consecutive failures it opens and calls fail fast
with :class:`BreakerOpen` instead of waiting on a dead peer; after ``recovery_timeout_s`` it lets
trial calls through (half-open); ``success_threshold`` successes close it again, one failure
re-opens it. Thread-safe: calls finish on connection threads while the owning actor reads it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DOCKER_BREAKER",
    "MCP_BREAKER",
    "BreakerOpen",
    "BreakerSettings",
    "BreakerState",
    "CircuitBreaker",
]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(RuntimeError):
    """The peer failed too often; the call was not attempted."""

    def __init__(self, name: str, retry_in_s: float, last_error: str | None) -> None:
        detail = f" (last error: {last_error})" if last_error else ""
        super().__init__(f"{name} circuit breaker is open; retry in {retry_in_s:.1f} s{detail}")
        self.name = name
        self.retry_in_s = retry_in_s
        self.last_error = last_error


@dataclass(frozen=True)
class BreakerSettings:
    failure_threshold: int = 5
    recovery_timeout_s: float = 60.0
    success_threshold: int = 3

    def __post_init__(self) -> None:
        if self.failure_threshold < 1 or self.success_threshold < 1:
            raise ValueError("breaker thresholds must be >= 1")
        if self.recovery_timeout_s < 0:
            raise ValueError("recovery_timeout_s must be >= 0")


MCP_BREAKER = BreakerSettings(failure_threshold=10, recovery_timeout_s=30.0, success_threshold=2)
DOCKER_BREAKER = BreakerSettings(failure_threshold=5, recovery_timeout_s=60.0, success_threshold=3)


class CircuitBreaker:
    def __init__(
        self, name: str, settings: BreakerSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._successes = 0
        self._opened_at = 0.0
        self.last_error: str | None = None
        self.trips = 0

    @property
    def state(self) -> BreakerState:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def _maybe_half_open(self) -> None:
        if (self._state is BreakerState.OPEN
                and self._clock() - self._opened_at >= self.settings.recovery_timeout_s):
            self._state = BreakerState.HALF_OPEN
            self._successes = 0

    def check(self) -> None:
        """Raise :class:`BreakerOpen` if a call must not be attempted now."""
        with self._lock:
            self._maybe_half_open()
            if self._state is BreakerState.OPEN:
                retry = self.settings.recovery_timeout_s - (self._clock() - self._opened_at)
                raise BreakerOpen(self.name, max(0.0, retry), self.last_error)

    def success(self) -> None:
        with self._lock:
            self._failures = 0
            if self._state is BreakerState.HALF_OPEN:
                self._successes += 1
                if self._successes >= self.settings.success_threshold:
                    self._state = BreakerState.CLOSED

    def failure(self, error: BaseException | str) -> None:
        with self._lock:
            self.last_error = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
            self._maybe_half_open()
            if self._state is BreakerState.HALF_OPEN:
                self._trip()
                return
            self._failures += 1
            if self._state is BreakerState.CLOSED and self._failures >= self.settings.failure_threshold:
                self._trip()

    def _trip(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._failures = 0
        self.trips += 1

    def call(self, fn: Callable[[], Any], is_failure: Callable[[BaseException], bool] = lambda _: True) -> Any:
        """Run ``fn`` through the breaker; exceptions for which ``is_failure`` is false (a peer's
        well-formed "no") pass through without counting against the peer."""
        self.check()
        try:
            result = fn()
        except Exception as exc:
            if is_failure(exc):
                self.failure(exc)
            else:
                self.success()
            raise
        self.success()
        return result

    def describe(self) -> dict[str, Any]:
        with self._lock:
            self._maybe_half_open()
            return {"state": str(self._state), "trips": self.trips, "last_error": self.last_error}
