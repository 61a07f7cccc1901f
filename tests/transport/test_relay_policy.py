"""Bounds on what a forwarded claude-flow call carries (the second probe round: claude-flow
stored a 4 MiB ``config`` per ``agent_spawn`` and a 2.7 MB ``tags`` array)."""

from __future__ import annotations

from transport.relay_policy import ARGUMENT_LIMITS, DEFAULT_RELAY_TOOLS, RelayPolicy

POLICY = RelayPolicy.of(DEFAULT_RELAY_TOOLS)


def problem(name: str, arguments: object) -> str | None:
    return POLICY.argument_problem("tools/call", {"name": name, "arguments": arguments})


def test_ordinary_calls_pass() -> None:
    assert problem("agent_spawn", {"agentType": "coder", "agentId": "a1"}) is None
    assert problem("task_create", {"type": "code", "description": "write it", "tags": ["a", "b"]}) is None
    assert problem("agent_list", None) is None
    assert POLICY.argument_problem("tools/list", {}) is None


def test_each_limit_is_named_when_passed() -> None:
    limits = ARGUMENT_LIMITS
    cases = {
        "bytes of JSON; this daemon forwards at most 65536": {"config": {"x": "a" * 8000} | {
            f"k{i}": "b" * 8000 for i in range(9)}},
        f"string of {limits.string_chars + 1} characters": {"name": "n" * (limits.string_chars + 1)},
        f"has {limits.items + 1} entries": {"tags": ["t"] * (limits.items + 1)},
        "nested deeper than 8": {"config": [[[[[[[[["deep"]]]]]]]]]},
        "may hold at most 16384": {"config": {f"k{i}": "v" * 1000 for i in range(20)}},
    }
    for expected, arguments in cases.items():
        found = problem("agent_spawn", arguments)
        assert found is not None and expected in found, (expected, found)
        assert "docs/security.md" in found


def test_per_field_bounds_are_for_the_tools_that_store_data() -> None:
    wide = {"filter": {f"k{i}": "v" * 1000 for i in range(20)}}  # 20 KiB in one field
    assert problem("agent_list", wide) is None
    assert problem("task_create", wide) is not None
