"""``[server]``: the front end's settings, the one schema of its keys (docs/configuration.md).
Built by ``hive/config.py``; transport reads nothing else of the configuration."""

from __future__ import annotations

from dataclasses import dataclass

from actors.schema import SettingError, Settings, seconds, setting
from transport.relay_policy import DEFAULT_RELAY_TOOLS
from transport.security import is_origin

__all__ = ["MiB", "ServerSettings"]


MiB = 1024 * 1024


@dataclass(frozen=True)
class ServerSettings(Settings):
    host: str = "127.0.0.1"
    port: int = setting(8080, lo=0, hi=65535)  # 0 picks a free port
    admin_token: str = setting("", secret=True)  # empty: made once, kept in <state_dir>/admin-token
    api_token: str = setting("", secret=True)  # changes need it when set; required beyond loopback
    allowed_origins: tuple[str, ...] = ()  # browser origins; empty: this daemon's own
    allowed_hosts: tuple[str, ...] = ()  # Host names besides IP literals and localhost
    relay_tools: tuple[str, ...] = DEFAULT_RELAY_TOOLS  # what /ws/mcp-relay forwards
    state_dir: str = ".hive-state"  # runtime state: tokens, MCP and swarm folders
    max_ws_message_bytes: int = setting(4 * MiB, lo=1024)
    max_body_bytes: int = setting(64 * MiB, lo=1024)
    max_clients: int = setting(1000, lo=1)  # WebSocket clients, all routes together
    ping_interval_s: float = seconds(5.0, lo=0.1)
    idle_timeout_s: float = seconds(30.0, lo=1.0)  # a silent WebSocket client is closed (1008)
    header_timeout_s: float = seconds(20.0, lo=0.5)  # a connection's first request headers, whole
    shutdown_timeout_s: float = seconds(5.0, lo=0.5)
    mcp_session_ttl_s: float = seconds(1800.0, lo=1.0)  # an MCP session idle this long ends (/mcp)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.host.strip():
            raise SettingError("host", "must name an address (127.0.0.1 is loopback, 0.0.0.0 every IPv4 address)")
        for origin in self.allowed_origins:
            if not is_origin(origin):
                raise SettingError("allowed_origins", f"{origin[:80]!r} is not an origin "
                                   f"(scheme://host[:port], http or https; there is no wildcard)")
