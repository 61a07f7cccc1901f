"""Several Docker engines as one runner (``[actors.hive_mind] docker_urls``).

Each swarm lives on one engine, chosen when its folder is made: the least loaded engine that is
up (the fewest swarms, counting those being placed). Every later command and read for that swarm
goes to the same engine.

An engine that fails a call and then does not answer a ping is marked **down**, with the
reason:
- new swarms go to the others;
- a spawn caught by it is placed again elsewhere when the hive-mind retries it;
- its swarms are reported *lost* by the next scan, with the reason, and the hive-mind marks
  their records failed.

A down engine is tried again at a scan once ``retry_s`` have passed; it is up again when it
answers. Only when every engine is down does a call raise :class:`BackendError`, and the
hive-mind's breaker sees it.

Which engine holds a swarm is learnt from the scans and kept in memory. After a daemon restart
a swarm on an engine that is down is not known to be there: it shows as failed, "its session
folder is gone".
"""

from __future__ import annotations

import posixpath
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from actors.hive_mind.backend import DockerRunner, Result, Stamp
from actors.hive_mind.errors import BackendError
from actors.hive_mind.messages import SESSION_ID

__all__ = ["RETRY_S", "EnginePool"]

log = structlog.get_logger("actors.hive_mind.engines")

RETRY_S = 10.0  # a down engine is tried again at a scan this long after it failed


class EnginePool:
    """The :class:`~actors.hive_mind.backend.Runner` protocol over one
    :class:`~actors.hive_mind.backend.DockerRunner` per engine. Thread-safe: the worker pool's
    threads call it side by side; the placement table is behind a lock."""

    def __init__(self, container: str, urls: Sequence[str], timeout: float,
                 retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic) -> None:
        if not urls:
            raise ValueError("an engine pool needs at least one engine URL")
        self.container_name = container
        self.urls = tuple(urls)
        self.engines = [DockerRunner(container, url, timeout) for url in self.urls]
        self.retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._home: dict[str, int] = {}  # swarm id -> engine index
        self._down: dict[int, tuple[float, str]] = {}  # engine index -> (since, reason)

    # -- placement ---------------------------------------------------------------------------

    def _place(self, session_id: str) -> int:
        """The engine of ``session_id``: its home while that is up, else the least loaded up
        engine (which becomes its home)."""
        with self._lock:
            home = self._home.get(session_id)
            if home is not None and home not in self._down:
                return home
            up = [i for i in range(len(self.engines)) if i not in self._down]
            if not up:
                raise BackendError(f"no Docker engine is up: {self._reasons()}")
            load = {i: 0 for i in up}
            for sid, i in self._home.items():
                if i in load and sid != session_id:
                    load[i] += 1
            chosen = min(up, key=lambda i: (load[i], i))
            self._home[session_id] = chosen
        if home is not None:
            log.info("engines.placed_again", session=session_id, was=self.urls[home],
                     now=self.urls[chosen])
        return chosen

    def _reasons(self) -> str:
        return "; ".join(f"{self.urls[i]}: {reason}" for i, (_t, reason) in sorted(self._down.items()))

    def _failed(self, index: int, exc: BaseException) -> None:
        """A call failed: the engine is down if it does not answer a ping either (a command
        that timed out, a container busy, is the swarm's failure, not the engine's)."""
        if self.engines[index].answers():
            return
        with self._lock:
            first = index not in self._down
            self._down[index] = (self._clock(), str(exc)[:300])
        if first:
            log.warning("engines.down", engine=self.urls[index], error=str(exc)[:300])

    def _on(self, index: int, call: Callable[[DockerRunner], Any]) -> Any:
        try:
            return call(self.engines[index])
        except BackendError as exc:
            self._failed(index, exc)
            raise BackendError(f"engine {self.urls[index]}: {exc}") from None

    @staticmethod
    def _session_of(path: str) -> str | None:
        name = posixpath.basename(path.rstrip("/"))
        return name if SESSION_ID.match(name) else None

    # -- the runner protocol ---------------------------------------------------------------

    def run(self, argv: Sequence[str], cwd: str, timeout: float) -> Result:
        sid = self._session_of(cwd)
        index = self._place(sid) if sid is not None else self._any_up()
        result: Result = self._on(index, lambda e: e.run(argv, cwd, timeout))
        return result

    def make_dir(self, path: str) -> None:
        """A new swarm's folder: on the least loaded engine that is up; one that fails here is
        marked down and the next is tried."""
        sid = self._session_of(path)
        if sid is None:
            raise BackendError(f"not a session folder: {path}")
        while True:
            index = self._place(sid)
            try:
                self._on(index, lambda e: e.make_dir(path))
                return
            except BackendError:
                with self._lock:
                    if index not in self._down:
                        raise  # the engine answers: the command failed, not the engine
                # marked down: _place picks another, or raises when none is up

    def remove_dir(self, path: str) -> None:
        sid = self._session_of(path)
        with self._lock:
            home = self._home.get(sid) if sid is not None else None
        if home is None:  # never placed (what an interrupted attempt left, if anything)
            for index in self._up():
                try:
                    self._on(index, lambda e: e.remove_dir(path))
                except BackendError:
                    continue
            return
        self._on(home, lambda e: e.remove_dir(path))
        if sid is not None:
            with self._lock:
                self._home.pop(sid, None)

    def read_session(self, root: str, session_id: str) -> dict[str, str | None]:
        index = self._place(session_id)
        files: dict[str, str | None] = self._on(index, lambda e: e.read_session(root, session_id))
        return files

    def scan(self, root: str, stamps: Mapping[str, Stamp]) -> tuple[
            dict[str, dict[str, str | None]], dict[str, Stamp], dict[str, str]]:
        """Every engine that is up (or due to be tried again): the changed sessions and the
        new stamps of them all, and the swarms of the engines that are down (id -> why)."""
        changed: dict[str, dict[str, str | None]] = {}
        new: dict[str, Stamp] = {}
        now = self._clock()
        for index, engine in enumerate(self.engines):
            with self._lock:
                down = self._down.get(index)
            if down is not None and now - down[0] < self.retry_s:
                continue
            try:
                engine_changed, engine_new, _lost = engine.scan(root, stamps)
            except BackendError as exc:
                self._failed(index, exc)
                continue
            with self._lock:
                if self._down.pop(index, None) is not None:
                    log.info("engines.up", engine=self.urls[index])
                for sid in engine_new:
                    self._home[sid] = index
            changed.update(engine_changed)
            new.update(engine_new)
        with self._lock:
            if len(self._down) == len(self.engines):
                raise BackendError(f"no Docker engine is up: {self._reasons()}")
            lost = {sid: f"its Docker engine {self.urls[i]} is down: {self._down[i][1]}"
                    for sid, i in self._home.items() if i in self._down}
        return changed, new, lost

    def kill_all(self) -> int:
        return 0  # commands run in the containers

    def health(self) -> dict[str, Any]:
        engines: list[dict[str, Any]] = []
        for index, engine in enumerate(self.engines):
            with self._lock:
                marked = self._down.get(index)
            if marked is not None:
                engines.append({"url": self.urls[index], "up": False, "reason": marked[1]})
                continue
            try:
                one = engine.health()
            except BackendError as exc:
                self._failed(index, exc)
                engines.append({"url": self.urls[index], "up": False, "reason": str(exc)[:300]})
                continue
            with self._lock:
                swarms = sum(1 for i in self._home.values() if i == index)
            engines.append({"url": self.urls[index], "up": True, "swarms": swarms, **one})
        up = [e for e in engines if e["up"]]
        down = [e for e in engines if not e["up"]]
        info: dict[str, Any] = {"running": bool(up), "where": "docker",
                                "container": self.container_name, "engines": engines,
                                "healthy": not down and all(e.get("healthy") for e in up)}
        if down:
            info["reason"] = (f"{len(down)} of {len(engines)} Docker engines down: "
                              + "; ".join(f"{e['url']}: {e['reason']}" for e in down))
        return info

    def describe(self) -> str:
        return f"docker:{self.container_name} on {len(self.engines)} engines"

    def _up(self) -> list[int]:
        with self._lock:
            return [i for i in range(len(self.engines)) if i not in self._down]

    def _any_up(self) -> int:
        up = self._up()
        if not up:
            raise BackendError(f"no Docker engine is up: {self._reasons()}")
        return up[0]
