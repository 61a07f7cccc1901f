"""Build the root supervisor's spec from the configuration.

The root's direct children, in start order: ``gpu_layout``, ``mcp``, ``hive_mind``, ``speech``,
``health``. An actor with ``enabled = false`` is left out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from actors.gpu_layout import LayoutActor, LayoutSettings
from actors.health import HealthActor, HealthSettings
from actors.hive_mind.actor import HiveMindActor, HiveMindSettings
from actors.mcp.actor import McpActor, McpSettings
from actors.speech.actor import SpeechActor, SpeechActorSettings
from actors.speech.factory import SpeechSettings
from hive.config import Config
from supervisor import Backoff, SupervisorSpec, WorkerSpec

__all__ = ["build_root"]


def _worker(
    name: str, actor: type, settings: Any, cfg: Mapping[str, Any], start_timeout: float = 30.0
) -> WorkerSpec:
    backoff = None
    if cfg["backoff_min"] is not None or cfg["backoff_max"] is not None:
        lo = cfg["backoff_min"] if cfg["backoff_min"] is not None else 1.0
        hi = cfg["backoff_max"] if cfg["backoff_max"] is not None else max(lo, 60.0)
        backoff = Backoff(min_s=lo, max_s=hi, multiplier=2.0, jitter=0.1)
    return WorkerSpec(
        name, actor, args=(settings,), restart=cfg["restart"],
        max_restarts=cfg["max_restarts"], within_seconds=cfg["within_seconds"], backoff=backoff,
        start_timeout=start_timeout,
    )


def build_root(config: Config) -> SupervisorSpec:
    children: list[WorkerSpec] = []
    layout = config.actor("gpu_layout")
    if layout["enabled"]:
        settings = LayoutSettings(
            tick_hz=layout["tick_hz"], min_tick_hz=layout["min_tick_hz"],
            backend=layout["backend"], steps_per_tick=layout["steps_per_tick"],
            settle_energy=layout["settle_energy"], params=layout["params"],
        )
        # the first start on a fresh checkout compiles the kernels (seconds to a minute)
        children.append(_worker("gpu_layout", LayoutActor, settings, layout, start_timeout=300.0))
    mcp = config.actor("mcp")
    if mcp["enabled"]:
        settings_mcp = McpSettings(
            transport=mcp["transport"], host=mcp["host"], port=mcp["port"],
            command=tuple(mcp["command"]), pool_size=mcp["pool_size"],
            poll_interval_s=mcp["poll_interval_s"], call_timeout_s=mcp["call_timeout_s"],
            handshake_timeout_s=mcp["handshake_timeout_s"], state_dir=mcp["state_dir"],
            maintain_every_calls=mcp["maintain_every_calls"],
        )
        children.append(_worker("mcp", McpActor, settings_mcp, mcp))
    hive = config.actor("hive_mind")
    if hive["enabled"]:
        settings_hive = HiveMindSettings(
            backend=hive["backend"], container=hive["container"], docker_url=hive["docker_url"],
            cli=tuple(hive["cli"]), sessions_dir=hive["sessions_dir"],
            command_timeout_s=hive["command_timeout_s"], retries=hive["retries"],
            health_interval_s=hive["health_interval_s"], workers=hive["workers"],
            mcp="mcp" if mcp["enabled"] else "",
        )
        children.append(_worker("hive_mind", HiveMindActor, settings_hive, hive))
    speech = config.actor("speech")
    if speech["enabled"]:
        settings_speech = SpeechActorSettings(
            engines=SpeechSettings.from_mapping(speech), workers=speech["workers"],
            max_text_chars=speech["max_text_chars"],
            hive_mind="hive_mind" if hive["enabled"] else "", mcp="mcp" if mcp["enabled"] else "",
        )
        children.append(_worker("speech", SpeechActor, settings_speech, speech, start_timeout=120.0))
    health = config.actor("health")
    if health["enabled"]:
        children.append(
            _worker("health", HealthActor, HealthSettings(interval_s=health["interval_s"]), health)
        )
    sup = config.supervisor
    return SupervisorSpec(
        "root", tuple(children), strategy=sup.strategy, max_restarts=sup.max_restarts,
        within_seconds=sup.within_seconds,
    )
