"""The MCP actor and its engine: the agents' data plane.

``actor`` (the actor), ``messages`` and ``errors`` (what callers import), ``settings`` (the
``[actors.mcp]`` schema), ``jsonrpc`` (one newline-delimited JSON-RPC connection), ``pool``
(sharded connections behind the circuit breaker), ``servers`` (how connections are made:
claude-flow processes over stdio, or TCP), ``telemetry`` (agents and swarms from the answers).
"""

from __future__ import annotations

__all__: list[str] = []
