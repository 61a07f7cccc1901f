"""Build the root supervisor's spec from the configuration.

The root's direct children, in start order: ``cluster`` (only with ``[cluster] nats_url``),
``gpu_layout``, ``mcp``, ``hive_mind``, ``speech``, ``health``. An actor with
``enabled = false`` is left out, and the actors that would have told it something are wired
without it. The settings objects are the configuration's own; the only
changes made here are wiring (siblings, folders under the state folder).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from actors.gpu_layout import LayoutActor
from actors.health import HealthActor
from actors.hive_mind.actor import HiveMindActor
from actors.mcp.actor import McpActor
from actors.speech.actor import SpeechActor
from hive.config import Config, ConfigError
from supervisor import Backoff, SupervisorSpec, WorkerSpec

__all__ = ["ACTOR_CLASSES", "START_TIMEOUT_S", "build_root", "wired"]


ACTOR_CLASSES: dict[str, type] = {
    "gpu_layout": LayoutActor, "mcp": McpActor, "hive_mind": HiveMindActor,
    "speech": SpeechActor, "health": HealthActor,
}
# The first start on a fresh checkout compiles the layout kernels (seconds to a minute), and
# speech loads its decoders; the others start in well under a second.
START_TIMEOUT_S = {"gpu_layout": 300.0, "speech": 120.0}


def wired(config: Config) -> dict[str, Any]:
    """Each enabled actor's settings, with siblings that are off left out and empty folders
    placed under ``[server] state_dir``."""
    actors = config.actors
    on = {name: actors.section(name).policy.enabled for name in ACTOR_CLASSES}
    state = Path(config.server.state_dir)
    mcp = actors.mcp.settings
    hive = actors.hive_mind.settings
    settings: dict[str, Any] = {
        "gpu_layout": dataclasses.replace(
            actors.gpu_layout.settings, state_dir=str((state / "layout").resolve())),
        "mcp": dataclasses.replace(mcp, state_dir=mcp.state_dir or str(state / "mcp")),
        "hive_mind": dataclasses.replace(
            hive, mcp=hive.mcp if on["mcp"] else "", records_dir=str((state / "swarms").resolve()),
            standby=config.cluster.enabled,  # the cluster's leader alone runs swarms
            leader="cluster" if config.cluster.enabled else "",
            sessions_dir=hive.sessions_dir or (
                str((state / "sessions").resolve()) if hive.backend == "local" else "")),
        "speech": dataclasses.replace(
            actors.speech.settings, hive_mind="hive_mind" if on["hive_mind"] else "",
            mcp="mcp" if on["mcp"] else ""),
        "health": actors.health.settings,
    }
    return {name: value for name, value in settings.items() if on[name]}


# The cluster actor's restarts: its link survives a lost server on its own (nats-py reconnects,
# the breaker and backoff pace the first connection), so a restart means a bug; pace those.
CLUSTER_BACKOFF = Backoff(1.0, 30.0, 2.0, jitter=0.1)


def cluster_actor() -> type:
    """The cluster actor, imported only when ``[cluster]`` asks for it: its NATS client is the
    ``cluster`` extra, which a single daemon does without."""
    try:
        from actors.cluster.actor import ClusterActor
    except ImportError as exc:
        raise ConfigError(
            f"[cluster] nats_url is set, but the NATS client is not installed ({exc}): "
            "pip install 'hive-supervisor[cluster]' (make run installs it)") from None
    return ClusterActor


def v3_codec() -> Any:
    """Protocol v3 for the cluster's frames: the front end's codec, handed down to the actor."""
    from actors.cluster.frames import FrameCodec
    from transport.codec import FrameError
    from transport.codec_v3 import Chain, Follower

    return FrameCodec(Chain, Follower, FrameError)


def build_root(config: Config) -> SupervisorSpec:
    children = []
    if config.cluster.enabled:
        actors = wired(config)
        layout, hive = actors.get("gpu_layout"), actors.get("hive_mind")
        cluster = dataclasses.replace(config.cluster, layout_dir=layout.state_dir if layout else "",
                                      records_dir=hive.records_dir if hive else "")
        children.append(WorkerSpec("cluster", cluster_actor(), args=(cluster, v3_codec()),
                                   restart="permanent", backoff=CLUSTER_BACKOFF))
    for name, settings in wired(config).items():
        policy = config.actors.section(name).policy
        children.append(WorkerSpec(
            name, ACTOR_CLASSES[name], args=(settings,), restart=policy.restart,
            max_restarts=policy.max_restarts, within_seconds=policy.within_seconds,
            backoff=policy.backoff(), start_timeout=START_TIMEOUT_S.get(name, 30.0)))
    sup = config.supervisor
    return SupervisorSpec(
        "root", tuple(children), strategy=sup.strategy, max_restarts=sup.max_restarts,
        within_seconds=sup.within_seconds,
    )
