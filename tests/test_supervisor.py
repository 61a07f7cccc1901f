"""Supervision semantics on real pykka actors (no mocks): strategies, restart types, intensity,
escalation, ordering, start failures, stable addresses, backoff, control and leaks."""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pykka
import pytest

from supervisor import (
    AskTimeout,
    Backoff,
    ChildContext,
    ChildCrashed,
    ChildUnavailable,
    IntensityExceeded,
    ManualClock,
    RestartType,
    Strategy,
    SupervisionTree,
    SupervisorSpec,
    UnknownChild,
    WorkerSpec,
)
from tests.conftest import wait_for


class Probe(pykka.ThreadingActor):
    """Records its lifecycle into a queue the test reads; crashes or exits on request."""

    def __init__(self, events: queue.Queue[tuple[str, str, int]] | None = None,
                 fail_start: Callable[[int], bool] | None = None) -> None:
        super().__init__()
        self.events = events
        self.fail_start = fail_start

    def _record(self, what: str) -> None:
        if self.events is not None:
            self.events.put((what, self.supervision.path, self.supervision.incarnation))

    def on_start(self) -> None:
        if self.fail_start is not None and self.fail_start(self.supervision.incarnation):
            raise RuntimeError("cannot start")
        self._record("start")

    def on_stop(self) -> None:
        self._record("stop")

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash requested")
        if message == "exit":
            self.stop()
            return None
        if message == "system-exit":
            raise SystemExit(3)
        if message == "sleep":
            time.sleep(0.3)
            return "slept"
        return ("pong", self.supervision.incarnation)


def drain(events: queue.Queue[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    out = []
    while True:
        try:
            out.append(events.get_nowait())
        except queue.Empty:
            return out


def worker(name: str, events: Any = None, **kw: Any) -> WorkerSpec:
    restart = kw.pop("restart", RestartType.PERMANENT)
    return WorkerSpec(name, Probe, kwargs={"events": events, **kw}, restart=restart)


@pytest.fixture
def events() -> queue.Queue[tuple[str, str, int]]:
    return queue.Queue()


@pytest.fixture
def trees() -> Iterator[list[SupervisionTree]]:
    made: list[SupervisionTree] = []
    yield made
    for tree in made:
        tree.stop(timeout=5)


def start(trees: list[SupervisionTree], spec: SupervisorSpec, **kw: Any) -> SupervisionTree:
    tree = SupervisionTree(spec, **kw)
    trees.append(tree)
    tree.start()
    return tree


def incarnations(tree: SupervisionTree) -> dict[str, int]:
    out: dict[str, int] = {}

    def walk(node: dict[str, Any]) -> None:
        out[node["path"]] = node["incarnation"]
        for child in node["children"]:
            walk(child)

    walk(tree.describe())
    return out


def crash_and_wait(tree: SupervisionTree, path: str, expected_incarnation: int) -> None:
    tree.address(path).tell("crash")
    assert tree.address(path).wait_running(expected_incarnation, timeout=5)


def three(strategy: Strategy, events: Any, **kw: Any) -> SupervisorSpec:
    return SupervisorSpec(
        "root", (worker("a", events), worker("b", events), worker("c", events)),
        strategy=strategy, max_restarts=10, within_seconds=60, **kw)


# -- strategies -------------------------------------------------------------------------------


def test_one_for_one_restarts_only_the_failed_child(trees: list, events: Any) -> None:
    tree = start(trees, three(Strategy.ONE_FOR_ONE, events))
    crash_and_wait(tree, "root/b", 2)
    assert incarnations(tree) == {"root": 1, "root/a": 1, "root/b": 2, "root/c": 1}
    assert tree.describe("root/b")["restarts"] == 1
    assert tree.describe("root/b")["last_failure"]["type"] == "RuntimeError"


def test_one_for_all_restarts_every_child_in_order(trees: list, events: Any) -> None:
    tree = start(trees, three(Strategy.ONE_FOR_ALL, events))
    drain(events)
    tree.address("root/b").tell("crash")
    wait_for(lambda: all(v == 2 for k, v in incarnations(tree).items() if k != "root"))
    wait_for(lambda: tree.describe("root/c")["state"] == "running")
    seen = drain(events)
    # the survivors stop in reverse order, then all three start in order
    assert [e for e in seen if e[0] == "stop"] == [("stop", "root/c", 1), ("stop", "root/a", 1)]
    assert [e for e in seen if e[0] == "start"] == [
        ("start", "root/a", 2), ("start", "root/b", 2), ("start", "root/c", 2)]


def test_rest_for_one_restarts_failed_and_later_children(trees: list, events: Any) -> None:
    tree = start(trees, three(Strategy.REST_FOR_ONE, events))
    tree.address("root/b").tell("crash")
    wait_for(lambda: incarnations(tree)["root/c"] == 2)
    wait_for(lambda: tree.describe("root/c")["state"] == "running")
    assert incarnations(tree) == {"root": 1, "root/a": 1, "root/b": 2, "root/c": 2}


# -- restart types ----------------------------------------------------------------------------


def test_permanent_child_is_restarted_after_a_normal_exit(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("p"),)))
    tree.address("root/p").tell("exit")
    wait_for(lambda: tree.describe("root/p")["incarnation"] == 2)


def test_transient_child_restarted_only_after_abnormal_exit(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("t", restart="transient"),)))
    crash_and_wait(tree, "root/t", 2)
    tree.address("root/t").tell("exit")
    wait_for(lambda: tree.describe("root/t")["state"] == "stopped")
    time.sleep(0.05)
    node = tree.describe("root/t")
    assert node["state"] == "stopped" and node["incarnation"] == 2
    with pytest.raises(ChildUnavailable):
        tree.address("root/t").ask("ping")


def test_temporary_child_is_never_restarted_and_stays_listed(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("tmp", restart="temporary"), worker("x"))))
    tree.address("root/tmp").tell("crash")
    wait_for(lambda: tree.describe("root/tmp")["state"] == "stopped")
    node = tree.describe("root/tmp")
    assert node["incarnation"] == 1 and node["restarts"] == 0
    assert node["last_failure"]["message"] == "crash requested"
    assert [c["name"] for c in tree.describe()["children"]] == ["tmp", "x"]


def test_temporary_child_under_one_for_all(trees: list, events: Any) -> None:
    spec = SupervisorSpec(
        "root", (worker("a", events), worker("tmp", events, restart="temporary"),
                 worker("c", events)), strategy="one_for_all", max_restarts=10)
    tree = start(trees, spec)
    # a temporary child's own crash restarts nobody
    tree.address("root/tmp").tell("crash")
    wait_for(lambda: tree.describe("root/tmp")["state"] == "stopped")
    assert incarnations(tree) == {"root": 1, "root/a": 1, "root/tmp": 1, "root/c": 1}
    # restart it by hand, then crash a sibling: the temporary child is stopped, not restarted
    tree.start_child("root/tmp")
    assert tree.describe("root/tmp")["incarnation"] == 2
    tree.address("root/c").tell("crash")
    wait_for(lambda: incarnations(tree)["root/a"] == 2 and incarnations(tree)["root/c"] == 2)
    wait_for(lambda: tree.describe("root/c")["state"] == "running")
    assert tree.describe("root/tmp")["state"] == "stopped"
    assert tree.describe("root/tmp")["incarnation"] == 2


# -- intensity and escalation -----------------------------------------------------------------


def test_intensity_one_in_ten_seconds_fails_on_second_crash(trees: list) -> None:
    clock = ManualClock()
    tree = start(trees, SupervisorSpec("root", (worker("w"),), max_restarts=1,
                                       within_seconds=10), clock=clock)
    failures: list[Any] = []
    tree.on_failure(failures.append)
    crash_and_wait(tree, "root/w", 2)  # the first crash is restarted
    clock.advance(9.0)
    tree.address("root/w").tell("crash")  # the second inside 10 s is one too many
    assert tree.done.wait(5)
    assert tree.failure is not None and tree.failure.error_type == "IntensityExceeded"
    assert failures == [tree.failure]
    assert tree.describe()["state"] == "failed"
    assert tree.describe("root/w")["state"] == "stopped"


def test_same_failures_spread_outside_the_window_are_restarted(trees: list) -> None:
    clock = ManualClock()
    tree = start(trees, SupervisorSpec("root", (worker("w"),), max_restarts=1,
                                       within_seconds=10), clock=clock)
    for n in range(2, 6):
        crash_and_wait(tree, "root/w", n)
        clock.advance(10.5)
    assert not tree.done.is_set()
    node = tree.describe("root/w")
    assert node["restarts"] == 4 and node["window_restarts"] == 0


def test_escalation_through_three_levels(trees: list, events: Any) -> None:
    leaf = SupervisorSpec("leaf", (worker("w", events),), max_restarts=0, within_seconds=10)
    mid = SupervisorSpec("mid", (leaf, worker("m", events)), max_restarts=0, within_seconds=10)
    root = SupervisorSpec("root", (worker("r", events), mid), max_restarts=1, within_seconds=10)
    tree = start(trees, root)
    tree.address("root/mid/leaf/w").tell("crash")
    wait_for(lambda: tree.describe("root/mid")["incarnation"] == 2
               and tree.describe("root/mid")["state"] == "running")
    assert incarnations(tree) == {
        "root": 1, "root/r": 1, "root/mid": 2, "root/mid/leaf": 2,
        "root/mid/leaf/w": 2, "root/mid/m": 2}
    assert tree.describe("root/mid")["last_failure"]["type"] == "IntensityExceeded"
    assert tree.address("root/mid/leaf/w").ask("ping") == ("pong", 2)
    # again inside the window: the root gives up too, and the whole tree stops
    tree.address("root/mid/leaf/w").tell("crash")
    assert tree.done.wait(5)
    assert tree.failure is not None and tree.failure.error_type == "IntensityExceeded"
    assert (tree.failure.message or "").startswith("root: more than 1 restarts in 10 s"), tree.failure
    assert all(n["state"] in ("stopped", "failed") for n in _walk(tree.describe()))


def _walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node["children"]:
        yield from _walk(child)


# -- ordering and start failures --------------------------------------------------------------


def test_start_in_order_and_stop_in_reverse_order(events: Any) -> None:
    sub = SupervisorSpec("sub", (worker("s1", events), worker("s2", events)))
    tree = SupervisionTree(SupervisorSpec("root", (worker("a", events), sub, worker("c", events))))
    tree.start()
    assert [e[1] for e in drain(events)] == ["root/a", "root/sub/s1", "root/sub/s2", "root/c"]
    tree.stop(timeout=5)
    assert [e[1] for e in drain(events)] == ["root/c", "root/sub/s2", "root/sub/s1", "root/a"]
    assert tree.describe()["state"] == "stopped"


def test_failure_during_start_counts_as_a_crash(trees: list, events: Any) -> None:
    spec = SupervisorSpec("root", (worker("flaky", events, fail_start=lambda n: n == 1),
                                   worker("after", events)), max_restarts=3)
    tree = start(trees, spec)
    node = tree.describe("root/flaky")
    assert node["state"] == "running" and node["incarnation"] == 2 and node["restarts"] == 1
    assert node["last_failure"]["message"] == "cannot start"
    # the next child started only after the flaky one was up
    assert [e[1:] for e in drain(events)] == [("root/flaky", 2), ("root/after", 1)]


def test_child_that_never_starts_fails_the_tree_start() -> None:
    spec = SupervisorSpec("root", (worker("bad", fail_start=lambda n: True),), max_restarts=2)
    tree = SupervisionTree(spec)
    with pytest.raises(IntensityExceeded, match="more than 2 restarts"):
        tree.start()
    assert tree.describe("root/bad")["incarnation"] == 3


def test_failure_in_init_counts_as_start_failure(trees: list) -> None:
    class BadInit(pykka.ThreadingActor):
        def __init__(self) -> None:
            raise ValueError("bad config")

    tree = SupervisionTree(SupervisorSpec("root", (WorkerSpec("b", BadInit),), max_restarts=1))
    with pytest.raises(IntensityExceeded):
        tree.start()
    assert tree.describe("root/b")["last_failure"]["type"] == "ValueError"


# -- what counts as a crash -------------------------------------------------------------------


def test_exception_in_ask_goes_to_the_caller_and_the_actor_lives(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("w"),)))
    with pytest.raises(RuntimeError, match="crash requested"):
        tree.address("root/w").ask("crash")
    assert tree.address("root/w").ask("ping") == ("pong", 1)


def test_base_exception_crashes_one_actor_not_all(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("a"), worker("b")), max_restarts=5))
    with pytest.raises(ChildCrashed, match="SystemExit"):
        tree.address("root/a").ask("system-exit")
    assert tree.address("root/a").wait_running(2, timeout=5)
    tree.address("root/a").tell("system-exit")
    wait_for(lambda: tree.describe("root/a")["incarnation"] == 3
               and tree.describe("root/a")["state"] == "running")
    assert tree.address("root/b").ask("ping") == ("pong", 1)
    assert tree.describe("root/a")["last_failure"]["type"] == "SystemExit"


# -- stable addresses -------------------------------------------------------------------------


def test_address_reaches_the_new_incarnation(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("w"),)))
    address = tree.address("root/w")
    assert address.ask("ping") == ("pong", 1)
    crash_and_wait(tree, "root/w", 2)
    assert address.ask("ping") == ("pong", 2)


def test_message_to_a_down_child_is_a_clear_error(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("w"),)))
    tree.stop_child("root/w")
    # at once, not after the ask's timeout (that would be AskTimeout)
    with pytest.raises(ChildUnavailable, match="root/w is stopped"):
        tree.address("root/w").ask("ping", timeout=60)
    with pytest.raises(ChildUnavailable):
        tree.address("root/w").tell("ping")
    with pytest.raises(UnknownChild):
        tree.address("root/nope")


def test_ask_in_flight_when_the_child_is_killed_fails_fast(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("w"),)))
    address = tree.address("root/w")
    ref = tree._slot("root/w").ref
    assert ref is not None
    busy = ref.ask("sleep", block=False)  # occupies the actor for 0.3 s
    time.sleep(0.05)
    queued = ref.ask("ping", block=False)  # waits in the inbox behind it
    tree.kill("root/w")
    with pytest.raises(pykka.ActorDeadError):
        queued.get(timeout=2)
    assert busy.get(timeout=2) == "slept"  # the running handler finishes its message
    assert address.ask("ping") == ("pong", 2)


def test_ask_timeout_is_a_clear_error(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("w"),)))
    with pytest.raises(AskTimeout, match="root/w did not answer"):
        tree.address("root/w").ask("sleep", timeout=0.05)


async def test_ask_async_does_not_block_the_loop(trees: list) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("w"), worker("v"))))
    slow = asyncio.create_task(tree.address("root/w").ask_async("sleep"))  # 0.3 s in the actor
    await asyncio.sleep(0)  # the slow ask is sent
    # a blocking ask would hold the loop until "slept": the fast one could not finish first
    assert await tree.address("root/v").ask_async("ping") == ("pong", 1)
    assert not slow.done()
    assert await slow == "slept"
    with pytest.raises(RuntimeError, match="crash requested"):
        await tree.address("root/w").ask_async("crash")
    with pytest.raises(AskTimeout):
        await tree.address("root/w").ask_async("sleep", timeout=0.05)


# -- backoff ----------------------------------------------------------------------------------


def test_backoff_delays_restarts_and_resets_after_quiet(trees: list) -> None:
    clock = ManualClock()
    backoff = Backoff(min_s=1.0, max_s=4.0, multiplier=2.0, reset_after_s=30.0)
    tree = start(trees, SupervisorSpec("root", (worker("w"),), max_restarts=100,
                                       within_seconds=5, backoff=backoff), clock=clock)
    for expected in (1.0, 2.0, 4.0, 4.0):
        tree.address("root/w").tell("crash")
        wait_for(lambda: clock.pending() != [])
        assert clock.pending() == [expected]
        assert tree.describe("root/w")["state"] == "restarting"
        with pytest.raises(ChildUnavailable, match="restarting"):
            tree.address("root/w").ask("ping")
        clock.advance(expected - 0.01)
        assert tree.describe("root/w")["state"] == "restarting"
        clock.advance(0.01)
        wait_for(lambda: tree.describe("root/w")["state"] == "running")
    clock.advance(31.0)  # a quiet period: the next restart starts from the minimum again
    tree.address("root/w").tell("crash")
    wait_for(lambda: clock.pending() != [])
    assert clock.pending() == [1.0]


def test_backoff_policy_bounds_and_jitter() -> None:
    b = Backoff(min_s=0.5, max_s=30.0, multiplier=1.5, jitter=0.2)
    assert b.delay(0, rng=lambda: 0.5) == pytest.approx(0.5)
    assert b.delay(2, rng=lambda: 0.5) == pytest.approx(1.125)
    assert b.delay(100, rng=lambda: 0.5) == pytest.approx(30.0)
    assert b.delay(0, rng=lambda: 0.0) == pytest.approx(0.4)
    assert b.delay(0, rng=lambda: 0.999999) == pytest.approx(0.6, abs=1e-5)
    with pytest.raises(ValueError):
        Backoff(min_s=2, max_s=1)


def test_no_backoff_means_restart_at_once(trees: list) -> None:
    clock = ManualClock()
    tree = start(trees, SupervisorSpec("root", (worker("w"),)), clock=clock)
    crash_and_wait(tree, "root/w", 2)  # without advancing the clock
    assert clock.pending() == []


# -- control API and introspection ------------------------------------------------------------


def test_kill_restart_stop_start_through_the_api(trees: list, events: Any) -> None:
    tree = start(trees, SupervisorSpec("root", (worker("w", events),), max_restarts=10))
    drain(events)
    node = tree.kill("root/w")
    assert node["incarnation"] == 2 and node["state"] == "running"
    assert node["last_failure"]["type"] == "Killed"
    assert ("stop", "root/w", 1) not in drain(events)  # a kill runs no on_stop
    assert tree.restart("root/w")["incarnation"] == 3
    assert drain(events) == [("stop", "root/w", 2), ("start", "root/w", 3)]
    assert tree.stop_child("root/w")["state"] == "stopped"
    assert tree.start_child("root/w")["incarnation"] == 4
    assert tree.address("root/w").ask("ping") == ("pong", 4)
    with pytest.raises(ValueError, match="root supervisor"):
        tree.kill("root")


class Owner(pykka.ThreadingActor):
    """Owns a resource per incarnation, released through ``on_exit``; may get stuck on request."""

    def __init__(self, log: queue.Queue[tuple[str, int]], release: threading.Event | None = None) -> None:
        super().__init__()
        self.log = log
        self.release = release

    def on_start(self) -> None:
        n = self.supervision.incarnation
        self.log.put(("start", n))
        self.supervision.on_exit(lambda: self.log.put(("closed", n)))
        self.supervision.on_exit(lambda: 1 / 0)  # a failing closer: logged, the others still run

    def on_receive(self, message: Any) -> Any:
        if message == "stuck" and self.release is not None:
            self.release.wait(30)
        return None


def test_a_killed_incarnation_is_released_before_the_next_starts(trees: list) -> None:
    """A kill runs neither on_stop nor on_failure, yet the closers run, before the restart."""
    log: queue.Queue[tuple[str, int]] = queue.Queue()
    tree = start(trees, SupervisorSpec("root", (WorkerSpec("w", Owner, args=(log,)),), max_restarts=10))
    tree.kill("root/w")
    tree.address("root/w").ask("ping")
    tree.restart("root/w")  # a graceful restart releases too
    assert [log.get(timeout=5) for _ in range(5)] == [
        ("start", 1), ("closed", 1), ("start", 2), ("closed", 2), ("start", 3)]


def test_a_stuck_incarnation_has_its_closers_run_by_the_supervisor(trees: list) -> None:
    log: queue.Queue[tuple[str, int]] = queue.Queue()
    release = threading.Event()
    spec = WorkerSpec("w", Owner, args=(log, release), shutdown_timeout=0.3)
    tree = start(trees, SupervisorSpec("root", (spec,), max_restarts=10))
    tree.address("root/w").tell("stuck")
    time.sleep(0.1)
    tree.kill("root/w")  # the thread is busy: the supervisor waits 0.3 s, then releases for it
    try:
        assert [log.get(timeout=5) for _ in range(3)] == [("start", 1), ("closed", 1), ("start", 2)]
    finally:
        release.set()
    time.sleep(0.2)
    assert log.empty()  # once each: the old thread, unstuck, finds nothing left to close


def test_closers_run_last_first_and_one_added_after_the_end_runs_at_once(trees: list) -> None:
    """Found by review: a stuck thread that woke after its kill and opened something (an MCP
    server finishing its start) registered a closer nobody would ever run."""
    tree = start(trees, SupervisorSpec("root", (worker("w"),)))
    context = ChildContext("root/w", 1, tree)
    ran: list[str] = []
    for name in ("pool", "decoder", "file"):
        context.on_exit(lambda name=name: ran.append(name))
    assert context.close(1.0) and ran == ["file", "decoder", "pool"]
    context.on_exit(lambda: ran.append("late"))
    assert ran[-1] == "late"


def test_close_waits_for_a_closer_another_thread_is_running(trees: list) -> None:
    """Found by review: the supervisor's close() found the list empty while the dying thread
    was still inside its last save, and the next incarnation started beside it."""
    tree = start(trees, SupervisorSpec("root", (worker("w"),)))
    context = ChildContext("root/w", 1, tree)
    inside, release, done = threading.Event(), threading.Event(), threading.Event()

    def slow_save() -> None:
        inside.set()
        release.wait(5)
        done.set()

    context.on_exit(slow_save)
    dying = threading.Thread(target=context.close)
    dying.start()
    assert inside.wait(5)
    assert not context.close(0.2)  # still running on the other thread: said so
    threading.Timer(0.2, release.set).start()
    assert context.close(5) and done.is_set()
    dying.join(5)


def test_describe_has_every_key(trees: list) -> None:
    sub = SupervisorSpec("sub", (worker("x"),), strategy="rest_for_one")
    tree = start(trees, SupervisorSpec("root", (worker("w"), sub)))
    root = tree.describe()
    keys = {"name", "path", "kind", "state", "restart", "restarts", "window_restarts",
            "incarnation", "uptime_s", "mailbox", "last_failure", "children"}
    for node in _walk(root):
        assert keys <= set(node)
    assert root["strategy"] == "one_for_one" and root["children"][1]["strategy"] == "rest_for_one"
    assert root["children"][1]["children"][0]["path"] == "root/sub/x"
    assert root["children"][0]["kind"] == "worker" and root["children"][1]["kind"] == "supervisor"
    import json
    json.dumps(root)


def test_keep_survives_restarts(trees: list) -> None:
    class Keeper(pykka.ThreadingActor):
        def on_start(self) -> None:
            self.value = self.supervision.kept(0)

        def on_receive(self, message: Any) -> Any:
            if message == "crash":
                raise RuntimeError("x")
            self.value += 1
            self.supervision.keep(self.value)
            return self.value

    tree = start(trees, SupervisorSpec("root", (WorkerSpec("k", Keeper),)))
    assert tree.address("root/k").ask("inc") == 1
    crash_and_wait(tree, "root/k", 2)
    assert tree.address("root/k").ask("inc") == 2


# -- leaks ------------------------------------------------------------------------------------


def test_thousand_crash_restart_cycles_leave_nothing_behind() -> None:
    threads_before = threading.active_count()
    tree = SupervisionTree(SupervisorSpec("root", (worker("w"), worker("v")),
                                          max_restarts=100_000, within_seconds=1))
    tree.start()
    address = tree.address("root/w")
    for n in range(2, 1002):
        address.tell("crash")
        while True:
            try:
                if address.ask("ping", timeout=2)[1] == n:
                    break
            except ChildUnavailable:
                time.sleep(0)
    assert tree.describe("root/w")["restarts"] == 1000
    assert len(pykka.ActorRegistry.get_all()) == 3  # root, w, v
    wait_for(lambda: threading.active_count() == threads_before + 3)
    tree.stop(timeout=5)
    wait_for(lambda: threading.active_count() == threads_before)
    assert pykka.ActorRegistry.get_all() == []


def test_a_child_limit_of_its_own_escalates(trees: list) -> None:
    clock = ManualClock()
    spec = SupervisorSpec("root", (
        WorkerSpec("strict", Probe, max_restarts=1, within_seconds=10),
        worker("lenient")), max_restarts=100, within_seconds=10)
    tree = start(trees, spec, clock=clock)
    crash_and_wait(tree, "root/lenient", 2)
    crash_and_wait(tree, "root/lenient", 3)
    crash_and_wait(tree, "root/strict", 2)
    tree.address("root/strict").tell("crash")
    assert tree.done.wait(5)
    assert "more than 1 restarts in 10 s" in (tree.failure.message or "")


def test_a_child_backoff_of_its_own(trees: list) -> None:
    clock = ManualClock()
    spec = SupervisorSpec("root", (WorkerSpec("w", Probe, backoff=Backoff(min_s=3, max_s=3)),))
    tree = start(trees, spec, clock=clock)
    tree.address("root/w").tell("crash")
    wait_for(lambda: clock.pending() == [3.0])
    clock.advance(3)
    assert tree.address("root/w").wait_running(2, timeout=5)


def test_base_exception_in_on_start_is_a_start_failure(trees: list) -> None:
    class ExitsAtStart(pykka.ThreadingActor):
        def on_start(self) -> None:
            if self.supervision.incarnation == 1:
                raise SystemExit(2)

        def on_receive(self, message: Any) -> Any:
            return self.supervision.incarnation

    tree = start(trees, SupervisorSpec("root", (WorkerSpec("x", ExitsAtStart, restart="transient"),)))
    node = tree.describe("root/x")
    assert node["state"] == "running" and node["incarnation"] == 2
    assert node["last_failure"]["type"] == "SystemExit"
    assert tree.address("root/x").ask("hi") == 2


def test_admin_stop_during_a_shared_backoff_keeps_the_others_waiting(trees: list) -> None:
    clock = ManualClock()
    spec = SupervisorSpec("root", (worker("a"), worker("b"), worker("c")), strategy="one_for_all",
                          max_restarts=10, within_seconds=60, backoff=Backoff(min_s=2, max_s=2))
    tree = start(trees, spec, clock=clock)
    tree.address("root/a").tell("crash")
    wait_for(lambda: clock.pending() == [2.0])
    assert tree.stop_child("root/b")["state"] == "stopped"
    assert clock.pending() == [2.0]  # a and c still wait on the shared timer
    clock.advance(2)
    assert tree.address("root/a").wait_running(2, timeout=5)
    assert tree.address("root/c").wait_running(2, timeout=5)
    assert tree.describe("root/b")["state"] == "stopped"


async def test_ask_async_passes_the_actors_own_timeout_error_through(trees: list) -> None:
    class Slow(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            raise TimeoutError("the peer was slow")

    tree = start(trees, SupervisorSpec("root", (WorkerSpec("s", Slow),)))
    with pytest.raises(TimeoutError, match="the peer was slow"):
        await tree.address("root/s").ask_async("x", timeout=5)
