"""Time: one clock for restart windows, uptime and backoff timers, injectable for tests."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Cancellable", "Clock", "ManualClock", "SystemClock"]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable: ...


class SystemClock:
    """Monotonic time; timers on short-lived daemon threads (only backoff uses them)."""

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        timer = threading.Timer(delay, callback)
        timer.daemon = True
        timer.start()
        return timer


class _ManualTimer:
    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to: deterministic tests of windows and backoff."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self._timers: list[tuple[float, int, _ManualTimer, Callable[[], None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Cancellable:
        handle = _ManualTimer()
        with self._lock:
            heapq.heappush(self._timers, (self._now + delay, next(self._seq), handle, callback))
        return handle

    def pending(self) -> list[float]:
        """Delays (from now) of the timers not yet fired or cancelled."""
        with self._lock:
            return sorted(t - self._now for t, _, h, _ in self._timers if not h.cancelled)

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order in the caller's thread."""
        target = self._now + seconds
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > target:
                    break
                when, _, handle, callback = heapq.heappop(self._timers)
                self._now = max(self._now, when)
            if not handle.cancelled:
                callback()
        self._now = target
