"""The hive-mind actor: the agents' control plane (start, list, inspect and stop swarms).

Its table of sessions is the read path: ``ListSwarms`` and ``GetSwarm`` answer from memory and
never start a process. The table is kept from the backend's own state (each folder's files,
see ``backend.py``) by a background scan every ``refresh_interval_s`` that re-reads only what
changed, merged with the daemon's own records (``records.py``). A scan that began before a job
reported never overwrites what the job said.

Spawns and stops are accepted at once (a record is written, the session is ``spawning`` or
``stopping``) and run on a bounded worker pool, off this actor's thread; each job writes its
progress to the record and reports to the actor by message. A full queue refuses a spawn with
:class:`QueueFull` and makes nothing. Stops and removals run in a lane of their own (found by the
second probe round: behind a full queue of spawns, 19 stops in 20 were refused with 503, exactly
when an operator needed them), so a stop is never refused, nor kept waiting, for spawns.

Finished swarms (completed, failed) are removed, record and folder, ``keep_finished_s`` after
they finished and beyond the newest ``keep_finished`` (each logged once, ``swarm.expired``): a
daemon that runs for months does not grow with its history. The pool outlives a *killed* incarnation (kept through
``ChildContext``): its jobs finish and report to the next one. An incarnation that stops (a
restart, a crash, the daemon's shutdown) cancels its jobs instead: their commands are killed
with their process groups, and it returns only once they have let go, leaving each record where
the job got; the next start resumes from there. A spawn that got its workers is recorded as
active; one that did not has its half-made folder removed and is spawned again (at most
:data:`MAX_ATTEMPTS` jobs, then ``failed``), never twice. Every change of a session's status is
published to subscribers (:class:`SessionUpdate`). A new swarm's workers are announced to the
MCP actor, which shows them at once, as members of that swarm.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import itertools
import json
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import pykka
import structlog

from actors.circuit_breaker import BreakerOpen, BreakerState, CircuitBreaker
from actors.claude_flow import AGENT_TYPES, default_claude_flow
from actors.hive_mind.backend import DockerRunner, LocalRunner, Runner, Scan, SessionManager
from actors.hive_mind.engines import EnginePool
from actors.hive_mind.errors import (
    BackendError,
    BackendUnavailable,
    CommandFailed,
    IdempotencyConflict,
    QueueFull,
    SwarmBusy,
    UnknownSession,
)
from actors.hive_mind.messages import (
    CHARGE,
    SESSION_ID,
    Accepted,
    GetSwarm,
    Listing,
    ListSwarms,
    RefreshSwarms,
    ReplaceTable,
    Session,
    SessionUpdate,
    SpawnSwarm,
    StandDown,
    StopSwarm,
    TableChange,
    TakeCharge,
    WatchTable,
)
from actors.hive_mind.records import RecordStore, SwarmRecord
from actors.hive_mind.settings import HiveMindSettings
from actors.messages import ActorStatus, Health, StatusQuery
from actors.subscribers import Subscribers
from actors.ticker import TickingActor
from supervisor import Address, ChildContext, SupervisionError

__all__ = ["FINISHED", "LISTED_ACTIVE", "MAX_ATTEMPTS", "REMOVALS_IN_FLIGHT", "STANDBY",
           "STOP_FAILED", "STOP_WAIT_S", "HiveMindActor"]

log = structlog.get_logger("actors.hive_mind")

MAX_ATTEMPTS = 3  # spawn jobs of one swarm begun and cut short by restarts before it is given up
LISTED_ACTIVE = 50  # active sessions listed in the health detail (the rest are counted)
STOP_WAIT_S = 3.0  # how long a stopping incarnation waits for its cancelled jobs to let go
FINISHED = frozenset({"completed", "failed"})  # over: retention removes them after a while
STOP_FAILED = "stop failed: "  # the error of a swarm whose stop did not finish (it may still run)
REMOVALS_IN_FLIGHT = 4  # retention's removals queued at once, per command worker
STOP_LANE = frozenset({"stop", "remove", "clean"})  # kinds of job that never wait for spawns
FORWARD_S = 7.0  # a spawn or stop forwarded to the leader (callers ask with 10 s)

STANDBY = ("this daemon's hive-mind is on standby: the cluster's leader runs every swarm (the "
           "HTTP API forwards to it; a newly elected leader takes the swarms up within a second)")


# -- what jobs tell the actor ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Progress:
    record: SwarmRecord


@dataclass(frozen=True, slots=True)
class _JobDone:
    record: SwarmRecord | None  # None: the swarm is gone (removed)
    session: Session | None  # the folder's state after the job (None: no folder)
    session_id: str = ""


@dataclass(frozen=True, slots=True)
class _Scanned:
    scan: Scan | None
    generation: int  # counted by the incarnation that began the scan
    error: str = ""
    reader: int = 0  # that incarnation: a scan an earlier one began reports here too


@dataclass(frozen=True, slots=True)
class _Checked:
    health: dict[str, Any]


class _Cancelled(Exception):
    """The job was told to let go (its actor stopped, or its swarm was stopped)."""


class _Jobs:
    """The worker pool and what it is doing. Kept across a killed incarnation, so that a job
    survives the kill and reports to the next one; cancelled when an incarnation stops."""

    def __init__(self, workers: int) -> None:
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="hive-mind")
        self.stop_lane = ThreadPoolExecutor(workers, thread_name_prefix="hive-mind-stop")
        self.scanner = ThreadPoolExecutor(1, thread_name_prefix="hive-mind-scan")
        self.cancelled = threading.Event()
        self.stop_requested: set[str] = set()  # stops asked for while a spawn was running
        self._lock = threading.Lock()
        # session -> (kind, the job's own number, its future): a job that ends removes its own
        # entry only, never the next job's for the same swarm
        self._in_flight: dict[str, tuple[str, int, Future[None]]] = {}
        self._numbers = itertools.count()
        self._running: set[int] = set()  # the numbers of jobs that have begun
        self.scanning = False
        self.scan_waiters: list[Future[None]] = []

    def submit(self, session_id: str, kind: str, job: Callable[[], None]) -> None:
        number = next(self._numbers)

        def run() -> None:
            with self._lock:
                self._running.add(number)
            try:
                job()
            except Exception as exc:  # noqa: BLE001 - a job records its own failures; last resort
                log.error("swarm.job_crashed", session=session_id, kind=kind, error=repr(exc))
            finally:
                self.release(session_id, number)

        with self._lock:  # entered before it can run (and so end)
            future = (self.stop_lane if kind in STOP_LANE else self.executor).submit(run)
            self._in_flight[session_id] = (kind, number, future)

    def release(self, session_id: str, number: int | None = None) -> None:
        """The job for ``session_id`` is over (``number``: only if it is still that job)."""
        with self._lock:
            entry = self._in_flight.get(session_id)
            if entry is not None and (number is None or entry[1] == number):
                del self._in_flight[session_id]
            if number is not None:
                self._running.discard(number)

    def cancel_queued(self, session_id: str) -> bool:
        """Drop the job for ``session_id`` if it has not begun; True when it was dropped."""
        with self._lock:
            entry = self._in_flight.get(session_id)
            if entry is None or not entry[2].cancel():
                return False
            del self._in_flight[session_id]
            return True

    def kind(self, session_id: str) -> str | None:
        with self._lock:
            entry = self._in_flight.get(session_id)
            return entry[0] if entry is not None else None

    def pending(self, kind: str | None = None) -> int:
        """Jobs queued or running (of ``kind`` alone, when given)."""
        with self._lock:
            if kind is None:
                return len(self._in_flight)
            return sum(1 for k, _, _ in self._in_flight.values() if k == kind)

    def check(self, session_id: str) -> None:
        """Raise :class:`_Cancelled` when the job for ``session_id`` must let go."""
        if self.cancelled.is_set() or session_id in self.stop_requested:
            raise _Cancelled(session_id)

    def cancel(self, runner: Runner) -> None:
        """Cancel every job: queued ones never run, running ones have their commands killed
        and return without writing; wait (a little) until they have."""
        self.cancelled.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.stop_lane.shutdown(wait=False, cancel_futures=True)
        killed = runner.kill_all()
        deadline = time.monotonic() + STOP_WAIT_S
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    break
            runner.kill_all()  # a command started between the kill and now
            time.sleep(0.01)
        self.scanner.shutdown(wait=False, cancel_futures=True)
        for waiter in self.scan_waiters:
            if not waiter.done():
                waiter.set_exception(BackendUnavailable("the hive-mind actor stopped"))
        if killed:
            log.info("hive_mind.commands_killed", count=killed)


class HiveMindActor(TickingActor):
    supervision: ChildContext

    def __init__(self, settings: HiveMindSettings | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__()
        self.settings = settings or HiveMindSettings()
        self._sleep = sleep
        self._manager: SessionManager | None = None
        self._records_store: RecordStore | None = None
        self._problem: str | None = None
        self._breaker = CircuitBreaker(f"hive_mind:{self.settings.backend}", self.settings.breaker)
        self._jobs: _Jobs | None = None
        self._folders: dict[str, Session] = {}
        self._records: dict[str, SwarmRecord] = {}
        self._stamps: dict[str, tuple[int, ...]] = {}
        self._view: dict[str, Session] = {}
        self._encoded: dict[str, bytes] = {}
        self._listing: Listing | None = None
        self._keys: dict[str, str] = {}
        self._removing: set[str] = set()
        self._generation = 0  # of scans begun
        self._applied_generation = 0  # of the newest scan applied
        self._touched: dict[str, int] = {}  # session -> the scan generation a job last wrote in
        self._scanned_once = False
        self._recovered = False
        self._publishing = False  # no session_update for the table a start rebuilds
        self._container_health: dict[str, Any] = {}
        self._last_scan: Scan | None = None
        self._scan_error = ""
        self._health_due = 0.0
        self._subscribers: Subscribers[SessionUpdate] = Subscribers("hive_mind", self.supervision)
        self._watchers: Subscribers[TableChange] = Subscribers("hive_mind", self.supervision,
                                                               name="table watchers")

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        if self.settings.standby and not self._in_charge():
            # a cluster's follower: the leader runs every swarm; requests here are answered
            # 503 with this reason (the front end forwards them to the leader first)
            self._problem = STANDBY
            log.info("hive_mind.standby")
            # a leader that stood down keeps serving its last table, as a copy
            self._replicate(ReplaceTable(self.supervision.kept((), name="table")))
            self.supervision.keep((), name="table")
            return
        self._take_charge()

    def _on_leader(self, message: SpawnSwarm | StopSwarm) -> Any:
        """On standby: a spawn or stop asked here (a voice command, an MCP tool) runs on the
        cluster's leader, through the same HTTP request a client would send it; the answer,
        or the leader's error, is this actor's."""
        from actors.cluster.forward import LeaderTimeout, Message, NoLeader, decode, encode
        from actors.cluster.messages import Forward

        if isinstance(message, SpawnSwarm):
            r = message.request
            body = {"task": r.task, "priority": r.priority, "strategy": r.strategy,
                    "max_agents": r.max_agents}
            headers = {"Content-Type": "application/json"}
            if message.idempotency_key:
                headers["Idempotency-Key"] = message.idempotency_key
            meta: dict[str, object] = {"method": "POST", "path": "/api/swarms", "headers": headers,
                                       "from": "hive_mind"}
            data = json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        else:
            if not SESSION_ID.match(message.session_id):
                raise UnknownSession(message.session_id)
            meta = {"method": "DELETE", "path": f"/api/swarms/{message.session_id}",
                    "headers": {}, "from": "hive_mind"}
            data = b""
        try:
            future = self.supervision.sibling(self.settings.leader).ask(
                Forward(encode(Message(meta, data)), FORWARD_S), timeout=1.0)
            answer = decode(future.result(timeout=FORWARD_S + 1.0))
        except (NoLeader, LeaderTimeout, SupervisionError, TimeoutError,
                concurrent.futures.TimeoutError) as exc:
            raise BackendUnavailable(f"the cluster's leader runs every swarm, and could not be "
                                     f"asked: {exc}") from None
        status = int(answer.meta.get("status", 502))  # type: ignore[call-overload]
        try:
            reply = json.loads(answer.body or b"{}")
        except ValueError:
            reply = {}
        if status in (200, 202):
            session = Session.from_json(reply)
            if isinstance(message, StopSwarm):
                return session
            replayed = dict(answer.meta.get("headers") or {}).get("Idempotent-Replayed") == "true"  # type: ignore[call-overload]
            return Accepted(session, replayed=replayed)
        error = str(reply.get("error", f"the leader answered {status}"))
        if status == 404:
            raise UnknownSession(message.session_id if isinstance(message, StopSwarm) else error)
        if status == 422:
            raise IdempotencyConflict(error)
        if status == 409:
            raise SwarmBusy(error)
        if status == 400:
            raise ValueError(error)
        raise BackendUnavailable(f"the cluster's leader: {error}")

    def _replicate(self, message: TableChange | ReplaceTable) -> None:
        """On standby: the leader's table, answered from memory as the leader's own is, with
        ``session_update`` for what changed. A row that is not a session is skipped."""
        changes: list[TableChange] = list(message.since) if isinstance(message, ReplaceTable) else [message]
        if isinstance(message, ReplaceTable):
            rows: dict[str, bytes] = {}
            for view in message.views:
                with contextlib.suppress(ValueError, TypeError):
                    rows[str(json.loads(view)["id"])] = view
            changes = [TableChange(sid, None) for sid in self._view if sid not in rows] + [
                TableChange(sid, view) for sid, view in rows.items()] + changes
        for change in changes:
            before = self._view.get(change.session_id)
            if change.view is None:
                self._view.pop(change.session_id, None)
                self._encoded.pop(change.session_id, None)
                self._listing = None
                continue
            try:
                after = Session.from_json(json.loads(change.view))
            except (ValueError, TypeError):
                log.warning("hive_mind.replica_row_skipped", session=change.session_id[:80])
                continue
            self._view[after.id] = after
            self._encoded[after.id] = change.view
            self._listing = None
            self._publishing = True
            self._updated(before, after)

    def _in_charge(self) -> bool:
        """In a cluster: whether the cluster actor (the one owner of the fact) has put the
        last leader's records in place for this daemon's leadership."""
        return bool(self.settings.leader and self.supervision.kept_by(
            self.settings.leader, 0, name=CHARGE))

    def _take_charge(self) -> None:
        s = self.settings
        self._view, self._encoded, self._listing = {}, {}, None  # a replica's rows go
        self._manager = self._build()
        if s.records_dir:
            self._records_store = RecordStore(s.records_dir)
            self._records = self._records_store.load_all()
        self._keys = {r.idempotency_key: r.id for r in self._records.values() if r.idempotency_key}
        kept: _Jobs | None = self.supervision.kept(name="jobs")
        self._jobs = kept if kept is not None and not kept.cancelled.is_set() else _Jobs(
            s.command_workers)
        self.supervision.keep(self._jobs, name="jobs")
        self._jobs.scanning = False  # a scan of the last incarnation is ignored when it reports
        if self._manager is not None:
            try:  # the first read before anything else: recovery needs to see the folders
                self._apply(self._manager.scan({}), self._generation)
            except BackendError as exc:  # the engine is down: read in the background, later
                self._scan_error = str(exc)[:300]
                log.warning("hive_mind.scan_failed", error=self._scan_error)
        self._recover()
        self._rebuild()
        self._publishing = True
        self.start_ticking(s.refresh_interval_s)

    def _build(self) -> SessionManager | None:
        s = self.settings
        runner: Runner
        if s.backend == "docker":
            cli = list(s.cli) or ["claude-flow"]
            root = s.sessions_dir or "/tmp/hive-sessions"
            try:
                urls = s.engines
                runner = (EnginePool(s.container, urls, s.command_timeout_s) if len(urls) > 1
                          else DockerRunner(s.container, urls[0], s.command_timeout_s))
            except BackendError as exc:
                self._problem = str(exc)
                log.warning("hive_mind.unavailable", reason=self._problem)
                return None
        else:
            cli = list(s.cli) or (default_claude_flow() or [])
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

    def on_stop(self) -> None:
        super().on_stop()
        # A restart, a crash or the daemon's shutdown: every job lets go (queued ones stay
        # "queued" in their records, running ones are left at their last stage) before the
        # next incarnation, which resumes them, can start.
        if self._jobs is not None and self._manager is not None:
            self._jobs.cancel(self._manager.runner)
        self.supervision.keep(None, name="jobs")

    # -- messages --------------------------------------------------------------------------

    def on_message(self, message: Any) -> Any:
        if isinstance(message, ListSwarms):
            return self._list()
        if isinstance(message, GetSwarm):
            session = self._view.get(message.session_id)
            if session is None:
                raise UnknownSession(message.session_id)
            return session
        if isinstance(message, SpawnSwarm):
            if self._problem == STANDBY and self.settings.leader:
                return self._on_leader(message)
            return self._accept_spawn(message)
        if isinstance(message, StopSwarm):
            if self._problem == STANDBY and self.settings.leader:
                return self._on_leader(message)
            return self._accept_stop(message.session_id)
        if isinstance(message, RefreshSwarms):
            waiter: Future[None] = Future()
            self._require_manager()
            assert self._jobs is not None
            self._jobs.scan_waiters.append(waiter)
            self._start_scan()
            return waiter
        if isinstance(message, _Progress):
            self._touched[message.record.id] = self._generation
            self._set_record(message.record)
            return None
        if isinstance(message, _JobDone):
            self._finished(message)
            return None
        if isinstance(message, _Scanned):
            self._scanned(message)
            return None
        if isinstance(message, _Checked):
            self._container_health = message.health
            return None
        if isinstance(message, StatusQuery):
            return self._status()
        if isinstance(message, WatchTable):
            self._watchers.subscribe(message.key, message.callback)
            return None
        if isinstance(message, (TableChange, ReplaceTable)):
            if self._problem != STANDBY:
                return False  # we run the swarms: our own table is the truth
            self._replicate(message)  # a follower's copy of the leader's table
            return True
        if isinstance(message, TakeCharge):
            if self._manager is None and self._problem == STANDBY and self._in_charge():
                self._problem = None
                log.info("hive_mind.in_charge")
                self._take_charge()
            return None
        if isinstance(message, StandDown):  # the cluster restarts us next: keep the table
            self.supervision.keep(tuple(self._encoded.values()), name="table")
            return None
        if self._subscribers.handle(message):
            return None
        return super().on_message(message)

    def _require_manager(self) -> SessionManager:
        if self._manager is None:
            raise BackendUnavailable(self._problem or "no backend")
        return self._manager

    # -- spawning and stopping -------------------------------------------------------------

    def _accept_spawn(self, message: SpawnSwarm) -> Accepted:
        self._require_manager()
        assert self._jobs is not None
        request = message.request
        digest = hashlib.sha256(repr((request.task, request.priority, request.strategy,
                                      request.max_agents)).encode()).hexdigest()
        key = message.idempotency_key
        if key and key in self._keys:
            earlier = self._records.get(self._keys[key])
            if earlier is not None and earlier.request_hash != digest:
                raise IdempotencyConflict(
                    "this Idempotency-Key was used for a different request; use a new key")
            session = self._view.get(self._keys[key])
            if session is not None:
                return Accepted(session, replayed=True)
        try:
            self._breaker.check()  # the backend failed too often: refuse now, make nothing
        except BreakerOpen as exc:
            raise BackendUnavailable(f"{exc}; nothing was made") from None
        spawns = self._jobs.pending("spawn")
        if spawns >= self.settings.max_queued:
            raise QueueFull(f"{spawns} spawns are already queued or running (max_queued "
                            f"{self.settings.max_queued}); nothing was made, try again later")
        record = SwarmRecord.accepted(str(uuid.uuid4()), request, key, digest)
        self._save_or_refuse(record)  # durable before it is acknowledged: a crash loses nothing
        if key:
            self._keys[key] = record.id
        self._set_record(record)
        self._submit("spawn", record)
        return Accepted(self._view[record.id])

    def _accept_stop(self, session_id: str) -> Session:
        """Stop it; a stop during its spawn cancels the spawn; a swarm that is over (or never
        came to be) is removed, folder and record."""
        self._require_manager()
        assert self._jobs is not None
        session = self._view.get(session_id)
        if session is None:
            raise UnknownSession(session_id)
        running = self._jobs.kind(session_id)
        record = self._records.get(session_id)
        if running == "spawn" and record is not None and self._jobs.cancel_queued(session_id):
            over = record.moved(status="completed", stage="",
                                error="stopped before its spawn began; nothing was made")
            self._resolve(over)  # at once: it waited for no spawn ahead of it
            self._rebuild(session_id)
            return self._view[session_id]
        if running == "spawn":
            self._jobs.stop_requested.add(session_id)  # the job lets go at its next stage
            return dataclasses.replace(session, status="stopping")
        if running == "stop":
            return session
        if running == "remove":
            return dataclasses.replace(session, status="deleted")
        # no queue limit here: the stop lane holds at most one job per swarm
        record = record or SwarmRecord(
            session_id, session.task, session.priority, status=session.status, stage="",
            created_at=session.created_at)
        if session.status in (*FINISHED, "unknown"):
            self._remove(record)
            return dataclasses.replace(session, status="deleted")
        stopping = record.moved(status="stopping", stage="", error="")
        self._save_or_refuse(stopping)
        self._set_record(stopping)
        self._submit("stop", stopping)
        return self._view[session_id]

    def _remove(self, record: SwarmRecord) -> None:
        self._removing.add(record.id)
        self._submit("remove", record)
        self._rebuild(record.id)

    def _expire(self) -> None:
        """Remove the finished swarms past ``keep_finished_s`` or beyond the newest
        ``keep_finished``, each logged once (a removal is in flight until it reports).

        Finished means our own record says so (:func:`_over`): never what the view derives
        from a folder (an active swarm whose folder cannot be read shows as failed, and must
        not lose its folder when the mount comes back), never a swarm whose stop failed, never
        a folder the daemon did not make. At most :data:`REMOVALS_IN_FLIGHT` per worker are
        queued at once, so that stops never wait behind a backlog of them."""
        assert self._jobs is not None
        finished = sorted(
            ((_epoch(r.updated_at), r) for r in self._records.values()
             if _over(r) and r.id not in self._removing and self._jobs.kind(r.id) is None),
            key=lambda pair: (pair[0], pair[1].id), reverse=True)
        keep, oldest = self.settings.keep_finished, time.time() - self.settings.keep_finished_s
        room = REMOVALS_IN_FLIGHT * self.settings.command_workers - self._jobs.pending("remove")
        for rank, (finished_at, record) in enumerate(finished):
            reason = "count" if rank >= keep else "age" if finished_at < oldest else ""
            if not reason:
                continue
            if room <= 0:
                return  # the rest at the next tick
            room -= 1
            log.info("swarm.expired", session=record.id, status=record.status, reason=reason,
                     finished_at=record.updated_at, keep_finished=keep,
                     keep_finished_s=self.settings.keep_finished_s)
            self._remove(record)

    def _save_or_refuse(self, record: SwarmRecord) -> None:
        try:
            self._save(record)
        except OSError as exc:
            raise BackendUnavailable(f"cannot write the swarm's record: {exc.strerror or exc}; "
                                     f"nothing was made") from None

    def _submit(self, kind: str, record: SwarmRecord) -> None:
        manager = self._require_manager()
        assert self._jobs is not None
        job = _Job(manager, self._records_store, record, self.settings, self._breaker,
                   self._sleep, self._me(), self._jobs)
        self._jobs.submit(record.id, kind, getattr(job, kind))

    def _me(self) -> Address:
        """This actor's stable address: a job reports to whichever incarnation is alive."""
        return self.supervision.address(self.supervision.path)

    def _finished(self, done: _JobDone) -> None:
        session_id = done.record.id if done.record is not None else done.session_id
        self._touched[session_id] = self._generation
        if done.session is not None:
            self._folders[session_id] = done.session
        else:
            self._folders.pop(session_id, None)
        if done.record is None or _over(done.record):
            self._retire(session_id)
        if done.record is None:  # removed
            self._records.pop(session_id, None)
            self._removing.discard(session_id)
            self._keys = {k: v for k, v in self._keys.items() if v != session_id}
            self._rebuild(session_id)
            return
        self._set_record(done.record)
        assert self._jobs is not None
        if done.record.status == "active" and done.session is not None:
            self._announce(done.session)
            if session_id in self._jobs.stop_requested:  # asked to stop while it spawned
                self._jobs.stop_requested.discard(session_id)
                if self._jobs.kind(session_id) == "spawn":  # its job is over, bar its last line
                    self._jobs.release(session_id)
                self._accept_stop(session_id)
        else:
            self._jobs.stop_requested.discard(session_id)

    def _recover(self) -> None:
        """Finish what the last run left in flight, once the folders have been read (a job
        still running, after the actor alone was killed, reports by itself)."""
        if self._manager is None or self._jobs is None or not self._scanned_once or self._recovered:
            return
        self._recovered = True
        for record in list(self._records.values()):
            if record.status not in ("spawning", "stopping") or self._jobs.kind(record.id):
                continue
            if record.status == "stopping":
                log.info("swarm.stop_resumed", session=record.id)
                self._submit("stop", record)
                continue
            folder = self._folders.get(record.id)
            if record.stage != "queued" and folder is not None and folder.workers:
                self._resolve(record.moved(status="active", stage="", error=""))
                log.info("swarm.spawn_recovered", session=record.id, outcome="active")
            elif record.attempts >= MAX_ATTEMPTS:
                given_up = record.moved(status="failed", stage="", error=(
                    f"the spawn was cut short by a restart {record.attempts} times; given up"))
                self._resolve(given_up)
                log.warning("swarm.spawn_given_up", session=record.id)
                if folder is not None:
                    self._submit("clean", given_up)  # reports the record it was given
            else:
                log.info("swarm.spawn_resumed", session=record.id, stage=record.stage,
                         attempts=record.attempts)
                self._submit("spawn", record)

    def _resolve(self, record: SwarmRecord) -> None:
        try:
            self._save(record)
        except OSError as exc:
            log.error("swarm.record_unwritable", session=record.id, error=str(exc))
        self._records[record.id] = record

    # -- reading -----------------------------------------------------------------------------

    def on_tick(self) -> None:
        """The background refresh (never on a request's path), retention, and the container
        health."""
        self._start_scan()
        if self._manager is not None and self._recovered:
            self._expire()
        now = time.monotonic()
        if self._manager is not None and now >= self._health_due and self._jobs is not None:
            self._health_due = now + self.settings.health_interval_s
            runner, me = self._manager.runner, self._me()
            self._jobs.scanner.submit(lambda: _tell(me, _Checked(_health(runner))))

    def _start_scan(self) -> None:
        if self._manager is None or self._jobs is None or self._jobs.scanning:
            return
        self._jobs.scanning = True
        self._generation += 1
        manager, stamps, me, generation = self._manager, dict(self._stamps), self._me(), self._generation
        breaker, reader = self._breaker, self.supervision.incarnation

        def scan() -> None:
            """A read is the engine's probe too: once the breaker (opened by spawns and stops
            that failed) half-opens, a read that works closes it, with no spawn needed to find
            out that the engine is back. A failed read is shown as such, not counted: the
            breaker counts what the user asked for."""
            try:
                result = manager.scan(stamps)
            except Exception as exc:  # noqa: BLE001 - the engine went away: say so, keep going
                _tell(me, _Scanned(None, generation, str(exc)[:300], reader))
                return
            if breaker.state is BreakerState.HALF_OPEN:  # the engine answers again
                breaker.success()
            _tell(me, _Scanned(result, generation, reader=reader))

        self._jobs.scanner.submit(scan)

    def _scanned(self, message: _Scanned) -> None:
        if message.reader != self.supervision.incarnation:  # begun by an earlier incarnation: its
            return  # generations are not ours, and this one's scan is still to come
        assert self._jobs is not None
        self._jobs.scanning = False
        waiters, self._jobs.scan_waiters = self._jobs.scan_waiters, []
        if message.scan is not None:
            self._apply(message.scan, message.generation)
            if self._scan_error:
                log.info("hive_mind.scan_recovered")
            self._scan_error = ""
            self._recover()
        else:
            if message.error != self._scan_error:  # once per change, not every refresh
                log.warning("hive_mind.scan_failed", error=message.error)
            self._scan_error = message.error
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _apply(self, scan: Scan, generation: int) -> None:
        """Take what a scan read, except for the sessions a job reported on after the scan
        began: what the job said is newer (and those are read again next time). A scan older
        than one already applied is dropped whole: everything it read was read again since."""
        if generation < self._applied_generation:
            return
        self._applied_generation = generation
        self._last_scan = scan
        self._scanned_once = True
        stale = {sid for sid, seen in self._touched.items() if seen >= generation}
        self._stamps = {sid: stamp for sid, stamp in scan.stamps.items() if sid not in stale}
        gone = set(self._folders) - scan.present - stale
        touched = set(gone)
        for session in scan.changed:
            if session.id in stale:
                continue
            self._folders[session.id] = session
            touched.add(session.id)
        for session_id in gone:
            self._folders.pop(session_id, None)
        self._touched = {sid: seen for sid, seen in self._touched.items() if seen >= generation}
        for session_id, reason in scan.lost.items():  # its engine is down: marked failed, why
            record = self._records.get(session_id)
            running = self._jobs is not None and self._jobs.kind(session_id)
            if (record is not None and record.status not in FINISHED and session_id not in stale
                    and not running):  # a job caught by it is placed again on its retry
                self._resolve(record.moved(status="failed", stage="", error=reason))
                log.warning("swarm.lost_with_engine", session=session_id, reason=reason)
                touched.add(session_id)
        for session_id in touched:
            self._rebuild(session_id)

    # -- the table ---------------------------------------------------------------------------

    def _save(self, record: SwarmRecord) -> None:
        if self._records_store is not None:
            self._records_store.save(record)

    def _set_record(self, record: SwarmRecord) -> None:
        self._records[record.id] = record
        self._rebuild(record.id)

    def _rebuild(self, session_id: str | None = None) -> None:
        """Recompute the view of one session (or all) and publish what changed."""
        ids = [session_id] if session_id else list({*self._folders, *self._records})
        for sid in ids:
            before = self._view.get(sid)
            after = None if sid in self._removing else _merge(
                self._folders.get(sid), self._records.get(sid), sid, self._scanned_once)
            if after == before:
                continue
            self._listing = None
            if after is None:
                self._view.pop(sid, None)
                self._encoded.pop(sid, None)
                self._watchers.publish(TableChange(sid, None))
                continue
            self._view[sid] = after
            self._encoded[sid] = json.dumps(after.to_json(), separators=(",", ":")).encode()
            self._watchers.publish(TableChange(sid, self._encoded[sid]))
            self._updated(before, after)

    def _updated(self, before: Session | None, after: Session) -> None:
        """``session_update`` for its subscribers when the status, stage or error moved."""
        if self._publishing and (before is None or (before.status, before.stage, before.error)
                                 != (after.status, after.stage, after.error)):
            self._subscribers.publish(SessionUpdate(after))

    def _list(self) -> Listing:
        if self._listing is None:
            ordered = tuple(sorted(self._view.values(), key=lambda s: (s.created_at, s.id)))
            self._listing = Listing(ordered, tuple(self._encoded[s.id] for s in ordered))
        return self._listing

    def _announce(self, session: Session) -> None:
        """Register the new workers with the data plane, as members of this swarm."""
        if not self.settings.mcp:
            return
        from actors.mcp.messages import AnnounceAgents

        agents = tuple((str(w.get("id", "")), _agent_type(w.get("type", "")))
                       for w in session.workers if w.get("id"))
        try:
            self.supervision.sibling(self.settings.mcp).tell(
                AnnounceAgents(session.id, agents, zlib.crc32(session.id.encode())))
        except (SupervisionError, KeyError) as exc:
            log.info("hive_mind.announce_skipped", session=session.id, reason=str(exc))

    def _retire(self, session_id: str) -> None:
        """A swarm is over (stopped, failed, removed): its agents leave the data plane."""
        if not self.settings.mcp:
            return
        from actors.mcp.messages import RetireAgents

        try:
            self.supervision.sibling(self.settings.mcp).tell(
                RetireAgents(session_id, zlib.crc32(session_id.encode())))
        except (SupervisionError, KeyError) as exc:
            log.info("hive_mind.retire_skipped", session=session_id, reason=str(exc))

    def _status(self) -> ActorStatus:
        sessions = self._list().sessions
        counts = Counter(s.status for s in sessions)
        active = [s.to_json() for s in sessions if s.status in ("spawning", "active")]
        breaker = self._breaker.describe()
        health: Health
        if self._problem == STANDBY:  # a follower's: healthy, with nothing of its own to run
            health, docker, reason = "healthy", "standby", ""
        elif self._manager is None:
            health, docker, reason = "degraded", "unavailable", self._problem or ""
        elif breaker["state"] != "closed":
            health, docker = "degraded", "degraded"
            reason = f"breaker {breaker['state']}: {breaker['last_error']}"
        elif self._scan_error:
            health, docker, reason = "degraded", "degraded", f"cannot read sessions: {self._scan_error}"
        elif self._container_health and not self._container_health.get("healthy", True):
            health, docker = "degraded", "degraded"
            reason = str(self._container_health.get("reason") or "container unhealthy")
        else:
            health, docker, reason = "healthy", "healthy", ""
        detail = {
            "docker_health": docker,  # the control plane's health, whichever backend runs it
            "backend": self.settings.backend, "breaker": breaker,
            "active_sessions": active[-LISTED_ACTIVE:], "sessions": len(sessions),
            "sessions_by_status": dict(counts),
            "jobs": self._jobs.pending() if self._jobs is not None else 0,
            "last_scan_ms": round(self._last_scan.took_s * 1000, 2) if self._last_scan else None,
            "container_health": self._container_health,
        }
        return ActorStatus("hive_mind", health, reason, MappingProxyType(detail))


# -- the jobs (on the worker pool's threads) -------------------------------------------------


def _tell(address: Address, message: Any) -> None:
    """Report to the actor; when it is down (restarting), the record on disk already says
    what happened and its next incarnation reads it."""
    with contextlib.suppress(SupervisionError, pykka.ActorDeadError):
        address.tell(message)


def _over(record: SwarmRecord) -> bool:
    """Finished for good by our own record: completed, or failed other than by a stop that did
    not finish (that swarm may still be running)."""
    return record.status in FINISHED and not record.error.startswith(STOP_FAILED)


def _epoch(stamp: str) -> float:
    """Seconds since the epoch of an ISO 8601 time, ours or claude-flow's (UTC when it names no
    zone); now for one that is not a time: a swarm is never removed for a time it lacks."""
    try:
        when = datetime.fromisoformat(stamp)
    except (ValueError, TypeError):
        return time.time()
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _agent_type(kind: Any) -> str:
    return kind if kind in AGENT_TYPES else "coder"


def _health(runner: Runner) -> dict[str, Any]:
    try:
        return runner.health()
    except BackendError as exc:
        return {"healthy": False, "error": str(exc)}


@dataclass
class _Job:
    """One swarm's spawn, stop, removal or clean-up, on a pool thread. It writes the record at
    each step and reports by message; a cancelled job stops writing at once."""

    manager: SessionManager
    store: RecordStore | None
    record: SwarmRecord
    settings: HiveMindSettings
    breaker: CircuitBreaker
    sleep: Callable[[float], None]
    me: Address
    jobs: _Jobs

    def _save(self, record: SwarmRecord) -> SwarmRecord:
        self.jobs.check(record.id)
        if self.store is not None:
            self.store.save(record)
        _tell(self.me, _Progress(record))
        return record

    def _finish(self, record: SwarmRecord, session: Session | None) -> None:
        if self.jobs.cancelled.is_set():
            return  # the next incarnation resumes from the last stage written
        try:
            if self.store is not None:
                self.store.save(record)
        except OSError as exc:
            log.error("swarm.record_unwritable", session=record.id, error=str(exc))
            record = record.moved(error=f"{record.error} (its record could not be written: "
                                        f"{exc.strerror or exc})".strip())
        _tell(self.me, _JobDone(record, session))

    def _attempts(self, what: str, action: Callable[[], Any]) -> tuple[Any, str]:
        """``action`` through the breaker, retried while the runner itself fails: (result,
        "") or (None, the reason)."""
        tries = self.settings.retries + 1
        error = ""
        for attempt in range(tries):
            self.jobs.check(self.record.id)
            try:
                self.breaker.check()
            except BreakerOpen as exc:
                return None, f"swarm backend unavailable: {exc}"
            try:
                result = action()
            except _Cancelled:
                raise
            except BackendError as exc:  # the runner failed (engine down, timeout): try again
                self.jobs.check(self.record.id)  # (or was it killed because we are stopping?)
                self.breaker.failure(exc)
                error = f"{exc} (attempt {attempt + 1} of {tries})"
                log.warning(f"swarm.{what}_attempt_failed", session=self.record.id, error=str(exc))
                if attempt + 1 < tries:
                    self.sleep(self.settings.retry_delay_s)
                continue
            except (CommandFailed, UnknownSession) as exc:  # it ran and said no: an answer
                self.breaker.success()
                return None, str(exc)
            self.breaker.success()
            return result, ""
        return None, error

    def spawn(self) -> None:
        record = self.record
        try:
            record = self._save(record.moved(stage="folder", attempts=record.attempts + 1,
                                             error=""))
            stages = _stages(self._save, record)

            def make() -> Session:
                self.manager.remove(record.id)  # what an interrupted attempt left, if anything
                return self.manager.create(record.id, record.request, stage=stages)

            session, error = self._attempts("spawn", make)
        except _Cancelled:
            if record.id in self.jobs.stop_requested and not self.jobs.cancelled.is_set():
                self._finish(record.moved(status="completed", stage="", error=(
                    "stopped before its spawn finished; nothing was left")), None)
            return
        except Exception as exc:  # noqa: BLE001 - whatever it is, the swarm gets the reason
            session, error = None, f"{type(exc).__name__}: {exc}"
        if session is not None:
            self._finish(record.moved(status="active", stage="", error=""), session)
            return
        log.warning("swarm.spawn_failed", session=record.id, error=error)
        self._finish(record.moved(status="failed", stage="", error=error or "the spawn failed"),
                     None)

    def stop(self) -> None:
        try:
            session, error = self._attempts("stop", lambda: self.manager.shutdown(self.record.id))
        except _Cancelled:
            return
        except Exception as exc:  # noqa: BLE001
            session, error = None, f"{type(exc).__name__}: {exc}"
        if not error:
            self._finish(self.record.moved(status="completed", stage="", error=""), session)
            return
        try:
            session = self.manager.read(self.record.id)
        except BackendError:
            session = None
        self._finish(self.record.moved(status=session.status if session else "failed", stage="",
                                       error=f"{STOP_FAILED}{error}"), session)

    def remove(self) -> None:
        """Forget a swarm that is over: its folder, then its record."""
        try:
            self.manager.remove(self.record.id)
            if self.store is not None:
                self.store.remove(self.record.id)
        except Exception as exc:  # noqa: BLE001 - it stays listed; a DELETE may try again
            log.warning("swarm.remove_failed", session=self.record.id, error=str(exc))
        _tell(self.me, _JobDone(None, None, self.record.id))

    def clean(self) -> None:
        """Remove what a given-up spawn left behind."""
        with contextlib.suppress(Exception):
            self.manager.remove(self.record.id)
        _tell(self.me, _JobDone(self.record, None))


def _stages(save: Callable[[SwarmRecord], SwarmRecord],
            base: SwarmRecord) -> Callable[[str], None]:
    """Record each stage a spawn reaches (the folder's was recorded before it began)."""
    def stage(name: str) -> None:
        if name != "folder":
            save(base.moved(stage=name))

    return stage


def _merge(folder: Session | None, record: SwarmRecord | None, session_id: str,
           scanned: bool) -> Session | None:
    """What the API shows: the record says where a spawn or stop is, the folder says what the
    hive-mind is."""
    if record is None:
        return folder
    if folder is None and record.status in ("active", "completed"):
        status, error = ("failed", "its session folder is gone") if scanned else (
            "unknown", "the backend has not been read yet")
        if record.status == "completed":
            status, error = "completed", record.error
        return Session(session_id, status, record.task, record.priority, error=error,
                       created_at=record.created_at, updated_at=record.updated_at)
    if record.status in ("spawning", "stopping", "failed") or folder is None:
        base = folder or Session(session_id, record.status)
        return dataclasses.replace(
            base, status=record.status, task=record.task or base.task,
            priority=record.priority, stage=record.stage if record.status == "spawning" else "",
            error=record.error, created_at=record.created_at or base.created_at,
            updated_at=record.updated_at)
    return dataclasses.replace(folder, task=folder.task or record.task, error=record.error,
                               created_at=record.created_at or folder.created_at)
