"""The hive-mind actor: the agents' control plane (start, list, inspect and stop swarms).

Its table of sessions is the read path: ``ListSwarms`` and ``GetSwarm`` answer from memory and
never start a process. The table is kept from the backend's own state (each folder's files,
see ``backend.py``) by a background scan every ``refresh_interval_s`` that re-reads only what
changed, merged with the daemon's own records (``records.py``).

Spawns and stops are accepted at once (a record is written, the session is ``spawning`` or
``stopping``) and run on a bounded worker pool, off this actor's thread; each job writes its
progress to the record and reports to the actor by message. A full queue refuses with
:class:`QueueFull` and makes nothing. The pool and its in-flight jobs outlive the actor's
incarnations (kept through ``ChildContext``): a job running when the actor is killed finishes
and reports to the next incarnation. A spawn caught by a daemon crash is finished at the next
start: one that got its workers is recorded as active, one that did not has its half-made
folder removed and is spawned again (at most :data:`MAX_ATTEMPTS` times, then ``failed``),
never twice. Every change of a session's status is published to subscribers
(:class:`SessionUpdate`). A new swarm's workers are announced to the MCP actor, which shows them
at once, as members of that swarm.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import pykka
import structlog

from actors.circuit_breaker import BreakerOpen, CircuitBreaker
from actors.claude_flow import AGENT_TYPES, default_claude_flow
from actors.hive_mind.backend import DockerRunner, LocalRunner, Runner, Scan, SessionManager
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
    Accepted,
    GetSwarm,
    Listing,
    ListSwarms,
    RefreshSwarms,
    Session,
    SessionUpdate,
    SpawnSwarm,
    StopSwarm,
)
from actors.hive_mind.records import RecordStore, SwarmRecord
from actors.hive_mind.settings import HiveMindSettings
from actors.messages import ActorStatus, Health, StatusQuery
from actors.subscribers import Subscribers
from actors.ticker import TickingActor
from supervisor import Address, ChildContext, SupervisionError

__all__ = ["MAX_ATTEMPTS", "HiveMindActor"]

log = structlog.get_logger("actors.hive_mind")

MAX_ATTEMPTS = 3  # spawns of one swarm begun and cut short by restarts before it is given up
LISTED_ACTIVE = 50  # active sessions listed in the health detail (the rest are counted)


# -- what jobs tell the actor ------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class _Progress:
    record: SwarmRecord


@dataclass(frozen=True, slots=True)
class _JobDone:
    record: SwarmRecord
    session: Session | None  # the folder's state after the job (None: no folder)


@dataclass(frozen=True, slots=True)
class _Scanned:
    scan: Scan | None
    error: str = ""


@dataclass(frozen=True, slots=True)
class _Checked:
    health: dict[str, Any]


class _Jobs:
    """The worker pool and what it is doing. Kept across incarnations, so that a job survives
    the actor being killed and reports to the next one."""

    def __init__(self, workers: int) -> None:
        self.executor = ThreadPoolExecutor(workers, thread_name_prefix="hive-mind")
        self.scanner = ThreadPoolExecutor(1, thread_name_prefix="hive-mind-scan")
        self._lock = threading.Lock()
        self._in_flight: dict[str, str] = {}
        self.scanning = False
        self.scan_waiters: list[Future[None]] = []

    def submit(self, session_id: str, kind: str, job: Callable[[], None]) -> None:
        with self._lock:
            self._in_flight[session_id] = kind

        def run() -> None:
            try:
                job()
            finally:
                with self._lock:
                    self._in_flight.pop(session_id, None)

        self.executor.submit(run)

    def busy(self, session_id: str) -> bool:
        with self._lock:
            return session_id in self._in_flight

    def pending(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.scanner.shutdown(wait=False, cancel_futures=True)
        for waiter in self.scan_waiters:
            if not waiter.done():
                waiter.set_exception(BackendUnavailable("the hive-mind actor stopped"))


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
        self._listing: Listing | None = None
        self._encoded: dict[str, bytes] = {}
        self._keys: dict[str, str] = {}
        self._container_health: dict[str, Any] = {}
        self._last_scan: Scan | None = None
        self._scan_error = ""
        self._health_due = 0.0
        self._subscribers: Subscribers[SessionUpdate] = Subscribers(
            "hive_mind", getattr(self, "supervision", None))

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        s = self.settings
        self._manager = self._build()
        if s.records_dir:
            self._records_store = RecordStore(s.records_dir)
            self._records = self._records_store.load_all()
        self._keys = {r.idempotency_key: r.id for r in self._records.values() if r.idempotency_key}
        kept: _Jobs | None = self.supervision.kept(name="jobs")
        self._jobs = kept or _Jobs(s.command_workers)
        self.supervision.keep(self._jobs, name="jobs")
        self._jobs.scanning = False  # a scan of the last incarnation reports nowhere now
        if self._manager is not None and s.backend == "local":
            self._apply(self._manager.scan({}))  # a stat per file: milliseconds for 1,000
        else:
            self._start_scan()
        self._recover()
        self._rebuild()
        self.start_ticking(s.refresh_interval_s)

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
        # A graceful stop: queued jobs stay "queued" in their records (the next start runs
        # them); running CLI commands are killed with their process groups, and their swarms
        # are finished or spawned again by the next start.
        if self._jobs is not None:
            self._jobs.shutdown()
            self.supervision.keep(None, name="jobs")
        if self._manager is not None:
            killed = self._manager.runner.kill_all()
            if killed:
                log.info("hive_mind.commands_killed", count=killed)

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
            return self._accept_spawn(message)
        if isinstance(message, StopSwarm):
            return self._accept_stop(message.session_id)
        if isinstance(message, RefreshSwarms):
            waiter: Future[None] = Future()
            self._require_manager()
            assert self._jobs is not None
            self._jobs.scan_waiters.append(waiter)
            self._start_scan()
            return waiter
        if isinstance(message, _Progress):
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
        if self._jobs.pending() >= self.settings.max_queued:
            raise QueueFull(f"{self._jobs.pending()} spawns and stops are already queued or "
                            f"running (max_queued {self.settings.max_queued}); nothing was "
                            f"made, try again later")
        record = SwarmRecord.accepted(str(uuid.uuid4()), request, key, digest)
        self._save(record)  # durable before it is acknowledged: a crash now loses nothing
        if key:
            self._keys[key] = record.id
        self._set_record(record)
        self._submit_spawn(record)
        return Accepted(self._view[record.id])

    def _accept_stop(self, session_id: str) -> Session:
        manager = self._require_manager()
        assert self._jobs is not None
        session = self._view.get(session_id)
        if session is None:
            raise UnknownSession(session_id)
        record = self._records.get(session_id)
        if session_id not in self._folders and record is not None and not self._jobs.busy(
                session_id):
            # nothing was ever made (a failed spawn): forget it
            if self._records_store is not None:
                self._records_store.remove(session_id)
            self._records.pop(session_id, None)
            self._keys = {k: v for k, v in self._keys.items() if v != session_id}
            self._rebuild(session_id)
            return dataclasses.replace(session, status="completed", stage="")
        if self._jobs.busy(session_id):
            raise SwarmBusy(f"swarm {session_id} is {session.status}"
                            f"{' (' + session.stage + ')' if session.stage else ''}; "
                            f"stop it once that is done")
        if self._jobs.pending() >= self.settings.max_queued:
            raise QueueFull("the worker pool's queue is full; try again later")
        base = record or SwarmRecord(session_id, session.task, session.priority,
                                     status=session.status, stage="",
                                     created_at=session.created_at)
        stopping = base.moved(status="stopping", stage="", error="")
        self._save(stopping)
        self._set_record(stopping)
        self._submit_stop(stopping, manager)
        return self._view[session_id]

    def _submit_spawn(self, record: SwarmRecord) -> None:
        manager = self._require_manager()
        assert self._jobs is not None
        me = self._me()
        store, settings, breaker, sleep = self._records_store, self.settings, self._breaker, self._sleep
        self._jobs.submit(record.id, "spawn",
                          lambda: _spawn_job(manager, store, record, settings, breaker, sleep, me))

    def _submit_stop(self, record: SwarmRecord, manager: SessionManager) -> None:
        assert self._jobs is not None
        me = self._me()
        store, settings, breaker, sleep = self._records_store, self.settings, self._breaker, self._sleep
        self._jobs.submit(record.id, "stop",
                          lambda: _stop_job(manager, store, record, settings, breaker, sleep, me))

    def _me(self) -> Address:
        """This actor's stable address: a job reports to whichever incarnation is alive."""
        return self.supervision.address(self.supervision.path)

    def _finished(self, done: _JobDone) -> None:
        if done.session is not None:
            self._folders[done.record.id] = done.session
        else:
            self._folders.pop(done.record.id, None)
        self._set_record(done.record)
        if done.record.status == "active" and done.session is not None:
            self._announce(done.session)

    def _recover(self) -> None:
        """Finish what the last run left in flight (a job of this daemon still running, after
        the actor alone was restarted, reports by itself)."""
        if self._manager is None or self._jobs is None:
            return
        for record in list(self._records.values()):
            if record.status not in ("spawning", "stopping") or self._jobs.busy(record.id):
                continue
            if record.status == "stopping":
                log.info("swarm.stop_resumed", session=record.id)
                self._submit_stop(record, self._manager)
                continue
            folder = self._folders.get(record.id)
            if record.stage != "queued" and folder is not None and folder.workers:
                done = record.moved(status="active", stage="", error="")
                self._save(done)
                self._records[record.id] = done
                log.info("swarm.spawn_recovered", session=record.id, outcome="active")
                continue
            if record.attempts >= MAX_ATTEMPTS:
                failed = record.moved(status="failed", stage="", error=(
                    f"the spawn was cut short by a restart {record.attempts} times; given up"))
                self._save(failed)
                self._records[record.id] = failed
                log.warning("swarm.spawn_given_up", session=record.id)
                continue
            log.info("swarm.spawn_resumed", session=record.id, stage=record.stage,
                     attempts=record.attempts)
            self._submit_spawn(record)

    # -- reading -----------------------------------------------------------------------------

    def on_tick(self) -> None:
        """The background refresh (never on a request's path), and the container health."""
        self._start_scan()
        now = time.monotonic()
        if self._manager is not None and now >= self._health_due and self._jobs is not None:
            self._health_due = now + self.settings.health_interval_s
            runner, me = self._manager.runner, self._me()
            self._jobs.scanner.submit(lambda: _tell(me, _Checked(_health(runner))))

    def _start_scan(self) -> None:
        if self._manager is None or self._jobs is None or self._jobs.scanning:
            return
        self._jobs.scanning = True
        manager, stamps, me = self._manager, dict(self._stamps), self._me()

        def scan() -> None:
            try:
                _tell(me, _Scanned(manager.scan(stamps)))
            except Exception as exc:  # noqa: BLE001 - the engine went away: say so, keep going
                _tell(me, _Scanned(None, str(exc)[:300]))

        self._jobs.scanner.submit(scan)

    def _scanned(self, message: _Scanned) -> None:
        assert self._jobs is not None
        self._jobs.scanning = False
        waiters, self._jobs.scan_waiters = self._jobs.scan_waiters, []
        if message.scan is not None:
            self._apply(message.scan)
            if self._scan_error:
                log.info("hive_mind.scan_recovered")
            self._scan_error = ""
        else:
            if message.error != self._scan_error:  # once per change, not every refresh
                log.warning("hive_mind.scan_failed", error=message.error)
            self._scan_error = message.error
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _apply(self, scan: Scan) -> None:
        self._last_scan = scan
        self._stamps = dict(scan.stamps)
        gone = set(self._folders) - scan.present
        touched = {s.id for s in scan.changed} | gone
        for session in scan.changed:
            self._folders[session.id] = session
        for session_id in gone:
            self._folders.pop(session_id, None)
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
            after = _merge(self._folders.get(sid), self._records.get(sid), sid)
            if after is None:
                self._view.pop(sid, None)
                self._encoded.pop(sid, None)
            elif after != before:
                self._view[sid] = after
                self._encoded[sid] = json.dumps(after.to_json(), separators=(",", ":")).encode()
            if after != before:
                self._listing = None
                if after is not None and (before is None or (before.status, before.stage,
                                                            before.error) != (
                        after.status, after.stage, after.error)):
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

    def _status(self) -> ActorStatus:
        sessions = self._list().sessions
        counts = Counter(s.status for s in sessions)
        active = [s.to_json() for s in sessions if s.status in ("spawning", "active")]
        breaker = self._breaker.describe()
        health: Health
        if self._manager is None:
            health, docker, reason = "degraded", "unavailable", self._problem or ""
        elif breaker["state"] != "closed":
            health, docker = "degraded", "degraded"
            reason = f"breaker {breaker['state']}: {breaker['last_error']}"
        elif self._scan_error:
            health, docker, reason = "degraded", "degraded", f"cannot read sessions: {self._scan_error}"
        elif self._container_health and not self._container_health.get("healthy", True):
            health, docker, reason = "degraded", "degraded", "container unhealthy"
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


def _agent_type(kind: Any) -> str:
    return kind if kind in AGENT_TYPES else "coder"


def _health(runner: Runner) -> dict[str, Any]:
    try:
        return runner.health()
    except BackendError as exc:
        return {"healthy": False, "error": str(exc)}


def _spawn_job(manager: SessionManager, store: RecordStore | None, record: SwarmRecord,
               settings: HiveMindSettings, breaker: CircuitBreaker,
               sleep: Callable[[float], None], me: Address) -> None:
    def save(updated: SwarmRecord) -> SwarmRecord:
        if store is not None:
            store.save(updated)
        _tell(me, _Progress(updated))
        return updated

    current = record
    error = ""
    attempts = settings.retries + 1
    for attempt in range(attempts):
        try:
            breaker.check()
        except BreakerOpen as exc:
            error = f"swarm backend unavailable: {exc}"
            break
        current = save(current.moved(stage="folder", attempts=current.attempts + 1, error=""))
        try:
            manager.remove(current.id)  # what an interrupted attempt left, if anything
            session = manager.create(current.id, current.request, stage=_stages(save, current))
        except BackendError as exc:  # the runner failed (engine down, timeout): try again
            breaker.failure(exc)
            error = f"{exc} (attempt {attempt + 1} of {attempts})"
            log.warning("swarm.spawn_attempt_failed", session=current.id, error=str(exc))
            if attempt + 1 < attempts:
                sleep(settings.retry_delay_s)
            continue
        except CommandFailed as exc:  # the CLI ran and said no: an answer, not a fault
            breaker.success()
            error = str(exc)
            break
        except Exception as exc:  # noqa: BLE001 - whatever it is, the swarm gets the reason
            error = f"{type(exc).__name__}: {exc}"
            break
        breaker.success()
        done = current.moved(status="active", stage="", error="")
        if store is not None:
            store.save(done)
        _tell(me, _JobDone(done, session))
        return
    failed = current.moved(status="failed", stage="", error=error or "the spawn failed")
    if store is not None:
        store.save(failed)
    log.warning("swarm.spawn_failed", session=current.id, error=failed.error)
    _tell(me, _JobDone(failed, None))


def _stages(save: Callable[[SwarmRecord], SwarmRecord],
            base: SwarmRecord) -> Callable[[str], None]:
    """Record each stage a spawn reaches (the folder's was recorded before it began)."""
    def stage(name: str) -> None:
        if name != "folder":
            save(base.moved(stage=name))

    return stage


def _stop_job(manager: SessionManager, store: RecordStore | None, record: SwarmRecord,
              settings: HiveMindSettings, breaker: CircuitBreaker,
              sleep: Callable[[float], None], me: Address) -> None:
    error = ""
    session: Session | None = None
    attempts = settings.retries + 1
    for attempt in range(attempts):
        try:
            breaker.check()
            session = manager.shutdown(record.id)
        except BreakerOpen as exc:
            error = f"swarm backend unavailable: {exc}"
            break
        except BackendError as exc:
            breaker.failure(exc)
            error = f"{exc} (attempt {attempt + 1} of {attempts})"
            if attempt + 1 < attempts:
                sleep(settings.retry_delay_s)
            continue
        except (CommandFailed, UnknownSession) as exc:
            breaker.success()
            error = f"stop failed: {exc}"
            break
        except Exception as exc:  # noqa: BLE001 - whatever it is, the swarm gets the reason
            error = f"stop failed: {type(exc).__name__}: {exc}"
            break
        breaker.success()
        error = ""
        break
    if error:
        try:
            session = manager.read(record.id)
        except BackendError:
            session = None
        after = record.moved(status=session.status if session else "failed", stage="",
                             error=error)
    else:
        after = record.moved(status="completed", stage="", error="")
    if store is not None:
        store.save(after)
    _tell(me, _JobDone(after, session))


def _merge(folder: Session | None, record: SwarmRecord | None, session_id: str) -> Session | None:
    """What the API shows: the record says where a spawn or stop is, the folder says what the
    hive-mind is."""
    if record is None:
        return folder
    if record.status in ("spawning", "stopping", "failed") or folder is None:
        base = folder or Session(session_id, record.status)
        return dataclasses.replace(
            base, status=record.status, task=record.task or base.task,
            priority=record.priority, stage=record.stage if record.status == "spawning" else "",
            error=record.error, created_at=record.created_at or base.created_at,
            updated_at=record.updated_at)
    return dataclasses.replace(folder, task=folder.task or record.task, error=record.error,
                               created_at=folder.created_at or record.created_at)
