"""Erlang/OTP-style supervision trees for pykka actors.

pykka gives us actors (a thread and an inbox each) but no death watch, no restart policy and no
trees. This module adds them, with OTP's semantics wherever OTP has an answer:

* A :class:`SupervisorSpec` lists child specs in start order. Children start one after the other
  (each child's ``on_start`` finishes before the next one starts) and stop in reverse order.
* Strategies: ``one_for_one`` restarts only the failed child, ``one_for_all`` every child,
  ``rest_for_one`` the failed child and every child started after it.
* Restart types: ``permanent`` (always restarted), ``transient`` (restarted only after an
  abnormal exit), ``temporary`` (never restarted; stays listed as ``stopped``).
* Restart intensity: more than ``max_restarts`` restarts inside a sliding window of
  ``within_seconds`` is too many. The supervisor then stops its children in reverse order and
  fails itself; its parent applies its own strategy (escalation). When the root gives up, the
  :class:`SupervisionTree` reports it (the daemon then exits non-zero).
* Optional exponential backoff before a restart (Akka's ``BackoffSupervisor``), reset after a
  quiet period.

What counts as a crash (the contract workers can rely on):

* An exception raised by a ``tell`` handler (or by ``on_start`` / ``on_stop``) stops the actor:
  that is a crash, an abnormal exit.
* An exception raised while answering an ``ask`` goes back to the caller and the actor lives:
  the caller asked, the caller handles it.
* A ``BaseException`` that is not an ``Exception`` (``SystemExit`` in a handler, say) crashes that
  one actor; the caller of an ``ask`` gets :class:`ChildCrashed`. pykka itself would call
  ``ActorRegistry.stop_all()`` and take every actor in the process down with it.
* :meth:`SupervisionTree.kill` is ``exit(Pid, kill)``: untrappable, no ``on_stop``. A Python
  thread cannot be interrupted, so a handler that is running finishes its current message, then
  the thread exits; the supervisor does not wait for it and starts the next incarnation at once.
* An actor that stops itself (``self.stop()``) exits normally.

To watch a pykka actor without asking its author to inherit from anything, the supervisor starts
a subclass of the given class with a death-watch mixin first in its MRO. The mixin replaces
pykka's private actor loop (``_actor_loop*``, ``_handle_failure``); that is the one place that
touches pykka's private API (``_supervision/watch.py``), pykka is pinned below 5 for it, and the
tests exercise every path.

Callers never hold an ``ActorRef`` to a supervised child: they hold an :class:`Address` (a path
such as ``root/mcp``) that always reaches the current incarnation, and raises
:class:`ChildUnavailable` at once while the child is down.

This module is the public face: every name below is imported from here. The code lives in the
private package ``_supervision`` (``errors``, ``specs``, ``clock``, ``backoff``, ``watch``,
``core``).
"""

from __future__ import annotations

from _supervision.backoff import Backoff
from _supervision.clock import Clock, ManualClock, SystemClock
from _supervision.core import Address, ChildContext, SupervisionTree
from _supervision.errors import (
    AskTimeout,
    ChildCrashed,
    ChildUnavailable,
    IntensityExceeded,
    SupervisionError,
    UnknownChild,
)
from _supervision.specs import (
    ChildSpec,
    ChildState,
    ExitReason,
    RestartType,
    Strategy,
    SupervisorSpec,
    WorkerSpec,
)
from _supervision.watch import context_of

__all__ = [
    "Address",
    "AskTimeout",
    "Backoff",
    "ChildContext",
    "ChildCrashed",
    "ChildSpec",
    "ChildState",
    "ChildUnavailable",
    "Clock",
    "ExitReason",
    "IntensityExceeded",
    "ManualClock",
    "RestartType",
    "Strategy",
    "SupervisionError",
    "SupervisionTree",
    "SupervisorSpec",
    "SystemClock",
    "UnknownChild",
    "WorkerSpec",
    "context_of",
]
