"""The hive-mind actor: the agents' control plane (start, list, inspect and stop swarms).

Commands go through a :class:`SessionManager` over a local or Docker runner, each attempt
behind the project's circuit breaker, retried (3 times, 1 s apart by default) only when the
runner itself failed; a command that ran and said no is an answer, not a fault. What the actor
knows of sessions is a cache of the backend's own list, re-read at start: a restart of the actor
loses no swarm. New swarms' workers are announced to the MCP actor (``agent_spawn`` through the
pool, sticky per session), so the telemetry poll shows them on ``/wss``.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from types import MappingProxyType
from typing import Any, TypeVar

import structlog

from actors.circuit_breaker import BreakerOpen, CircuitBreaker
from actors.claude_flow import AGENT_TYPES, default_claude_flow
from actors.hive_mind.backend import DockerRunner, LocalRunner, Runner, SessionManager
from actors.hive_mind.errors import BackendError, BackendUnavailable, SpawnExpired
from actors.hive_mind.messages import GetSwarm, ListSwarms, Session, SpawnSwarm, StopSwarm
from actors.hive_mind.settings import HiveMindSettings
from actors.messages import ActorStatus, Health, StatusQuery
from actors.ticker import TickingActor
from supervisor import ChildContext, SupervisionError

__all__ = ["HiveMindActor"]


log = structlog.get_logger("actors.hive_mind")
T = TypeVar("T")


class HiveMindActor(TickingActor):
    supervision: ChildContext

    def __init__(self, settings: HiveMindSettings | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.settings = settings or HiveMindSettings()
        self._sleep = sleep
        self._manager: SessionManager | None = None
        self._problem: str | None = None
        self._breaker = CircuitBreaker(f"hive_mind:{self.settings.backend}", self.settings.breaker)
        self._sessions: tuple[Session, ...] = ()
        self._container_health: dict[str, Any] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        self._manager = self._build()
        if self._manager is not None:
            try:
                self._refresh()
            except (BackendUnavailable, BackendError) as exc:
                log.warning("hive_mind.backend_unavailable", error=str(exc))
        self.start_ticking(self.settings.health_interval_s)

    def _build(self) -> SessionManager | None:
        s = self.settings
        runner: Runner
        if s.backend == "docker":
            cli = list(s.cli) or ["claude-flow"]
            root = s.sessions_dir or "/tmp/hive-sessions"
            try:
                runner = DockerRunner(s.container, s.docker_url, s.command_timeout_s)
            except BackendError as exc:
                self._problem = str(exc)
                log.warning("hive_mind.unavailable", reason=self._problem)
                return None
        else:
            found = default_claude_flow()
            cli = list(s.cli) or (found or [])
            if not cli:
                self._problem = ("claude-flow is not installed: run `make agents` (needs node and "
                                 "npm), or set [actors.hive_mind] cli")
                log.warning("hive_mind.unavailable", reason=self._problem)
                return None
            if not s.sessions_dir:  # the daemon places it under [server] state_dir
                raise ValueError("[actors.hive_mind] sessions_dir is not set")
            root = s.sessions_dir
            runner = LocalRunner()
        return SessionManager(runner, cli, root, s.command_timeout_s, s.workers)

    # -- messages --------------------------------------------------------------------------

    def on_message(self, message: Any) -> Any:
        if isinstance(message, SpawnSwarm):
            if message.start_by is not None and time.monotonic() > message.start_by:
                raise SpawnExpired("busy: the spawn waited too long behind others and was not "
                                   "started; no swarm was created, retry later")
            session = self._backend(lambda m: m.spawn(message.request))
            self._announce(session)
            self._remember(session)
            return session
        if isinstance(message, ListSwarms):
            if message.refresh:
                self._refresh()
            return self._sessions
        if isinstance(message, GetSwarm):
            return self._backend(lambda m: m.status(message.session_id))
        if isinstance(message, StopSwarm):
            session = self._backend(lambda m: m.stop(message.session_id))
            self._remember(session)
            return session
        if isinstance(message, StatusQuery):
            return self._status()
        return super().on_message(message)

    def _backend(self, action: Callable[[SessionManager], T]) -> T:
        """One action through the breaker, retried while the runner itself fails."""
        if self._manager is None:
            raise BackendUnavailable(self._problem or "no backend")
        manager = self._manager
        attempts = self.settings.retries + 1
        for attempt in range(attempts):
            try:
                self._breaker.check()
            except BreakerOpen as exc:
                raise BackendUnavailable(str(exc)) from None
            try:
                result = action(manager)
            except BackendError as exc:
                self._breaker.failure(exc)
                log.warning("hive_mind.command_failed", attempt=attempt + 1, error=str(exc))
                if attempt + 1 == attempts:
                    raise BackendUnavailable(f"{exc} (after {attempts} attempts)") from None
                self._sleep(self.settings.retry_delay_s)
                continue
            self._breaker.success()
            return result
        raise AssertionError("unreachable")

    def _remember(self, session: Session) -> None:
        """Put a session's latest state in the table (the tick re-reads them all)."""
        others = tuple(s for s in self._sessions if s.id != session.id)
        self._sessions = (*others, session)

    def _refresh(self) -> None:
        self._sessions = tuple(self._backend(lambda m: m.list()))

    def _refresh_quietly(self) -> None:
        try:
            self._refresh()
        except BackendUnavailable as exc:
            log.warning("hive_mind.refresh_failed", error=str(exc))

    def on_tick(self) -> None:
        """The periodic container health check, and a fresh copy of the session list."""
        if self._manager is None:
            return
        try:
            self._container_health = self._backend(lambda m: m.runner.health())
        except BackendUnavailable as exc:
            self._container_health = {"healthy": False, "error": str(exc)}
        self._refresh_quietly()

    def _announce(self, session: Session) -> None:
        """Register the new workers with the data plane, so telemetry shows them."""
        if not self.settings.mcp:
            return
        from actors.mcp.messages import CallTool

        key = zlib.crc32(session.id.encode())
        try:
            mcp = self.supervision.sibling(self.settings.mcp)
            for worker in session.workers:
                kind = worker.get("type", "")
                mcp.tell(CallTool("agent_spawn",
                                  {"agentType": kind if kind in AGENT_TYPES else "coder"}, key))
        except (SupervisionError, KeyError) as exc:
            log.info("hive_mind.announce_skipped", session=session.id, reason=str(exc))

    def _status(self) -> ActorStatus:
        active = [s.to_json() for s in self._sessions if s.status in ("spawning", "active")]
        breaker = self._breaker.describe()
        health: Health
        if self._manager is None:
            health, docker, reason = "degraded", "unavailable", self._problem or ""
        elif breaker["state"] != "closed":
            health, docker = "degraded", "degraded"
            reason = f"breaker {breaker['state']}: {breaker['last_error']}"
        elif self._container_health and not self._container_health.get("healthy", True):
            health, docker, reason = "degraded", "degraded", "container unhealthy"
        else:
            health, docker, reason = "healthy", "healthy", ""
        detail = {
            "docker_health": docker,  # the control plane's health, whichever backend runs it
            "backend": self.settings.backend, "breaker": breaker,
            "active_sessions": active, "sessions": len(self._sessions),
            "container_health": self._container_health,
        }
        return ActorStatus("hive_mind", health, reason, MappingProxyType(detail))


