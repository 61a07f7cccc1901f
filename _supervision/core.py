"""The supervisor actor, the tree, stable addresses and child contexts: the core of
:mod:`supervisor` (whose docstring states the semantics). They depend on each other and live
together, as OTP's ``supervisor.erl`` keeps them."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pykka
import structlog
from pykka import ActorDeadError, ThreadingFuture

from _supervision.clock import Cancellable, Clock, SystemClock
from _supervision.errors import (
    AskTimeout,
    ChildUnavailable,
    IntensityExceeded,
    UnknownChild,
)
from _supervision.specs import (
    KILLED,
    ChildSpec,
    ChildState,
    ExitReason,
    RestartType,
    Strategy,
    SupervisorSpec,
    WorkerSpec,
)
from _supervision.watch import (
    ChildExited,
    Watch,
    WatchedActor,
    actor_of,
    drain,
    post,
    watched,
)

__all__ = ["Address", "ChildContext", "SupervisionTree", "Supervisor"]


log = structlog.get_logger("supervisor")


class _Slot:
    """Everything the tree knows about one path. Written only by the parent supervisor's thread
    (under the tree lock); read lock-free on the message hot path (``ref`` is one attribute)."""

    __slots__ = (
        "actor",
        "attempt",
        "backoff_timer",
        "children",
        "incarnation",
        "kind",
        "last_failure",
        "name",
        "path",
        "ref",
        "restart_times",
        "restarts",
        "spec",
        "started_at",
        "state",
        "urn",
    )

    def __init__(self, spec: ChildSpec, path: str) -> None:
        self.spec = spec
        self.name = spec.name
        self.path = path
        self.kind = "supervisor" if isinstance(spec, SupervisorSpec) else "worker"
        self.state = ChildState.STOPPED
        self.ref: pykka.ActorRef[Any] | None = None
        self.actor: Any = None
        self.urn: str | None = None
        self.incarnation = 0
        self.restarts = 0
        self.restart_times: deque[float] = deque(maxlen=1024)
        self.started_at: float | None = None
        self.last_failure: dict[str, Any] | None = None
        self.attempt = 0
        self.backoff_timer: Cancellable | None = None
        self.children: list[_Slot] = []
        if isinstance(spec, SupervisorSpec):
            self.children = [_Slot(c, f"{path}/{c.name}") for c in spec.children]


class _Closers:
    """An incarnation's closers: taken once each, last first; ``close`` returns when none is
    left and none is still running on another thread; one registered after that runs at once
    (a stuck thread that wakes after the kill must not leave what it then opens behind)."""

    def __init__(self, path: str, incarnation: int) -> None:
        self._path, self._incarnation = path, incarnation
        self._pending: list[Callable[[], None]] = []
        self._running = 0
        self._closed = False
        self._idle = threading.Condition()

    def add(self, close: Callable[[], None]) -> None:
        with self._idle:
            if not self._closed:
                self._pending.append(close)
                return
        self._run(close)

    def close(self, wait_s: float | None = None) -> bool:
        """Run what is pending; then wait up to ``wait_s`` for closers other threads run. False
        if one of those is still running then."""
        while True:
            with self._idle:
                self._closed = True
                if not self._pending:
                    break
                close = self._pending.pop()
                self._running += 1
            try:
                self._run(close)
            finally:
                with self._idle:
                    self._running -= 1
                    self._idle.notify_all()
        with self._idle:
            return self._idle.wait_for(lambda: self._running == 0, wait_s)

    def _run(self, close: Callable[[], None]) -> None:
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - one failed release must not keep the rest
            log.warning("child.close_failed", child=self._path, incarnation=self._incarnation,
                        closer=getattr(close, "__qualname__", repr(close)), error=repr(exc))


@dataclass(frozen=True)
class ChildContext:
    """What a supervised actor knows about its place in the tree (``self.supervision``)."""

    path: str
    incarnation: int
    tree: SupervisionTree
    _closers: _Closers = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_closers", _Closers(self.path, self.incarnation))

    def on_exit(self, close: Callable[[], None]) -> None:
        """Run ``close`` once this incarnation has ended, however it ended.

        A kill runs neither ``on_stop`` nor ``on_failure`` (OTP's brutal kill), yet what the
        incarnation owns (child processes, threads, open files) must be gone before the next
        one starts: register its release here. Closers run last first, on the dying actor's
        thread as it exits, or on the supervisor's if that thread is stuck past the shutdown
        timeout; each runs once, and a failing one is logged and does not stop the others.
        Registered after the incarnation has closed, ``close`` runs at once.
        """
        self._closers.add(close)

    def close(self, wait_s: float | None = None) -> bool:
        """Run the registered closers and wait up to ``wait_s`` for any another thread is
        running (the supervision machinery calls this); False if one still runs then."""
        return self._closers.close(wait_s)

    def address(self, path: str) -> Address:
        return self.tree.address(path)

    def sibling(self, name: str) -> Address:
        """The address of a child of the same supervisor (``root/mcp`` for ``mcp`` from
        ``root/hive_mind``); :class:`UnknownChild` if there is none of that name."""
        if not name:
            raise UnknownChild("no sibling named '' (that actor is not enabled in this daemon)")
        parent = self.path.rsplit("/", 1)[0] if "/" in self.path else ""
        return self.tree.address(f"{parent}/{name}" if parent else name)

    def keep(self, value: Any, name: str = "") -> None:
        """Keep an immutable value for the next incarnation of this path (its last good state);
        ``name`` keeps several independent values."""
        self.tree._kept[(self.path, name)] = value

    def kept(self, default: Any = None, name: str = "") -> Any:
        return self.tree._kept.get((self.path, name), default)

    def kept_by(self, sibling: str, default: Any = None, name: str = "") -> Any:
        """What the sibling ``sibling`` keeps under ``name`` (read only): one fact with one
        owner, which another child reads when it starts (and no message can be lost)."""
        parent = self.path.rsplit("/", 1)[0] if "/" in self.path else ""
        return self.tree._kept.get((f"{parent}/{sibling}" if parent else sibling, name), default)


class _BridgeFuture(ThreadingFuture[Any]):
    """A pykka future that also resolves an asyncio future on its loop: no thread per ask."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: asyncio.Future[Any]) -> None:
        super().__init__()
        self._loop = loop
        self._target = target

    def set(self, value: Any | None = None) -> None:
        super().set(value)
        self._forward(_resolve, value)

    def set_exception(self, exc_info: Any = None) -> None:
        if exc_info is None:
            exc_info = sys.exc_info()
        super().set_exception(exc_info)
        self._forward(_reject, exc_info[1] or exc_info[0]())

    def _forward(self, fn: Callable[[asyncio.Future[Any], Any], None], arg: Any) -> None:
        # RuntimeError: the loop closed while the actor was answering; nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, self._target, arg)


def _resolve(fut: asyncio.Future[Any], value: Any) -> None:
    if not fut.done():
        fut.set_result(value)


def _reject(fut: asyncio.Future[Any], exc: BaseException) -> None:
    if not fut.done():
        fut.set_exception(exc)


class Address:
    """A path in the tree that always reaches the child's current incarnation."""

    __slots__ = ("_slot", "_tree", "default_timeout", "path")

    def __init__(self, tree: SupervisionTree, slot: _Slot, default_timeout: float = 10.0) -> None:
        self._tree = tree
        self._slot = slot
        self.path = slot.path
        self.default_timeout = default_timeout

    def __repr__(self) -> str:
        return f"<Address {self.path}>"

    def _ref(self) -> pykka.ActorRef[Any]:
        slot = self._slot
        ref = slot.ref
        if ref is None or slot.state is not ChildState.RUNNING:
            raise ChildUnavailable(self.path, str(slot.state))
        return ref

    @property
    def available(self) -> bool:
        ref = self._slot.ref
        return ref is not None and ref.is_alive()

    @property
    def incarnation(self) -> int:
        return self._slot.incarnation

    def tell(self, message: Any) -> None:
        """Deliver without waiting. Raises :class:`ChildUnavailable` if the child is down."""
        ref = self._slot.ref  # None whenever the child is not running
        if ref is None or ref.actor_stopped.is_set():
            raise ChildUnavailable(self.path, str(self._slot.state))
        post(ref, message)

    def wait_running(self, incarnation: int = 0, timeout: float | None = None) -> bool:
        """Block until the child runs (at ``incarnation`` or later); False on timeout.

        For callers that would otherwise poll a restarting child (and, polling, hold the GIL
        that the restart needs).
        """
        return self._tree._wait_running(self._slot, incarnation, timeout)

    def ask(self, message: Any, timeout: float | None = None) -> Any:
        """Send and wait for the answer (from a thread; use :meth:`ask_async` on the loop)."""
        timeout = self.default_timeout if timeout is None else timeout
        ref = self._ref()
        try:
            future = ref.ask(message, block=False)
        except ActorDeadError:
            raise ChildUnavailable(self.path, "restarting") from None
        try:
            return future.get(timeout=timeout)
        except pykka.Timeout:
            raise AskTimeout(f"{self.path} did not answer within {timeout} s") from None
        except ActorDeadError:
            raise ChildUnavailable(self.path, "stopped with the message in flight") from None

    async def ask_async(self, message: Any, timeout: float | None = None) -> Any:
        """Await an answer without blocking the event loop and without a thread per request."""
        timeout = self.default_timeout if timeout is None else timeout
        ref = self._ref()
        loop = asyncio.get_running_loop()
        target: asyncio.Future[Any] = loop.create_future()
        if not ref.is_alive():
            raise ChildUnavailable(self.path, "restarting")
        post(ref, message, _BridgeFuture(loop, target))
        try:
            done, _ = await asyncio.wait({target}, timeout=timeout)
        except asyncio.CancelledError:
            target.cancel()  # the late answer then has nowhere to go, and is not left unread
            raise
        if not done:
            target.cancel()
            raise AskTimeout(f"{self.path} did not answer within {timeout} s")
        try:
            return target.result()  # the actor's own exception, whatever its type, as it is
        except ActorDeadError:
            raise ChildUnavailable(self.path, "stopped with the message in flight") from None


# --------------------------------------------------------------------------------------------
# The supervisor actor
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _RestartDue:
    token: object


@dataclass(frozen=True, slots=True)
class _Control:
    op: str  # "restart" | "stop" | "start" | "kill" | "respec"
    name: str
    spec: ChildSpec | None = None  # "respec": the spec the child starts from from now on


class Supervisor(WatchedActor):
    """Owns the lifecycle of its children. Every decision runs on this actor's thread, fed by
    messages (child exits, backoff timers, control requests), so its state needs no locks."""

    def __init__(self, tree: SupervisionTree, slot: _Slot, *, _hive_watch: Watch) -> None:
        super().__init__(_hive_watch=_hive_watch)
        assert isinstance(slot.spec, SupervisorSpec)
        self._tree = tree
        self._slot = slot
        self._spec: SupervisorSpec = slot.spec
        self._clock = tree.clock
        self._restart_times: deque[float] = deque()
        self._pending: dict[object, tuple[str, ...]] = {}
        self._children = {c.name: c for c in slot.children}
        self._order = [c.name for c in slot.children]
        self._log = log.bind(supervisor=slot.path)

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        for child in self._slot.children:
            child.state = ChildState.STARTING
            child.restart_times.clear()
        self._start_children(self._order)

    def on_stop(self) -> None:
        self._cancel_timers()
        self._terminate_all()

    def on_failure(self, *_exc_info: Any) -> None:
        self._cancel_timers()
        self._terminate_all()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, ChildExited):
            self._on_exit(message)
        elif isinstance(message, _RestartDue):
            names = self._pending.pop(message.token, None)
            if names is not None:
                for name in names:
                    self._children[name].backoff_timer = None
                self._start_children(list(names))
        elif isinstance(message, _Control):
            try:
                return self._control(message)
            except IntensityExceeded as exc:
                # Raised inside an ask, this would go to the caller and leave us alive; a
                # supervisor past its intensity must die so that its parent sees it.
                self._hive_crash(exc)
                return self._tree._describe_slot(self._children[message.name])
        return None

    # -- exits and restarts ----------------------------------------------------------------

    def _on_exit(self, event: ChildExited) -> None:
        slot = self._children.get(event.name)
        if slot is None or slot.urn != event.urn:
            return  # an incarnation we already stopped or replaced
        self._handle_exit(slot, event.reason)

    def _handle_exit(self, slot: _Slot, reason: ExitReason) -> None:
        self._forget(slot)
        if self.actor_stopped.is_set():  # killed or stopping: restart nothing
            self._set(slot, ChildState.STOPPED)
            return
        if reason.abnormal:
            slot.last_failure = {
                "type": reason.error_type,
                "message": reason.message,
                "at": time.time(),
            }
            self._log.warning(
                "child.crashed", child=slot.path, reason=reason.kind,
                error=reason.error_type, message=reason.message, incarnation=slot.incarnation,
            )
        else:
            self._log.info("child.stopped", child=slot.path, reason=reason.kind)
        restart = slot.spec.restart
        if restart is RestartType.TEMPORARY or (
            restart is RestartType.TRANSIENT and not reason.abnormal
        ):
            self._set(slot, ChildState.STOPPED)
            return
        now = self._clock.now()
        self._restart_times.append(now)
        while self._restart_times and self._restart_times[0] <= now - self._spec.within_seconds:
            self._restart_times.popleft()
        if len(self._restart_times) > self._spec.max_restarts:
            self._give_up(slot, reason)
        own = slot.spec.max_restarts if isinstance(slot.spec, WorkerSpec) else None
        if own is not None:
            assert isinstance(slot.spec, WorkerSpec)
            horizon = now - slot.spec.within_seconds
            if sum(1 for t in slot.restart_times if t > horizon) + 1 > own:
                self._give_up(slot, reason, limit=(own, slot.spec.within_seconds))
        names = self._affected(slot.name)
        for name in reversed(names):
            if name != slot.name:
                self._terminate(self._children[name])
        restartable = [n for n in names if n == slot.name or
                       self._children[n].spec.restart is not RestartType.TEMPORARY]
        for name in restartable:
            child = self._children[name]
            child.restarts += 1
            child.restart_times.append(now)
            self._set(child, ChildState.RESTARTING)
        delay = self._backoff_delay(slot, now)
        if delay > 0:
            token = object()
            self._pending[token] = tuple(restartable)
            me = self.actor_ref
            timer = self._clock.call_later(delay, lambda: _tell_quietly(me, _RestartDue(token)))
            for name in restartable:
                self._children[name].backoff_timer = timer
            self._log.info("child.backoff", child=slot.path, delay_s=round(delay, 3))
            return
        self._start_children(restartable)

    def _affected(self, name: str) -> list[str]:
        strategy = self._spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return [name]
        running_or_failed = [
            n for n in self._order
            if n == name or self._children[n].state in (
                ChildState.RUNNING, ChildState.STARTING, ChildState.RESTARTING)
        ]
        if strategy is Strategy.ONE_FOR_ALL:
            return running_or_failed
        index = self._order.index(name)
        return [n for n in running_or_failed if self._order.index(n) >= index]

    def _backoff_delay(self, slot: _Slot, now: float) -> float:
        backoff = self._spec.backoff
        if isinstance(slot.spec, WorkerSpec) and slot.spec.backoff is not None:
            backoff = slot.spec.backoff
        if backoff is None:
            return 0.0
        if slot.started_at is not None and now - slot.started_at >= backoff.reset_after_s:
            slot.attempt = 0
        delay = backoff.delay(slot.attempt)
        slot.attempt += 1
        return delay

    def _give_up(
        self, slot: _Slot, reason: ExitReason, limit: tuple[int, float] | None = None
    ) -> None:
        """Too many restarts: stop everything in reverse order and fail (escalate)."""
        max_restarts, within = limit or (self._spec.max_restarts, self._spec.within_seconds)
        self._log.error(
            "supervisor.intensity_exceeded", child=slot.path, max_restarts=max_restarts,
            within_seconds=within, last_error=reason.error_type,
        )
        self._cancel_timers()
        self._terminate_all()
        self._tree._set_state(self._slot, ChildState.FAILED)
        self._log.error("supervisor.escalated", to=self._tree._parent_path(self._slot.path))
        raise IntensityExceeded(
            f"{self._slot.path}: more than {max_restarts} restarts in "
            f"{within} s (last: {slot.path} {reason.kind}"
            f"{': ' + str(reason.error_type) if reason.error_type else ''})"
        )

    # -- starting and stopping children ---------------------------------------------------

    def _start_children(self, names: list[str]) -> None:
        """Start these children in order; a start failure is handled as that child's crash."""
        for name in names:
            if self.actor_stopped.is_set():
                return  # killed meanwhile: whoever killed us owns the children now
            slot = self._children[name]
            if slot.state not in (ChildState.STARTING, ChildState.RESTARTING):
                continue  # already started by a nested restart, or stopped on purpose
            if slot.backoff_timer is not None:
                continue  # a backoff timer owns this restart
            failure = self._start(slot)
            if failure is not None:
                self._handle_exit(slot, failure)

    def _start(self, slot: _Slot) -> ExitReason | None:
        if self.actor_stopped.is_set():
            return ExitReason("shutdown", "Stopped", "the supervisor is stopping")
        spec = slot.spec
        slot.incarnation += 1
        self._set(slot, ChildState.STARTING)
        context = ChildContext(slot.path, slot.incarnation, self._tree)
        me = self.actor_ref
        watch = Watch(slot.name, context, lambda event: _tell_quietly(me, event))
        ref: pykka.ActorRef[Any]
        try:
            if isinstance(spec, SupervisorSpec):
                ref = Supervisor.start(self._tree, slot, _hive_watch=watch)
            else:
                ref = watched(spec.actor_class).start(*spec.args, _hive_watch=watch, **spec.kwargs)
        except Exception as exc:  # noqa: BLE001 - __init__ failed: a start failure
            return ExitReason.from_exception(exc)
        actor = actor_of(ref)
        slot.urn = ref.actor_urn
        slot.actor = actor
        if not watch.started.wait(spec.start_timeout):
            if actor is not None:
                actor._hive_kill()
                _await_end(slot, actor)  # what the stuck start opened goes before a retry
            slot.urn = None
            took = f"on_start took over {spec.start_timeout} s"
            return ExitReason("crashed", "StartTimeout", took)
        if not ref.is_alive():
            failure = actor._hive_exit_reason() if actor is not None else None
            slot.urn = None
            slot.actor = None
            return failure or ExitReason("crashed", "StartFailed", "stopped during start")
        slot.started_at = self._clock.now()
        slot.ref = ref
        self._set(slot, ChildState.RUNNING)
        event = "child.restarted" if slot.incarnation > 1 else "child.started"
        self._log.info(event, child=slot.path, incarnation=slot.incarnation, kind=slot.kind)
        return None

    def _leave_backoff(self, slot: _Slot) -> None:
        """Take this child out of a pending delayed restart; cancel the timer only when no
        other child (one_for_all, rest_for_one) still waits on it."""
        if slot.backoff_timer is None:
            return
        timer, slot.backoff_timer = slot.backoff_timer, None
        for token, names in list(self._pending.items()):
            if slot.name in names:
                rest = tuple(n for n in names if n != slot.name)
                if rest:
                    self._pending[token] = rest
                else:
                    del self._pending[token]
                    timer.cancel()

    def _terminate(self, slot: _Slot) -> None:
        """Graceful stop within the spec's shutdown timeout, then a brutal kill."""
        self._leave_backoff(slot)
        ref, actor = slot.ref, slot.actor
        self._forget(slot)
        if ref is None or actor is None:
            if slot.state is not ChildState.FAILED:
                self._set(slot, ChildState.STOPPED)
            return
        if ref.is_alive():
            try:
                ref.stop(block=True, timeout=slot.spec.shutdown_timeout)
            except pykka.Timeout:
                self._log.warning("child.kill", child=slot.path, reason="shutdown timeout")
                _kill_subtree(slot, actor)
        # on_stop has run; the thread's last act is the closers (a final save, say): wait for it
        _await_end(slot, actor)
        drain(ref, actor)
        self._set(slot, ChildState.STOPPED)
        self._log.info("child.stopped", child=slot.path, reason="shutdown")

    def _terminate_all(self) -> None:
        for name in reversed(self._order):
            self._terminate(self._children[name])

    def _forget(self, slot: _Slot) -> None:
        """Detach an incarnation from the slot; later exit notices for it are stale."""
        ref, actor = slot.ref, slot.actor
        slot.urn = None
        slot.ref = None
        slot.actor = None
        if ref is not None and actor is not None and not ref.is_alive():
            drain(ref, actor)

    def _cancel_timers(self) -> None:
        for slot in self._slot.children:
            if slot.backoff_timer is not None:
                slot.backoff_timer.cancel()
                slot.backoff_timer = None
        self._pending.clear()

    def _set(self, slot: _Slot, state: ChildState) -> None:
        self._tree._set_state(slot, state)

    # -- control (admin API) --------------------------------------------------------------

    def _control(self, request: _Control) -> dict[str, Any]:
        slot = self._children.get(request.name)
        if slot is None:
            raise UnknownChild(f"{self._slot.path}/{request.name}")
        if request.op == "stop":
            self._terminate(slot)
        elif request.op == "start":
            if slot.state is not ChildState.RUNNING:
                self._terminate(slot)
                self._set(slot, ChildState.STARTING)
                failure = self._start(slot)
                if failure is not None:
                    self._handle_exit(slot, failure)
        elif request.op == "restart":
            self._terminate(slot)
            self._set(slot, ChildState.STARTING)
            failure = self._start(slot)
            if failure is not None:
                self._handle_exit(slot, failure)
        elif request.op == "kill":
            actor = slot.actor
            if slot.ref is None or actor is None:
                raise ChildUnavailable(slot.path, str(slot.state))
            _kill_subtree(slot, actor)
            _await_end(slot, actor)
            self._handle_exit(slot, KILLED)
        elif request.op == "respec" and request.spec is not None:
            if not isinstance(request.spec, WorkerSpec) or not isinstance(slot.spec, WorkerSpec) \
                    or request.spec.name != slot.name:
                raise ValueError(f"{slot.path}: only a worker's spec is replaced, under its name "
                                 "(a supervisor's children are its own)")
            slot.spec = request.spec
        else:
            raise ValueError(f"unknown control operation {request.op!r}")
        return self._tree._describe_slot(slot)


def _busy(actor: Any) -> dict[str, Any] | None:
    """The message the actor is handling and for how long, when it is handling one."""
    busy = actor._hive_watch.busy if isinstance(actor, WatchedActor) else None
    if busy is None:
        return None
    return {"message": busy[0], "for_s": round(time.monotonic() - busy[1], 3)}


def _mailbox_depth(ref: pykka.ActorRef[Any] | None) -> int:
    inbox: Any = ref.actor_inbox if ref is not None else None
    return int(inbox.qsize()) if inbox is not None else 0


def _kill_subtree(slot: _Slot, actor: Any) -> None:
    """Kill a child brutally; for a supervisor, its descendants first (they would be orphans)."""
    for child in reversed(slot.children):
        if child.actor is not None:
            _kill_subtree(child, child.actor)
        child.state = ChildState.STOPPED
        child.ref = None
        child.actor = None
        child.urn = None
    actor._hive_kill()


def _await_end(slot: _Slot, actor: Any) -> None:
    """After a stop or a kill: let the incarnation's thread finish and release what it owned (its
    closers) before anything restarts it; a thread stuck past the shutdown timeout has its
    closers run from here (closing its processes is what usually unsticks it)."""
    watch = actor._hive_watch
    if watch.ended.wait(slot.spec.shutdown_timeout):
        return
    log.warning("child.stuck", child=slot.path, incarnation=watch.context.incarnation,
                hint="its thread is still busy after the kill; its closers run now")
    if not watch.context.close(slot.spec.shutdown_timeout):
        log.warning("child.close_slow", child=slot.path, incarnation=watch.context.incarnation,
                    hint="a closer still runs on the old thread; the next incarnation starts")


def _tell_quietly(ref: pykka.ActorRef[Any], message: Any) -> None:
    with contextlib.suppress(ActorDeadError):  # the supervisor is gone, and its interest too
        ref.tell(message)


# --------------------------------------------------------------------------------------------
# The tree: the public face
# --------------------------------------------------------------------------------------------


class SupervisionTree:
    """Builds a tree from a root :class:`SupervisorSpec`, starts it, and answers for it.

    ``failure`` is set (and ``done`` fires) when the root supervisor gives up: the owner of the
    tree should then exit non-zero.
    """

    def __init__(
        self, spec: SupervisorSpec, clock: Clock | None = None, ask_timeout: float = 10.0
    ) -> None:
        self.spec = spec
        self.clock: Clock = clock or SystemClock()
        self.ask_timeout = ask_timeout
        self.done = threading.Event()
        self.failure: ExitReason | None = None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._root = _Slot(spec, spec.name)
        self._slots: dict[str, _Slot] = {}
        self._index(self._root)
        self._kept: dict[tuple[str, str], Any] = {}
        self._on_failure: list[Callable[[ExitReason], None]] = []

    def _index(self, slot: _Slot) -> None:
        self._slots[slot.path] = slot
        for child in slot.children:
            self._index(child)

    @property
    def root_path(self) -> str:
        return self._root.path

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start every child in order; return when the whole tree is up (or raise)."""
        slot = self._root
        slot.incarnation += 1
        self._set_state(slot, ChildState.STARTING)
        watch = Watch(slot.name, ChildContext(slot.path, 1, self), self._root_exited)
        ref = Supervisor.start(self, slot, _hive_watch=watch)
        slot.urn = ref.actor_urn
        slot.actor = actor_of(ref)
        watch.started.wait()
        if not ref.is_alive():
            raise IntensityExceeded(
                f"the tree failed to start: {self.failure.message if self.failure else 'unknown'}"
            )
        slot.ref = ref
        slot.started_at = self.clock.now()
        self._set_state(slot, ChildState.RUNNING)
        log.info("tree.started", root=slot.path, children=len(self._slots) - 1)

    def on_failure(self, callback: Callable[[ExitReason], None]) -> None:
        """Call ``callback(reason)`` (from a supervisor thread) if the root gives up."""
        self._on_failure.append(callback)

    def _root_exited(self, event: ChildExited) -> None:
        slot = self._root
        if event.reason.abnormal:
            self.failure = event.reason
            self._set_state(slot, ChildState.FAILED)
            log.critical("tree.failed", root=slot.path, reason=event.reason.message)
            for callback in self._on_failure:
                callback(event.reason)
        else:
            self._set_state(slot, ChildState.STOPPED)
        slot.ref = None
        slot.actor = None
        self.done.set()

    def stop(self, timeout: float | None = None) -> None:
        """Stop every child in reverse start order, then the root."""
        ref = self._root.ref
        if ref is not None and ref.is_alive():
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.error("tree.stop_timeout", timeout_s=timeout)
        self.done.wait(timeout)
        log.info("tree.stopped", root=self._root.path)

    # -- addressing ------------------------------------------------------------------------

    def _slot(self, path: str) -> _Slot:
        slot = self._slots.get(path.strip("/"))
        if slot is None:
            raise UnknownChild(f"no child at {path!r}")
        return slot

    def address(self, path: str) -> Address:
        return Address(self, self._slot(path), self.ask_timeout)

    def paths(self) -> list[str]:
        return list(self._slots)

    @staticmethod
    def _parent_path(path: str) -> str | None:
        return path.rsplit("/", 1)[0] if "/" in path else None

    # -- control ---------------------------------------------------------------------------

    def _control_request(self, op: str, path: str) -> tuple[Address, _Control]:
        slot = self._slot(path)
        parent = self._parent_path(slot.path)
        if parent is None:
            raise ValueError("the root supervisor cannot be controlled; stop the tree instead")
        return self.address(parent), _Control(op, slot.name)

    def control(self, op: str, path: str, timeout: float | None = 60.0) -> dict[str, Any]:
        """``restart``, ``stop``, ``start`` or ``kill`` the child at ``path``; its new node."""
        parent, request = self._control_request(op, path)
        result: dict[str, Any] = parent.ask(request, timeout=timeout)
        return result

    async def control_async(
        self, op: str, path: str, timeout: float | None = 60.0
    ) -> dict[str, Any]:
        parent, request = self._control_request(op, path)
        result: dict[str, Any] = await parent.ask_async(request, timeout=timeout)
        return result

    def restart(self, path: str) -> dict[str, Any]:
        return self.control("restart", path)

    def replace_spec(self, path: str, spec: ChildSpec, timeout: float | None = 60.0) -> dict[str, Any]:
        """Start the worker at ``path`` from ``spec`` from its next start on (new settings, a
        reloaded restart policy); the running incarnation is left alone: follow with
        :meth:`restart` to apply it now. OTP's change of a child spec: a worker, same name."""
        parent, request = self._control_request("respec", path)
        result: dict[str, Any] = parent.ask(replace(request, spec=spec), timeout=timeout)
        return result

    def stop_child(self, path: str) -> dict[str, Any]:
        return self.control("stop", path)

    def start_child(self, path: str) -> dict[str, Any]:
        return self.control("start", path)

    def kill(self, path: str) -> dict[str, Any]:
        return self.control("kill", path)

    # -- introspection ---------------------------------------------------------------------

    def _set_state(self, slot: _Slot, state: ChildState) -> None:
        with self._lock:
            slot.state = state
            if state is not ChildState.RUNNING:
                slot.ref = None
            self._changed.notify_all()

    def _wait_running(self, slot: _Slot, incarnation: int, timeout: float | None) -> bool:
        def ready() -> bool:
            return slot.state is ChildState.RUNNING and slot.incarnation >= incarnation

        with self._changed:
            return self._changed.wait_for(ready, timeout)

    def describe(self, path: str | None = None) -> dict[str, Any]:
        """The live tree (or the subtree at ``path``) as JSON-ready data."""
        with self._lock:
            return self._describe_slot(self._slot(path) if path else self._root)

    def _describe_slot(self, slot: _Slot) -> dict[str, Any]:
        now = self.clock.now()
        parent = self._slots.get(self._parent_path(slot.path) or "")
        window = parent.spec.within_seconds if parent is not None else self.spec.within_seconds
        ref = slot.ref
        node: dict[str, Any] = {
            "name": slot.name,
            "path": slot.path,
            "kind": slot.kind,
            "state": str(slot.state),
            "restart": str(slot.spec.restart),
            "restarts": slot.restarts,
            "window_restarts": sum(1 for t in list(slot.restart_times) if t > now - window),
            "incarnation": slot.incarnation,
            "uptime_s": (
                round(now - slot.started_at, 3)
                if slot.started_at is not None and slot.state is ChildState.RUNNING
                else 0.0
            ),
            "mailbox": _mailbox_depth(ref),
            "busy": _busy(slot.actor),
            "last_failure": slot.last_failure,
        }
        if isinstance(slot.spec, SupervisorSpec):
            node["strategy"] = str(slot.spec.strategy)
            node["max_restarts"] = slot.spec.max_restarts
            node["within_seconds"] = slot.spec.within_seconds
        node["children"] = [self._describe_slot(c) for c in slot.children]
        return node
