"""A slot that holds only the newest value for an actor, so that a busy actor's inbox never
fills with frames it will throw away (the hub's per-client slot, for one actor).

``offer`` from any thread keeps the value and says whether the actor must be told (it is
not waiting for a value already); the actor ``take``s the newest when the message comes. A
message lost with a crashed incarnation would leave the slot "waiting" for ever: a value
offered more than ``stale_s`` after the last notice is told again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Newest", "Waiting"]

T = TypeVar("T")


class Newest(Generic[T]):
    def __init__(self, stale_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._value: T | None = None
        self._told_at: float | None = None  # when the actor was last told (None: not waiting)
        self._stale_s = stale_s
        self._clock = clock

    def offer(self, value: T) -> bool:
        """Keep ``value`` (replacing one not taken yet); True when the actor must be told."""
        with self._lock:
            self._value = value
            now = self._clock()
            if self._told_at is not None and now - self._told_at < self._stale_s:
                return False
            self._told_at = now
            return True

    def untold(self) -> None:
        """The notice could not be delivered: the next offer tells again."""
        with self._lock:
            self._told_at = None

    def take(self) -> T | None:
        """The newest value (None if it was taken already); the next offer tells again."""
        with self._lock:
            value, self._value, self._told_at = self._value, None, None
            return value


@dataclass(frozen=True, slots=True)
class Waiting:
    """The message for the actor: the newest value of a stream is in ``slot``, take it."""

    slot: Newest[Any]
