"""What every handler gets: the tree's addresses, the frame hub, the metrics, the settings.

A leaf of ``transport/``: route modules import it, it imports no route module.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web

from supervisor import Address, ChildUnavailable, SupervisionTree, UnknownChild
from transport.fanout import FrameHub
from transport.metrics import Metrics
from transport.relay_policy import DEFAULT_RELAY_TOOLS, RelayPolicy
from transport.security import AccessPolicy
from transport.settings import ServerSettings

__all__ = ["SERVICES", "Services"]


T = TypeVar("T")


@dataclass
class Services:
    tree: SupervisionTree
    server: ServerSettings
    hub: FrameHub
    metrics: Metrics
    # each running actor's settings, as the actor itself got them (what transport may read)
    actor_settings: Mapping[str, object] = field(default_factory=dict)
    access: AccessPolicy = field(default_factory=AccessPolicy)
    relay_policy: RelayPolicy = field(default_factory=lambda: RelayPolicy.of(DEFAULT_RELAY_TOOLS))
    websockets: weakref.WeakSet[web.WebSocketResponse] = field(default_factory=weakref.WeakSet)
    started_at: float = field(default_factory=time.monotonic)
    stopping: bool = False  # set as shutdown begins: /readyz answers 503 from then on

    def address(self, name: str) -> Address:
        """The address of the root's child ``name``; :class:`ChildUnavailable` when this
        daemon does not run it (``enabled = false``)."""
        path = f"{self.tree.root_path}/{name}"
        try:
            return self.tree.address(path)
        except UnknownChild:
            raise ChildUnavailable(path, "not running in this daemon") from None

    def has(self, name: str) -> bool:
        return f"{self.tree.root_path}/{name}" in self.tree.paths()

    def settings(self, name: str, kind: type[T]) -> T:
        """Actor ``name``'s settings (its class's defaults when that actor is off)."""
        value = self.actor_settings.get(name)
        return value if isinstance(value, kind) else kind()


SERVICES: web.AppKey[Services] = web.AppKey("services", Services)
