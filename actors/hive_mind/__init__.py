"""The hive-mind actor and its engine: the agents' control plane (swarm sessions).

``actor`` (the actor), ``messages`` and ``errors`` (what callers import), ``settings`` (the
``[actors.hive_mind]`` schema), ``backend`` (sessions in folders, driven with the claude-flow
CLI over a local or Docker runner).
"""

from __future__ import annotations

__all__: list[str] = []
