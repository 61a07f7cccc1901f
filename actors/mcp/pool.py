"""A pool of MCP connections behind one circuit breaker.

Each member is one connection: to one server over TCP, or to its own child process over stdio
(claude-flow handles calls one by one, so parallelism needs several processes; each keeps its
state in its own working folder, so the pool is sharded: a relay client sticks to one member,
and telemetry asks every member). Broken members are replaced with backoff; a member that has
served many calls gets maintenance (below).

The pool belongs to the MCP actor and is used from its thread only; calls complete on the
connections' reader threads, which touch only their futures, the (thread-safe) breaker and
the call statistics (under their own lock). Every ``maintain_every`` calls a member gets
maintenance from its connector (for claude-flow, compacting its per-call log); when that fails
the member is recycled: a fresh connection that carries its state over. Either way per-call
cost stays flat over weeks.
"""

from __future__ import annotations

import bisect
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from actors.circuit_breaker import CircuitBreaker
from actors.mcp.errors import CallTimeout, McpError, NoConnection, PeerGone, ToolFailed
from actors.mcp.jsonrpc import JsonRpcConnection, decode_tool_result, unwrap
from actors.mcp.settings import McpSettings
from supervisor import Backoff

__all__ = ["Connector", "McpPool", "Member", "PoolStats", "is_peer_failure"]


log = structlog.get_logger("actors.mcp.pool")


class Connector(Protocol):
    """Makes (and remakes) member ``index``'s connection, already initialized."""

    def connect(self, index: int, timeout: float) -> JsonRpcConnection: ...

    def recycle(self, index: int, old: JsonRpcConnection, timeout: float) -> JsonRpcConnection: ...

    def maintain(self, index: int, conn: JsonRpcConnection) -> None: ...

    def close(self) -> None: ...


@dataclass
class Member:
    index: int
    conn: JsonRpcConnection | None = None
    attempts: int = 0
    next_attempt_at: float = 0.0
    generation: int = 0
    last_error: str | None = None
    recycles: int = 0
    maintained_at: int = 0  # the connection's call count at its last maintenance
    maintenances: int = 0

    @property
    def live(self) -> bool:
        return self.conn is not None and self.conn.alive


# Upper bounds (seconds) of the answered calls' latency histogram (Prometheus' buckets).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class PoolStats:
    calls: int = 0
    failures: int = 0  # the peer failed (gone, silent): these count against its breaker
    errors: int = 0  # a well-formed "no" (a tool's or the protocol's error)
    # the newest 1,000 (what describe() reports); a list trimmed at 10,000 grew for half an hour
    latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=1000))
    in_bucket: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))
    seconds_sum: float = 0.0

    def answered(self, seconds: float) -> None:
        self.latency_ms.append(seconds * 1e3)
        self.in_bucket[bisect.bisect_left(LATENCY_BUCKETS_S, seconds)] += 1
        self.seconds_sum += seconds

    def histogram(self) -> dict[str, Any]:
        """Cumulative counts per upper bound, ``+Inf`` last, as Prometheus reads them."""
        bounds: list[float | str] = [*LATENCY_BUCKETS_S, "+Inf"]
        return {"buckets": [[le, n] for le, n in zip(bounds, itertools.accumulate(self.in_bucket),
                                                     strict=True)],
                "sum_s": round(self.seconds_sum, 6)}


def is_peer_failure(exc: BaseException) -> bool:
    """Broken pipes and silence count against the peer; a tool's or the protocol's own "no"
    (a well-formed answer) does not."""
    return isinstance(exc, PeerGone | CallTimeout | NoConnection | OSError)


class McpPool:
    def __init__(
        self, connector: Connector, size: int, breaker: CircuitBreaker, backoff: Backoff,
        handshake_timeout: float = McpSettings.handshake_timeout_s, maintain_every: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connector = connector
        self.members = [Member(i) for i in range(size)]
        self.breaker = breaker
        self.backoff = backoff
        self.handshake_timeout = handshake_timeout
        self.maintain_every = maintain_every
        self._clock = clock
        self.stats = PoolStats()
        self._stats_lock = threading.Lock()
        self._closed = False  # by its incarnation's end: connects that finish later close at once
        self._closing = threading.Lock()

    # -- membership ------------------------------------------------------------------------

    def ensure(self) -> int:
        """(Re)connect members whose backoff has passed; the number of live members."""
        now = self._clock()
        for member in self.members:
            if member.live:
                continue
            if member.conn is not None:  # it died: note why, then replace it after a pause
                member.last_error = member.conn.death or "closed"
                member.conn.close()
                member.conn = None
                self.breaker.failure(PeerGone(f"member {member.index}: {member.last_error}"))
                self._schedule(member, now)
                log.warning("mcp.member_lost", member=member.index, reason=member.last_error)
                continue
            if now < member.next_attempt_at:
                continue
            try:
                conn = self.connector.connect(member.index, self.handshake_timeout)
                with self._closing:
                    if not self._closed:
                        member.conn = conn
                if member.conn is not conn:  # closed while it connected (killed mid-start)
                    conn.close()
                    return 0
            except Exception as exc:  # noqa: BLE001 - any start-up failure: retry later
                member.last_error = f"{type(exc).__name__}: {exc}"
                self.breaker.failure(exc)
                self._schedule(member, now)
                log.warning("mcp.connect_failed", member=member.index, error=member.last_error,
                            retry_in_s=round(member.next_attempt_at - now, 2))
                continue
            member.generation += 1
            member.attempts = 0
            member.last_error = None
            self.breaker.success()
            log.info("mcp.member_connected", member=member.index, generation=member.generation,
                     channel=member.conn.channel.describe())
        return sum(m.live for m in self.members)

    def _schedule(self, member: Member, now: float) -> None:
        member.next_attempt_at = now + self.backoff.delay(member.attempts, random.random)
        member.attempts += 1

    def maintain_due(self) -> None:
        """Maintain members that served ``maintain_every`` calls since their last maintenance;
        recycle one whose maintenance fails (when it is idle)."""
        if self.maintain_every is None:
            return
        for member in self.members:
            conn = member.conn
            if conn is None or not conn.alive or conn.calls - member.maintained_at < self.maintain_every:
                continue
            try:
                self.connector.maintain(member.index, conn)
            except Exception as exc:  # noqa: BLE001 - any failure: fall back to a recycle
                if conn.in_flight:
                    continue  # try again when it is idle
                log.warning("mcp.maintenance_failed", member=member.index, error=repr(exc))
                self._recycle(member, conn)
                continue
            member.maintained_at = conn.calls
            member.maintenances += 1

    def _recycle(self, member: Member, conn: JsonRpcConnection) -> None:
        started = time.perf_counter()
        try:
            member.conn = self.connector.recycle(member.index, conn, self.handshake_timeout)
        except Exception as exc:  # noqa: BLE001 - keep the old one; try again next time
            log.warning("mcp.recycle_failed", member=member.index, error=repr(exc))
            return
        member.maintained_at = 0
        member.recycles += 1
        member.generation += 1
        log.info("mcp.member_recycled", member=member.index, calls=conn.calls,
                 took_ms=round((time.perf_counter() - started) * 1e3, 1))

    def live_members(self) -> list[Member]:
        return [m for m in self.members if m.live]

    def pick(self, key: int | None = None) -> Member:
        """Member ``key % size`` when it is live (sticky clients), else the least busy."""
        live = self.live_members()
        if not live:
            raise NoConnection("no MCP server is connected; reconnecting with backoff")
        if key is not None:
            preferred = self.members[key % len(self.members)]
            if preferred.live:
                return preferred
        return min(live, key=lambda m: m.conn.in_flight if m.conn else 0)

    # -- calls -----------------------------------------------------------------------------

    def request(self, method: str, params: Any, key: int | None = None,
                member: Member | None = None) -> tuple[JsonRpcConnection, int, Future[dict[str, Any]]]:
        """Start a raw request through the breaker; the future gives the raw response."""
        self.breaker.check()
        try:
            target = member or self.pick(key)
            assert target.conn is not None
            conn = target.conn
            request_id, future = conn.request_future(method, params)
        except (NoConnection, PeerGone) as exc:
            self.breaker.failure(exc)
            raise
        started = time.perf_counter()
        future.add_done_callback(lambda f: self._settle(f, started))
        return conn, request_id, future

    def _settle(self, future: Future[dict[str, Any]], started: float) -> None:
        """On a connection's reader thread: the breaker is thread-safe, the stats take a lock."""
        if future.cancelled():  # the caller gave up waiting: says nothing about the peer
            return
        exc = future.exception()
        if exc is None:
            self.breaker.success()
        elif is_peer_failure(exc):
            self.breaker.failure(exc)
        with self._stats_lock:
            self.stats.calls += 1
            if exc is None:
                self.stats.answered(time.perf_counter() - started)
            elif is_peer_failure(exc):
                self.stats.failures += 1
            else:
                self.stats.errors += 1

    def call_tool(self, name: str, arguments: Mapping[str, Any] | None = None,
                  key: int | None = None, member: Member | None = None) -> Future[Any]:
        """A tool call; the future resolves to the decoded result or a typed error."""
        return self.call_tool_cancellable(name, arguments, key, member)[0]

    def call_tool_cancellable(
        self, name: str, arguments: Mapping[str, Any] | None = None, key: int | None = None,
        member: Member | None = None,
    ) -> tuple[Future[Any], Callable[[str], None]]:
        """A tool call and a way to give up on it (the server is told; it counts as a timeout)."""
        conn, request_id, raw = self.request(
            "tools/call", {"name": name, "arguments": dict(arguments or {})}, key, member)
        decoded: Future[Any] = Future()

        def done(f: Future[dict[str, Any]]) -> None:
            try:
                decoded.set_result(decode_tool_result(name, unwrap(f.result())))
            except McpError as exc:
                decoded.set_exception(exc)
            except Exception as exc:  # noqa: BLE001 - a malformed answer must still settle
                decoded.set_exception(ToolFailed(name, f"malformed answer: {exc!r}"[:300]))

        raw.add_done_callback(done)
        return decoded, lambda reason: conn.cancel(request_id, reason)

    def server_info(self) -> dict[str, Any] | None:
        for member in self.live_members():
            if member.conn is not None and member.conn.server_info is not None:
                return member.conn.server_info
        return None

    def close(self) -> None:
        with self._closing:
            self._closed = True
            conns = [m.conn for m in self.members if m.conn is not None]
            for member in self.members:
                member.conn = None
        for conn in conns:
            conn.close()
        self.connector.close()

    def describe(self) -> dict[str, Any]:
        with self._stats_lock:
            latency = sorted(self.stats.latency_ms)
            calls, failures, errors = self.stats.calls, self.stats.failures, self.stats.errors
            histogram = self.stats.histogram()
        return {
            "members": [
                {"index": m.index, "live": m.live, "generation": m.generation,
                 "calls": m.conn.calls if m.conn else 0, "recycles": m.recycles,
                 "maintenances": m.maintenances,
                 "in_flight": m.conn.in_flight if m.conn else 0, "last_error": m.last_error}
                for m in self.members
            ],
            "breaker": self.breaker.describe(),
            "calls": calls,
            "failures": failures,
            "errors": errors,
            "median_ms": round(latency[len(latency) // 2], 3) if latency else None,
            "latency_histogram": histogram,
        }


