"""Death watch: a mixin put in front of any ``ThreadingActor`` class, reporting how the actor's
thread ended (normally, crashed with the exception, or killed).

This is the one module that touches pykka's private API: the actor loop it replaces
(``_actor_loop*``, ``_handle_receive``, ``_handle_failure``), envelopes put straight into an
inbox, and the weak reference from a ref to its actor. pykka is pinned below 5 for that, and the
supervision tests exercise every path.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import pykka
from pykka import ActorDeadError, ActorRegistry, ThreadingActor
from pykka._envelope import Envelope
from pykka.messages import _ActorStop

from _supervision.errors import ChildCrashed
from _supervision.specs import KILLED, NORMAL, ExitReason

if TYPE_CHECKING:  # for annotations only: core imports this module
    from _supervision.core import ChildContext

__all__ = ["ChildExited", "Watch", "WatchedActor", "actor_of", "context_of", "drain", "post", "watched"]


A = TypeVar("A", bound=ThreadingActor)


@dataclass(frozen=True, slots=True)
class ChildExited:
    name: str
    urn: str
    reason: ExitReason


class Watch:
    """Links one incarnation to its supervisor: a start barrier, an end barrier (closers run)
    and an exit notification."""

    __slots__ = ("busy", "context", "ended", "name", "notify", "started")

    def __init__(
        self, name: str, context: ChildContext, notify: Callable[[ChildExited], None]
    ) -> None:
        self.name = name
        self.context = context
        self.notify = notify
        self.started = threading.Event()
        self.ended = threading.Event()  # the thread has finished and the closers have run
        # the message being handled and since when (monotonic): a slow answer from a busy
        # actor is told apart from one that is stuck or gone
        self.busy: tuple[str, float] | None = None


class _Wake:
    """Wakes a killed actor blocked on its inbox so that its thread can exit."""


def context_of(actor: object) -> ChildContext | None:
    """The actor's place in its tree, or None for an actor started on its own (a test may start
    one that way): callers branch on the answer instead of probing attributes."""
    return actor.supervision if isinstance(actor, WatchedActor) else None


class WatchedActor(ThreadingActor):
    """The mixin (first in the MRO of :func:`watched` classes) that reports how the actor's
    thread ended, and implements the crash contract of :mod:`supervisor`."""

    _hive_watch: Watch
    supervision: ChildContext

    def __init__(self, *args: Any, _hive_watch: Watch, **kwargs: Any) -> None:
        self._hive_watch = _hive_watch
        self._hive_failure: BaseException | None = None
        self._hive_killed = False
        self.supervision = _hive_watch.context
        super().__init__(*args, **kwargs)

    def _actor_loop(self) -> None:
        try:
            try:
                self._actor_loop_setup()
            except BaseException:  # noqa: BLE001 - pykka catches only Exception in on_start
                self._handle_failure(*sys.exc_info())
            self._hive_watch.started.set()
            self._actor_loop_running()
            self._actor_loop_teardown()
        finally:
            self._hive_watch.started.set()
            reason = self._hive_exit_reason()
            self._hive_watch.context.close()
            self._hive_watch.ended.set()
            self._hive_watch.notify(ChildExited(self._hive_watch.name, self.actor_urn, reason))

    def _hive_exit_reason(self) -> ExitReason:
        if self._hive_killed:
            return KILLED
        if self._hive_failure is not None:
            return ExitReason.from_exception(self._hive_failure)
        return NORMAL

    def _actor_loop_running(self) -> None:
        while not self.actor_stopped.is_set():
            envelope = self.actor_inbox.get()
            if self._hive_killed:
                _fail_envelope(envelope, self)
                break
            self._hive_watch.busy = (type(envelope.message).__name__, time.monotonic())
            try:
                response = self._handle_receive(envelope.message)
                if envelope.reply_to is not None:
                    envelope.reply_to.set(response)
            except Exception:  # noqa: BLE001 - the crash contract, see the module docstring
                if envelope.reply_to is not None:
                    envelope.reply_to.set_exception()  # an ask: the caller handles it
                else:
                    exc_info = sys.exc_info()
                    self._handle_failure(*exc_info)
                    self._hive_on_failure(*exc_info)
            except BaseException as exc:  # noqa: BLE001 - one actor's death, not the process's
                exc_info = sys.exc_info()
                if envelope.reply_to is not None:
                    crash = ChildCrashed(f"{type(exc).__name__}: {exc}")
                    envelope.reply_to.set_exception((ChildCrashed, crash, None))
                self._handle_failure(*exc_info)
                self._hive_on_failure(*exc_info)
            finally:
                self._hive_watch.busy = None

    def _hive_on_failure(self, exc_type: type[BaseException] | None,
                         exc_value: BaseException | None, tb: TracebackType | None) -> None:
        with contextlib.suppress(Exception):  # already dying: the first failure is the reason
            self.on_failure(exc_type, exc_value, tb)

    def _handle_failure(self, exception_type: type[BaseException] | None,
                        exception_value: BaseException | None,
                        traceback: TracebackType | None) -> None:
        # Replaces pykka's version: record the reason (the supervisor logs it) instead of
        # logging a traceback through the stdlib logger.
        if self._hive_failure is None and exception_value is not None:
            self._hive_failure = exception_value
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()

    def _hive_crash(self, exc: BaseException) -> None:
        """Die of ``exc`` now, even inside an ask (whose exception would go to the caller)."""
        self._handle_failure(type(exc), exc, exc.__traceback__)

    def _hive_kill(self) -> None:
        self._hive_killed = True
        ActorRegistry.unregister(self.actor_ref)
        self.actor_stopped.set()
        self.actor_inbox.put(Envelope(_Wake()))


def _fail_envelope(envelope: Envelope[Any], actor: ThreadingActor) -> None:
    if envelope.reply_to is None or isinstance(envelope.message, _Wake):
        return
    if isinstance(envelope.message, _ActorStop):
        envelope.reply_to.set(None)
        return
    error = ActorDeadError(f"{actor.actor_ref} stopped before handling the message")
    envelope.reply_to.set_exception((ActorDeadError, error, None))


def drain(ref: pykka.ActorRef[Any], actor: ThreadingActor) -> None:
    """Fail asks that reached an inbox after its actor's last look at it: nobody hangs.

    A wake-up for a killed actor is put back: its thread may still be waiting for it.
    """
    inbox: Any = ref.actor_inbox  # a queue.Queue for threading actors
    wakes = []
    while True:
        try:
            envelope = inbox.get_nowait()
        except queue.Empty:
            break
        if isinstance(envelope.message, _Wake):
            wakes.append(envelope)
        else:
            _fail_envelope(envelope, actor)
    for envelope in wakes:
        inbox.put(envelope)


def post(ref: pykka.ActorRef[Any], message: Any, reply_to: pykka.Future[Any] | None = None) -> None:
    """Put a message straight into an inbox (an ask when ``reply_to`` is given): the hot path
    of every address, without pykka's proxy machinery."""
    ref.actor_inbox.put(Envelope(message, reply_to=reply_to))


def actor_of(ref: pykka.ActorRef[Any]) -> WatchedActor | None:
    """The actor behind a ref of a watched class (None once it is gone)."""
    actor = ref._actor_weakref()
    return actor if isinstance(actor, WatchedActor) else None


_watched_classes: dict[type, type] = {}
_watched_lock = threading.Lock()


def watched(cls: type[A]) -> type[A]:
    """``cls`` with :class:`WatchedActor` first in its MRO (made once per class)."""
    if issubclass(cls, WatchedActor):
        return cls
    with _watched_lock:
        sub = _watched_classes.get(cls)
        if sub is None:
            namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
            sub = type(cls.__name__, (WatchedActor, cls), namespace)
            _watched_classes[cls] = sub
        return sub
