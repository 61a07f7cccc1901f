"""Backoff: the project's one implementation (actors import it from ``supervisor``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: ``min_s * multiplier**attempt``, capped at ``max_s``.

    ``jitter`` is a fraction: 0.2 spreads each delay over +-20 % so that peers restarted together
    do not retry in lock-step. ``reset_after_s`` is the quiet period after which the attempt
    counter starts again from zero (a child that stayed up that long is healthy again).
    """

    min_s: float = 1.0
    max_s: float = 60.0
    multiplier: float = 2.0
    jitter: float = 0.0
    reset_after_s: float = 60.0

    def __post_init__(self) -> None:
        if not (0 <= self.min_s <= self.max_s):
            raise ValueError(f"backoff needs 0 <= min_s <= max_s, got {self.min_s}, {self.max_s}")
        if self.multiplier < 1:
            raise ValueError(f"backoff multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"backoff jitter must be within [0, 1], got {self.jitter}")

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (0 for the first)."""
        base = min(self.max_s, self.min_s * self.multiplier ** min(attempt, 1000))
        if self.jitter:
            base *= 1 + self.jitter * (2 * rng() - 1)
        return max(0.0, min(base, self.max_s))
