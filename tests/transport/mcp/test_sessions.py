"""MCP sessions: past the limit a new one is refused, and no open one is ever ended for it
(the second probe round: 1,000 ``initialize`` calls from a stranger ended every session)."""

from __future__ import annotations

from transport.mcp.sessions import HANDSHAKE_TTL_S, MAX_SESSIONS, SessionStore


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_past_the_limit_initialize_is_refused_and_nobody_is_evicted() -> None:
    clock = Clock()
    store = SessionStore(lambda: 1800.0, clock)
    first = store.create("2025-11-25", {})
    assert first is not None
    first.initialized = True
    for _ in range(MAX_SESSIONS - 1):
        clock.now += 0.001
        made = store.create("2025-11-25", {})
        assert made is not None
        made.initialized = True
    assert store.create("2025-11-25", {}) is None
    assert len(store) == MAX_SESSIONS and store.get(first.id) is first  # the oldest, idle, lives


async def test_a_session_that_never_came_back_frees_its_place_after_the_handshake_ttl() -> None:
    clock = Clock()
    store = SessionStore(lambda: 1800.0, clock)
    half_made = store.create("2025-11-25", {})
    done = store.create("2025-11-25", {})
    assert half_made is not None and done is not None
    done.initialized = True
    clock.now = HANDSHAKE_TTL_S + 1
    store.sweep()
    assert store.get(half_made.id) is None and store.get(done.id) is done
    clock.now += 1800.5
    assert store.get(done.id) is None  # the configured ttl still ends an idle session
