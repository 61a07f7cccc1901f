"""Which of the MCP servers' tools the daemon forwards for someone else.

claude-flow offers 350+ tools, and some run commands or code on this host
(``terminal_execute``, ``agent_execute``, ``workflow_execute``), write files or configuration,
or fetch URLs. The daemon itself needs a handful; a client of ``/ws/mcp-relay`` gets exactly
those on :data:`DEFAULT_RELAY_TOOLS` unless the operator lists others in ``[server]
relay_tools`` (see docs/security.md). Anything else is refused with a JSON-RPC error that names
this policy, and ``tools/list`` shows only what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_RELAY_TOOLS",
    "FORWARDED_METHODS",
    "POLICY_DENIED",
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


def risky_tools(names: Iterable[str]) -> list[str]:
    """The names on an allow-list that look like command execution, file or config writes."""
    return sorted(name for name in names if _RISKY.search(name))


@dataclass(frozen=True)
class RelayPolicy:
    tools: frozenset[str]

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

    def filter_listing(self, result: Any) -> Any:
        """A ``tools/list`` result with only the allowed tools in it."""
        if not isinstance(result, Mapping) or not isinstance(result.get("tools"), list):
            return {"tools": []}  # an answer of a shape we do not know passes nothing through
        tools = [t for t in result["tools"]
                 if isinstance(t, Mapping) and t.get("name") in self.tools]
        return {**result, "tools": tools}
