"""``[actors.mcp]``: the MCP actor's settings, the one schema of its keys (docs/configuration.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actors.circuit_breaker import MCP_BREAKER, BreakerSettings
from actors.schema import Settings, internal, seconds, setting
from supervisor import Backoff

__all__ = ["McpSettings"]


@dataclass(frozen=True)
class McpSettings(Settings):
    transport: Literal["stdio", "tcp"] = "stdio"
    host: str = "127.0.0.1"  # tcp
    port: int = setting(9500, lo=1, hi=65535)  # tcp
    command: tuple[str, ...] = ()  # stdio; empty: the project's claude-flow, `mcp start`
    pool_size: int = setting(4, lo=1, hi=64)
    poll_interval_s: float = seconds(1.0, lo=0.05)
    call_timeout_s: float = seconds(10.0, lo=0.1)
    handshake_timeout_s: float = seconds(5.0, lo=0.1)
    state_dir: str = ""  # the servers' working folders; empty: <[server] state_dir>/mcp
    maintain_every_calls: int = setting(50, lo=10)
    breaker: BreakerSettings = internal(MCP_BREAKER)
    backoff: Backoff = internal(default_factory=lambda: Backoff(0.5, 30.0, 1.5, jitter=0.2))
    layout: str = internal("gpu_layout")  # sibling that receives the agent graph
