"""The project's one heartbeat: a thread that tells an actor ``Tick`` at an adjustable rate.

pykka actors have no timers. A ticker sends at most one tick ahead of the actor: when the
actor is busy (a slow step), ticks are skipped rather than queued, so the inbox never fills
with stale ticks and other messages are never stuck behind them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pykka

from actors.messages import Tick


class Ticker:
    def __init__(self, ref: pykka.ActorRef[Any], interval_s: float, name: str = "ticker") -> None:
        self._ref = ref
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._consumed = threading.Event()
        self._consumed.set()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def consumed(self) -> None:
        """Call from the actor's tick handler: the next tick may be sent."""
        self._consumed.set()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            next_at += self.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind: do not try to catch up with a burst
                next_at = time.monotonic()
                delay = 0
            if self._stop.wait(delay):
                return
            if not self._consumed.is_set():
                continue
            self._consumed.clear()
            try:
                self._ref.tell(Tick(time.monotonic()))
            except pykka.ActorDeadError:
                return
