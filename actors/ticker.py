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
from supervisor import context_of

__all__ = ["Ticker", "TickingActor"]


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
        """Stop ticking; from another thread, also wait (briefly) for the ticker to end."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(1.0)

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


class TickingActor(pykka.ThreadingActor):
    """A pykka actor with a heartbeat: :meth:`on_tick` runs every ``tick_interval_s`` once
    :meth:`start_ticking` was called (in ``on_start``). Subclasses handle their other messages in
    :meth:`on_message`. The ticker stops with the actor, however it ends: ``on_failure`` runs
    ``on_stop`` too, so a subclass's cleanup in ``on_stop`` (calling ``super().on_stop()``) also
    runs after a crash; after a kill (no callbacks), the supervisor's closers stop it."""

    _ticker: Ticker | None = None

    def start_ticking(self, interval_s: float) -> None:
        self._ticker = Ticker(self.actor_ref, interval_s, f"{type(self).__name__}-ticker").start()
        context = context_of(self)
        if context is not None:  # supervised: the ticker stops after a kill too
            context.on_exit(self._ticker.stop)

    @property
    def tick_interval_s(self) -> float:
        return self._ticker.interval_s if self._ticker is not None else 0.0

    @tick_interval_s.setter
    def tick_interval_s(self, seconds: float) -> None:
        if self._ticker is not None:
            self._ticker.interval_s = seconds

    def on_tick(self) -> None:
        """Periodic work; runs on the actor's thread like any message."""

    def on_message(self, message: Any) -> Any:
        return super().on_receive(message)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Tick):
            if self._ticker is not None:
                self._ticker.consumed()
            self.on_tick()
            return None
        return self.on_message(message)

    def on_stop(self) -> None:
        if self._ticker is not None:
            self._ticker.stop()

    def on_failure(self, *_exc: Any) -> None:
        self.on_stop()
