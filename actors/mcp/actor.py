"""The MCP actor: the agents' data plane.

It owns a pool of MCP connections (stdio server processes or TCP) behind the circuit breaker,
polls every member for ``agent_list`` and ``swarm_status`` on a tick, turns the answers into
typed :class:`Telemetry` and an agent graph for the layout, and starts calls for others (the
relay, the hive-mind, voice commands) without waiting for them: a call's answer arrives on a
``concurrent.futures.Future`` that the caller awaits, so one slow call never blocks the actor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pykka
import structlog

from actors.circuit_breaker import BreakerOpen, CircuitBreaker
from actors.claude_flow import default_claude_flow
from actors.mcp.errors import McpError, NoConnection, ToolFailed
from actors.mcp.messages import (
    AnnounceAgents,
    CallTool,
    GetAgents,
    GetServerInfo,
    RelayRequest,
    RelayTicket,
    RetireAgents,
)
from actors.mcp.pool import Connector, McpPool
from actors.mcp.servers import StdioConnector, TcpConnector
from actors.mcp.settings import McpSettings
from actors.mcp.telemetry import Agent, NodeIds, Telemetry, agent_graph, announced_id, parse_agents, parse_swarm
from actors.messages import ActorStatus, Health, SetGraph, StatusQuery
from actors.ticker import TickingActor
from supervisor import ChildContext, SupervisionError

__all__ = ["McpActor"]


log = structlog.get_logger("actors.mcp")

# How long an announced agent is shown while no poll has reported it yet.
ANNOUNCED_GRACE_S = 15.0


@dataclass(frozen=True, slots=True)
class _PollPart:
    round: int
    member: int
    agents: Any = None
    swarm: Any = None
    error: str | None = None


@dataclass(frozen=True)
class _Memory:
    ids: NodeIds
    telemetry: Telemetry | None


class McpActor(TickingActor):
    supervision: ChildContext

    def __init__(self, settings: McpSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or McpSettings()
        self._pool: McpPool | None = None
        self._problem: str | None = None
        self._round = 0
        self._parts: dict[int, _PollPart] = {}
        self._expected = 0
        self._poll_started = 0.0
        self._round_cancels: list[Callable[[str], None]] = []
        self._ids = NodeIds()
        self._telemetry: Telemetry | None = None
        self._last_graph: Any = None
        self._announced: dict[str, tuple[Agent, float]] = {}
        self._retired: dict[str, float] = {}  # agent -> until: a poll in flight may still list it

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        memory: _Memory | None = self.supervision.kept()
        if memory is not None:
            self._ids, self._telemetry = memory.ids, memory.telemetry
        connector = self._connector()
        if connector is not None:
            s = self.settings
            breaker = CircuitBreaker("mcp", s.breaker)
            every = s.maintain_every_calls if s.transport == "stdio" else None
            self._pool = McpPool(connector, s.pool_size, breaker, s.backoff,
                                 s.handshake_timeout_s, every)
            self.supervision.on_exit(self._pool.close)  # also after a kill (no on_stop then)
            live = self._pool.ensure()
            log.info("mcp.started", transport=s.transport, live=live, size=s.pool_size)
        self.start_ticking(self.settings.poll_interval_s)

    def _connector(self) -> Connector | None:
        s = self.settings
        if s.transport == "tcp":
            return TcpConnector(s.host, s.port)
        command: Sequence[str] = s.command
        if not command:
            base = default_claude_flow()
            if base is None:
                self._problem = ("claude-flow is not installed: run `make agents` (needs node and "
                                 "npm), or set [actors.mcp] command / transport")
                log.warning("mcp.unavailable", reason=self._problem)
                return None
            command = [*base, "mcp", "start"]
        if not s.state_dir:  # the daemon places it under [server] state_dir
            raise ValueError("[actors.mcp] state_dir is not set")
        return StdioConnector(command, Path(s.state_dir))

    def on_stop(self) -> None:
        super().on_stop()
        if self._pool is not None:
            self._pool.close()

    # -- messages --------------------------------------------------------------------------

    def on_message(self, message: Any) -> Any:
        if isinstance(message, _PollPart):
            self._collect(message)
            return None
        if isinstance(message, CallTool):
            # a failure to even start the call goes into the future: CallTool also comes as a
            # tell (fire and forget), where raising would crash this actor
            try:
                return self._pool_or_raise().call_tool(message.name, message.arguments, message.key)
            except (McpError, BreakerOpen) as exc:
                failed: Future[Any] = Future()
                failed.set_exception(exc)
                return failed
        if isinstance(message, RelayRequest):
            return self._relay(message)
        if isinstance(message, AnnounceAgents):
            self._announce(message)
            return None
        if isinstance(message, RetireAgents):
            self._retire(message)
            return None
        if isinstance(message, GetAgents):
            return self._telemetry
        if isinstance(message, GetServerInfo):
            return self._pool_or_raise().server_info()
        if isinstance(message, StatusQuery):
            return self._status()
        return super().on_message(message)

    def _pool_or_raise(self) -> McpPool:
        if self._pool is None:
            raise NoConnection(self._problem or "MCP is not configured")
        return self._pool

    def _relay(self, message: RelayRequest) -> RelayTicket:
        conn, request_id, future = self._pool_or_raise().request(
            message.method, message.params, message.key)
        return RelayTicket(future, lambda reason: conn.cancel(request_id, reason))

    # -- telemetry -------------------------------------------------------------------------

    def on_tick(self) -> None:
        pool = self._pool
        if pool is None:
            return
        pool.ensure()
        if self._expected:  # the previous poll is still out
            if time.monotonic() - self._poll_started < self.settings.call_timeout_s:
                return
            # its answers are late: tell the servers (a timeout counts against them), start over
            for cancel in self._round_cancels:
                cancel("telemetry poll timed out")
            self._expected = 0
        self._round_cancels = []
        pool.maintain_due()
        try:
            pool.breaker.check()
        except BreakerOpen:
            return
        members = pool.live_members()
        if not members:
            return
        self._round += 1
        self._parts = {}
        self._expected = len(members)
        self._poll_started = time.monotonic()
        me = self.actor_ref
        for member in members:
            self._poll_member(pool, member, self._round, me)

    def _poll_member(self, pool: McpPool, member: Any, round_: int, me: pykka.ActorRef[Any]) -> None:
        try:
            agents, cancel_agents = pool.call_tool_cancellable("agent_list", {}, member=member)
            swarm, cancel_swarm = pool.call_tool_cancellable("swarm_status", {}, member=member)
            self._round_cancels += [cancel_agents, cancel_swarm]
        except (McpError, BreakerOpen) as exc:
            me.tell(_PollPart(round_, member.index, error=str(exc)))
            return
        pending = {"agents": agents, "swarm": swarm}

        def done(_: Future[Any]) -> None:
            if not pending or not all(f.done() for f in pending.values()):
                return
            error = None
            results: dict[str, Any] = {}
            for name, future in pending.items():
                exc = future.exception()
                if exc is None:
                    results[name] = future.result()
                elif isinstance(exc, ToolFailed) and name == "swarm":
                    results[name] = None  # no active swarm on that server: not an error
                else:
                    error = f"{name}: {exc}"
            # a future keeps its callbacks after they ran: without this, future -> done ->
            # pending -> future is a cycle that holds each poll's answer until a full collection
            pending.clear()
            with contextlib.suppress(pykka.ActorDeadError):
                me.tell(_PollPart(round_, member.index, results.get("agents"),
                                  results.get("swarm"), error))

        agents.add_done_callback(done)
        swarm.add_done_callback(done)

    def _collect(self, part: _PollPart) -> None:
        if part.round != self._round or not self._expected:
            return
        self._parts[part.member] = part
        if len(self._parts) < self._expected:
            return
        self._expected = 0
        agents, swarms, errors = [], [], []
        previous = self._telemetry
        for index, p in sorted(self._parts.items()):
            if p.error:
                # keep what this server reported last: one failed poll must not make its
                # agents vanish from the layout (and lose their places)
                errors.append(f"member {index}: {p.error}")
                if previous is not None:
                    agents += [a for a in previous.agents if a.shard == index]
                    swarms += [s for s in previous.swarms if s.shard == index]
                continue
            swarm = parse_swarm(p.swarm, index)
            if swarm is not None:
                swarms.append(swarm)
            agents += parse_agents(p.agents, index, swarm.id if swarm else "")
        now = time.monotonic()
        self._retired = {aid: until for aid, until in self._retired.items() if until > now}
        agents = [a for a in agents if a.id not in self._retired]
        polled = {a.id for a in agents}
        for agent_id, (agent, until) in list(self._announced.items()):
            if agent_id in polled or now > until:
                del self._announced[agent_id]  # the server reports it now (or never will)
            else:
                agents.append(agent)  # its agent_spawn may still be on its way
        self._show(Telemetry(tuple(agents), tuple(swarms), time.time(), tuple(errors)))

    def _announce(self, message: AnnounceAgents) -> None:
        """Show a new swarm's workers now, and register them with the pooled server."""
        pool = self._pool
        if pool is None:
            return
        shard = (message.key or 0) % max(1, len(pool.members))
        until = time.monotonic() + ANNOUNCED_GRACE_S
        for worker_id, kind in message.agents:
            agent_id = announced_id(worker_id, message.swarm_id)
            self._announced[agent_id] = (Agent(
                agent_id, kind, "registered", 1.0, 0.0, 0.0, 0, 0, 0, message.swarm_id,
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), shard), until)
            try:
                future = pool.call_tool("agent_spawn", {"agentType": kind, "agentId": agent_id},
                                        message.key)
            except (McpError, BreakerOpen) as exc:
                log.warning("mcp.announce_failed", agent=agent_id, error=str(exc))
                continue
            future.add_done_callback(functools.partial(_log_failure, event="mcp.announce_failed",
                                                       agent_id=agent_id))
        previous = self._telemetry or Telemetry((), (), time.time(), ())
        known = {a.id for a in previous.agents}
        fresh = [a for a, _ in self._announced.values() if a.id not in known]
        self._show(dataclasses.replace(previous, agents=(*previous.agents, *fresh)))

    def _retire(self, message: RetireAgents) -> None:
        """Terminate a finished swarm's agents on its server and stop showing them now."""
        previous = self._telemetry or Telemetry((), (), time.time(), ())
        members = {a.id for a in previous.agents if a.swarm_id == message.swarm_id}
        members |= {aid for aid, (a, _) in self._announced.items() if a.swarm_id == message.swarm_id}
        if not members:
            return
        until = time.monotonic() + ANNOUNCED_GRACE_S
        for agent_id in members:
            self._announced.pop(agent_id, None)
            self._retired[agent_id] = until
        self._ids = self._ids.without(members)
        pool = self._pool
        for agent_id in sorted(members):
            if pool is None:
                break
            try:
                future = pool.call_tool("agent_terminate", {"agentId": agent_id}, message.key)
            except (McpError, BreakerOpen) as exc:
                log.warning("mcp.retire_failed", agent=agent_id, error=str(exc))
                continue
            future.add_done_callback(functools.partial(_log_failure, event="mcp.retire_failed",
                                                       agent_id=agent_id))
        self._show(dataclasses.replace(
            previous, agents=tuple(a for a in previous.agents if a.id not in members)))

    def _show(self, telemetry: Telemetry) -> None:
        """Keep ``telemetry`` and send its agent graph to the layout when it changed."""
        self._telemetry = telemetry
        self._ids = self._ids.assign(a.id for a in telemetry.agents)
        graph = agent_graph(telemetry, self._ids)
        self.supervision.keep(_Memory(self._ids, telemetry))
        if graph != self._last_graph:
            self._last_graph = graph
            try:
                self.supervision.sibling(self.settings.layout).tell(SetGraph(graph))
            except SupervisionError as exc:
                log.debug("mcp.layout_unavailable", error=str(exc))

    # -- status ----------------------------------------------------------------------------

    def _status(self) -> ActorStatus:
        if self._pool is None:
            return ActorStatus("mcp", "degraded", self._problem or "not configured",
                               MappingProxyType({"mcp_health": "disconnected"}))
        info = self._pool.describe()
        health: Health
        live = sum(m["live"] for m in info["members"])
        breaker = info["breaker"]["state"]
        if live == len(info["members"]) and breaker == "closed":
            health, mcp_health, reason = "healthy", "connected", ""
        elif live:
            health, mcp_health = "degraded", "reconnecting"
            reason = f"{live}/{len(info['members'])} servers connected, breaker {breaker}"
        else:
            health, mcp_health = "degraded", "disconnected"
            errors = [m["last_error"] for m in info["members"] if m["last_error"]]
            reason = f"no server connected (breaker {breaker}): {errors[0] if errors else ''}"
        detail = {
            "mcp_health": mcp_health, "transport": self.settings.transport,
            "agents": len(self._telemetry.agents) if self._telemetry else 0, **info,
        }
        return ActorStatus("mcp", health, reason, MappingProxyType(detail))


def _log_failure(future: Future[Any], event: str, agent_id: str) -> None:
    """An agent_spawn or agent_terminate the server refused: say why (an announced agent is
    shown for a while, then goes; a retired one is shown no more either way)."""
    exc = future.exception()
    if exc is not None:
        log.warning(event, agent=agent_id, error=str(exc)[:300])
