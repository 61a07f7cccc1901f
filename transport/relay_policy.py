"""Which of the MCP servers' tools the daemon forwards for someone else.

claude-flow offers 350+ tools, and some run commands or code on this host
(``terminal_execute``, ``agent_execute``, ``workflow_execute``), write files or configuration,
or fetch URLs. The daemon itself needs a handful; a client of ``/ws/mcp-relay`` gets exactly
those on :data:`DEFAULT_RELAY_TOOLS` unless the operator lists others in ``[server]
relay_tools`` (see docs/security.md). Anything else is refused with a JSON-RPC error that names
this policy, and ``tools/list`` shows only what is allowed.

What a forwarded call carries is bounded too (:data:`ARGUMENT_LIMITS`). Found by the second
probe round: claude-flow stores what its agent and task tools are given, so four
``agent_spawn`` calls with a 4 MiB ``config`` grew one pool member's ``agents/store.json`` to
16.8 MB, and that member's telemetry poll cost eight times the others' from then on. A call
past a limit is refused with -32602 (invalid params), naming the limit, and never forwarded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ARGUMENT_LIMITS",
    "DEFAULT_RELAY_TOOLS",
    "FORWARDED_METHODS",
    "POLICY_DENIED",
    "STORING_TOOLS",
    "ArgumentLimits",
    "RelayPolicy",
    "risky_tools",
]


# Read-only tools and the swarm, agent and task tools the daemon itself uses. No tool that
# runs a command or code, writes files or configuration, or reaches the network.
DEFAULT_RELAY_TOOLS: tuple[str, ...] = (
    "agent_list", "agent_status", "agent_health", "agent_spawn", "agent_terminate",
    "swarm_init", "swarm_status", "swarm_health", "swarm_shutdown",
    "task_create", "task_status", "task_list", "task_update", "task_assign", "task_cancel",
    "task_complete", "task_summary",
    "hive-mind_status", "system_status", "system_health", "system_metrics", "mcp_status",
)
# JSON-RPC methods the relay forwards at all (``initialize`` is answered by the relay itself,
# notifications are absorbed). Resources and prompts are not offered.
FORWARDED_METHODS = frozenset({"ping", "tools/list", "tools/call"})
# The JSON-RPC error code for "refused by this relay's policy" (implementation-defined range).
POLICY_DENIED = -32001
# Names that look like a way to run something or write somewhere: allowed only when listed on
# purpose, and then said loudly at start-up.
_RISKY = re.compile(
    r"terminal|shell|exec|process|command|run|write|file|config_(set|import|reset)|workflow|"
    r"browser|http_fetch|download|import|reset|train|github|federation|wasm|managed_agent",
    re.IGNORECASE,
)


# Tools whose arguments claude-flow keeps (agents/store.json, tasks/store.json, the swarm's
# state): each top-level field of theirs is bounded on its own as well.
STORING_TOOLS = frozenset({
    "agent_spawn", "swarm_init", "task_create", "task_update", "task_assign", "task_complete",
})


@dataclass(frozen=True)
class ArgumentLimits:
    """Bounds on one forwarded ``tools/call``'s ``arguments`` (sizes as compact UTF-8 JSON)."""

    call_bytes: int = 64 * 1024  # the whole arguments object, any tool
    field_bytes: int = 16 * 1024  # one top-level field of a tool in STORING_TOOLS
    string_chars: int = 8 * 1024  # any one string, at any depth
    items: int = 256  # entries of any one array or object
    depth: int = 8  # nesting of arrays and objects

    def problem(self, tool: str, arguments: Any) -> str | None:
        """Why ``arguments`` are refused for ``tool``, naming the limit; None when they pass.
        Runs on the event loop, so its cost is bounded by the limits, not by what was sent: the
        walk stops at the first limit passed (its running count of characters included), and
        the exact encoding is made only of arguments already known to be small."""
        if arguments is None:
            return None
        budget = [self.call_bytes]
        found = self._walk(arguments, "arguments", 0, budget)
        if found is None and budget[0] < 0:
            found = f"more than {self.call_bytes}"
        if found is not None and found.startswith("more than"):
            return (f"{tool}'s arguments are {found} bytes of JSON; this daemon forwards at most "
                    f"{self.call_bytes} per call (docs/security.md)")
        if found is not None:
            return f"{tool}: {found} (docs/security.md)"
        try:
            size = len(json.dumps(arguments, separators=(",", ":"), ensure_ascii=False).encode())
        except (TypeError, ValueError, RecursionError):
            return "arguments must be JSON"
        if size > self.call_bytes:
            return (f"{tool}'s arguments are {size} bytes of JSON; this daemon forwards at most "
                    f"{self.call_bytes} per call (docs/security.md)")
        if tool in STORING_TOOLS and isinstance(arguments, Mapping):
            for key, value in arguments.items():
                field = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
                if field > self.field_bytes:
                    return (f"{tool}: arguments.{str(key)[:60]} is {field} bytes of JSON; a field "
                            f"of a tool that stores what it is given may hold at most "
                            f"{self.field_bytes} (docs/security.md)")
        return None

    def _walk(self, value: Any, where: str, depth: int, budget: list[int]) -> str | None:
        """The first limit ``value`` passes; ``budget`` counts down the characters seen (at
        least what their JSON takes), and the walk stops once it is spent."""
        if isinstance(value, str):
            budget[0] -= len(value) + 3
            if len(value) > self.string_chars:
                return f"{where} is a string of {len(value)} characters; the limit is {self.string_chars}"
            return f"more than {self.call_bytes}" if budget[0] < 0 else None
        budget[0] -= 2
        if not isinstance(value, list | dict):
            return None
        if depth >= self.depth:
            return f"{where} is nested deeper than {self.depth} levels"
        if len(value) > self.items:
            return f"{where} has {len(value)} entries; the limit is {self.items}"
        entries = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in entries:
            if isinstance(value, dict):
                budget[0] -= len(str(key)) + 3
                if len(str(key)) > self.string_chars:
                    return (f"{where} has a key of {len(str(key))} characters; the limit is "
                            f"{self.string_chars}")
            found = self._walk(item, f"{where}.{str(key)[:60]}" if isinstance(value, dict)
                               else f"{where}[{key}]", depth + 1, budget)
            if found is not None:
                return found
            if budget[0] < 0:
                return f"more than {self.call_bytes}"
        return None


ARGUMENT_LIMITS = ArgumentLimits()


def risky_tools(names: Iterable[str]) -> list[str]:
    """The names on an allow-list that look like command execution, file or config writes."""
    return sorted(name for name in names if _RISKY.search(name))


@dataclass(frozen=True)
class RelayPolicy:
    tools: frozenset[str]
    limits: ArgumentLimits = ARGUMENT_LIMITS

    @classmethod
    def of(cls, names: Iterable[str]) -> RelayPolicy:
        return cls(frozenset(names))

    def refusal(self, method: str, params: Any) -> str | None:
        """Why this request is not forwarded, or None when it may be."""
        if method not in FORWARDED_METHODS:
            return (f"method {method[:100]!r} is not forwarded by this relay (policy: only "
                    f"{', '.join(sorted(FORWARDED_METHODS))}); see docs/security.md")
        if method == "tools/call":
            name = params.get("name") if isinstance(params, Mapping) else None
            if not isinstance(name, str):
                return "tools/call needs params.name, a tool name"
            if name not in self.tools:
                return (f"tool {name[:100]!r} is not on this relay's allow-list ([server] "
                        f"relay_tools); see docs/security.md")
        return None

    def argument_problem(self, method: str, params: Any) -> str | None:
        """Why a call's arguments are too big to forward (for -32602), or None."""
        if method != "tools/call" or not isinstance(params, Mapping):
            return None
        return self.limits.problem(str(params.get("name"))[:100], params.get("arguments"))

    def filter_listing(self, result: Any) -> Any:
        """A ``tools/list`` result with only the allowed tools in it."""
        if not isinstance(result, Mapping) or not isinstance(result.get("tools"), list):
            return {"tools": []}  # an answer of a shape we do not know passes nothing through
        tools = [t for t in result["tools"]
                 if isinstance(t, Mapping) and t.get("name") in self.tools]
        return {**result, "tools": tools}
