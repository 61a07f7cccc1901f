"""Supervision overhead: supervised vs bare pykka actors, measured in the same run.

* ``tell`` throughput through an :class:`~supervisor.Address` vs ``ActorRef.tell`` (target: the
  supervised rate is at least 0.9 of the bare one);
* ``ask`` round-trip median, supervised vs bare;
* restart latency from a crash to the first answered ask of the new incarnation (target: median
  under 1 ms), next to a hand-written pykka restart (stop noticed, start, ask) as the baseline.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import pykka
import structlog

from supervisor import SupervisionTree, SupervisorSpec, WorkerSpec

TELLS = 200_000
ASKS = 5_000
RESTARTS = 500
ROUNDS = 3


class Counter(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def on_receive(self, message: Any) -> Any:
        if message == "crash":
            raise RuntimeError("crash")
        if message == "get":
            return self.count
        self.count += 1
        return None


def _tell_rate(tell: Any, ask: Any) -> float:
    started = time.perf_counter()
    for _ in range(TELLS):
        tell("inc")
    ask("get")  # the inbox is drained once this answers
    return TELLS / (time.perf_counter() - started)


def _ask_median_us(ask: Any) -> float:
    samples = []
    for _ in range(ASKS):
        t0 = time.perf_counter()
        ask("get")
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples) * 1e6


def _supervised_restarts(tree: SupervisionTree) -> list[float]:
    address = tree.address("root/c")
    samples = []
    for _ in range(RESTARTS):
        target = address.incarnation + 1
        t0 = time.perf_counter()
        address.tell("crash")
        address.wait_running(target, timeout=5)
        address.ask("get")
        samples.append(time.perf_counter() - t0)
    return samples


def _hand_restarts() -> list[float]:
    """The minimum a hand-written restart costs: notice the stop, start anew, ask."""
    samples = []
    ref = Counter.start()
    for _ in range(RESTARTS):
        t0 = time.perf_counter()
        ref.tell("crash")
        ref.actor_stopped.wait()
        ref = Counter.start()
        ref.ask("get")
        samples.append(time.perf_counter() - t0)
    ref.stop()
    return samples


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3


def main() -> int:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    import logging

    logging.getLogger("pykka").setLevel(logging.CRITICAL)
    tree = SupervisionTree(SupervisorSpec(
        "root", (WorkerSpec("c", Counter),), max_restarts=1_000_000, within_seconds=1))
    tree.start()
    bare = Counter.start()
    address = tree.address("root/c")
    try:
        bare_rates, sup_rates, bare_asks, sup_asks = [], [], [], []
        for _ in range(ROUNDS):  # interleaved, so that drift on a noisy machine hits both
            bare_rates.append(_tell_rate(bare.tell, lambda m: bare.ask(m)))
            sup_rates.append(_tell_rate(address.tell, address.ask))
            bare_asks.append(_ask_median_us(lambda m: bare.ask(m)))
            sup_asks.append(_ask_median_us(address.ask))
        sup_restart = _supervised_restarts(tree)
        hand_restart = _hand_restarts()
    finally:
        bare.stop()
        tree.stop(timeout=5)
    bare_rate, sup_rate = max(bare_rates), max(sup_rates)
    bare_ask, sup_ask = min(bare_asks), min(sup_asks)
    ratio = sup_rate / bare_rate
    rmed, rp99 = _p(sup_restart, 0.5), _p(sup_restart, 0.99)
    hmed, hp99 = _p(hand_restart, 0.5), _p(hand_restart, 0.99)
    print(f"{'measure':34} {'supervised':>12} {'bare pykka':>12} {'ratio':>7}  target")
    print(f"{'tell msgs/s (best of 3)':34} {sup_rate:12,.0f} {bare_rate:12,.0f} {ratio:7.3f}  "
          f">= 0.90 {'PASS' if ratio >= 0.9 else 'MISS'}")
    print(f"{'ask round trip median (us)':34} {sup_ask:12.1f} {bare_ask:12.1f} "
          f"{sup_ask / bare_ask:7.3f}")
    print(f"{'restart -> first answer median (ms)':34} {rmed:12.3f} {hmed:12.3f} "
          f"{rmed / hmed:7.3f}  < 1 ms {'PASS' if rmed < 1.0 else 'MISS'}")
    print(f"{'restart -> first answer p99 (ms)':34} {rp99:12.3f} {hp99:12.3f} {rp99 / hp99:7.3f}")
    print(f"threads left: {threading.active_count()}")
    return 0
