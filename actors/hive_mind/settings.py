"""``[actors.hive_mind]``: the hive-mind actor's settings, the one schema of its keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from actors.circuit_breaker import DOCKER_BREAKER, BreakerSettings
from actors.schema import SettingError, Settings, internal, seconds, setting

__all__ = ["SPAWN_COMMANDS", "HiveMindSettings"]


SPAWN_COMMANDS = 4  # a spawn runs hive-mind init, task, spawn and status, retried as one action


@dataclass(frozen=True)
class HiveMindSettings(Settings):
    backend: Literal["local", "docker"] = "local"
    container: str = "multi-agent-container"  # docker
    docker_url: str = ""  # docker; empty: the environment's (DOCKER_HOST or the local socket)
    # docker, several engines: each new swarm on the least loaded one that is up (docs/agents.md)
    docker_urls: tuple[str, ...] = ()
    cli: tuple[str, ...] = ()  # empty: the project's claude-flow (local) / "claude-flow" (docker)
    sessions_dir: str = ""  # empty: <[server] state_dir>/sessions (local), /tmp/hive-sessions (docker)
    command_timeout_s: float = seconds(30.0, lo=0.1)
    retries: int = setting(3, lo=0, hi=10)
    retry_delay_s: float = seconds(1.0)
    health_interval_s: float = seconds(30.0, lo=0.5)
    refresh_interval_s: float = seconds(2.0, lo=0.05)  # the background re-read of the sessions
    workers: int = setting(2, lo=1, hi=100)
    command_workers: int = setting(4, lo=1, hi=64)  # threads that run spawns (and, apart, stops)
    max_queued: int = setting(100, lo=1)  # spawns queued or running; more get 503 (stops never)
    keep_finished_s: float = setting(7 * 86400.0, lo=0)  # a finished swarm is removed this long after
    keep_finished: int = setting(1000, lo=0)  # finished swarms kept at most (the newest)
    breaker: BreakerSettings = internal(DOCKER_BREAKER)
    mcp: str = internal("mcp")  # sibling told about new workers ("" to skip)
    records_dir: str = internal("")  # the daemon's own records; the tree puts them in state_dir
    # in a cluster: no backend, no jobs, until told TakeCharge (swarms are the leader's)
    standby: bool = internal(False)
    leader: str = internal("")  # on standby: the sibling that forwards spawns and stops ("cluster")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.docker_url and self.docker_urls:
            raise SettingError("docker_urls", "set docker_url (one engine) or docker_urls "
                                              "(several), not both")
        if len(set(self.docker_urls)) != len(self.docker_urls) or not all(self.docker_urls):
            raise SettingError("docker_urls", "each engine once, none empty")

    @property
    def engines(self) -> tuple[str, ...]:
        """The Docker engines' URLs: ``docker_urls``, else ``docker_url`` ("" is the
        environment's engine)."""
        return self.docker_urls or (self.docker_url,)

