"""The one circuit breaker, driven by an injected clock: every state change it promises."""

from __future__ import annotations

import pytest

from actors.circuit_breaker import BreakerOpen, BreakerSettings, BreakerState, CircuitBreaker
from supervisor import ManualClock

SETTINGS = BreakerSettings(failure_threshold=3, recovery_timeout_s=10.0, success_threshold=2)


def tripped(clock: ManualClock) -> CircuitBreaker:
    breaker = CircuitBreaker("peer", SETTINGS, clock=clock.now)
    for _ in range(SETTINGS.failure_threshold):
        breaker.failure(ConnectionError("refused"))
    return breaker


def test_opens_after_threshold_consecutive_failures_only() -> None:
    breaker = CircuitBreaker("peer", SETTINGS, clock=ManualClock().now)
    breaker.failure("one")
    breaker.failure("two")
    breaker.success()  # a success in between resets the count
    breaker.failure("three")
    breaker.failure("four")
    assert breaker.state is BreakerState.CLOSED
    breaker.check()
    breaker.failure("five")
    assert breaker.state is BreakerState.OPEN
    assert breaker.trips == 1


def test_open_fails_fast_with_the_last_error_and_time_to_retry() -> None:
    clock = ManualClock()
    breaker = tripped(clock)
    clock.advance(4.0)
    calls: list[int] = []
    with pytest.raises(BreakerOpen) as info:
        breaker.call(lambda: calls.append(1))
    assert calls == []  # the peer was not called
    assert info.value.retry_in_s == pytest.approx(6.0)
    assert info.value.last_error == "ConnectionError: refused"
    assert "peer circuit breaker is open" in str(info.value)


def test_half_open_after_recovery_timeout_then_closes_after_success_threshold() -> None:
    clock = ManualClock()
    breaker = tripped(clock)
    clock.advance(9.9)
    assert breaker.state is BreakerState.OPEN
    clock.advance(0.1)
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.call(lambda: "first trial") == "first trial"
    assert breaker.state is BreakerState.HALF_OPEN  # one success is not enough (threshold 2)
    assert breaker.call(lambda: "second trial") == "second trial"
    assert breaker.state is BreakerState.CLOSED
    assert breaker.trips == 1


def test_one_failure_while_half_open_reopens_for_a_full_timeout() -> None:
    clock = ManualClock()
    breaker = tripped(clock)
    clock.advance(10.0)
    breaker.success()
    assert breaker.state is BreakerState.HALF_OPEN
    with pytest.raises(TimeoutError):
        breaker.call(lambda: (_ for _ in ()).throw(TimeoutError("slow")))
    assert breaker.state is BreakerState.OPEN
    assert breaker.trips == 2
    clock.advance(9.0)
    with pytest.raises(BreakerOpen):
        breaker.check()
    clock.advance(1.0)
    assert breaker.state is BreakerState.HALF_OPEN
    # the successes counted before the re-trip do not carry over
    breaker.success()
    assert breaker.state is BreakerState.HALF_OPEN


def test_a_peers_well_formed_no_does_not_count_against_it() -> None:
    breaker = CircuitBreaker("peer", SETTINGS, clock=ManualClock().now)

    def refuse() -> None:
        raise ValueError("unknown tool")

    for _ in range(SETTINGS.failure_threshold + 2):
        with pytest.raises(ValueError):
            breaker.call(refuse, is_failure=lambda exc: not isinstance(exc, ValueError))
    assert breaker.state is BreakerState.CLOSED
    assert breaker.describe() == {"state": "closed", "trips": 0, "last_error": None}


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError):
        BreakerSettings(failure_threshold=0)
    with pytest.raises(ValueError):
        BreakerSettings(recovery_timeout_s=-1.0)
