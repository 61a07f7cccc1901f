"""Who hears about an actor's news: callbacks registered with ``Subscribe``/``Unsubscribe``.

Callbacks run on the publishing actor's thread and must only hand the value over (to an event
loop with ``call_soon_threadsafe``, say). One that raises is dropped, and the actor goes on.
The table outlives the actor's incarnations (kept through its ``ChildContext``): a subscriber
registered once keeps hearing after a crash and restart, as it would from a stable address.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any, Generic, TypeVar

import structlog

from actors.messages import Subscribe, Unsubscribe
from supervisor import ChildContext

__all__ = ["Subscribers"]


log = structlog.get_logger("actors.subscribers")
T = TypeVar("T")


class Subscribers(Generic[T]):
    def __init__(self, owner: str, context: ChildContext | None = None,
                 name: str = "subscribers") -> None:
        """``name``: the table's name in the context (an actor with two tables gives each its
        own)."""
        self._owner = owner
        self._context = context
        self._name = name
        kept = context.kept({}, name=name) if context is not None else {}
        self._callbacks: dict[str, Callable[[T], object]] = dict(kept)

    def handle(self, message: Any) -> bool:
        """Apply a ``Subscribe``/``Unsubscribe`` message; False for any other message."""
        if isinstance(message, Subscribe):
            self.subscribe(message.key, message.callback)
        elif isinstance(message, Unsubscribe):
            self._callbacks.pop(message.key, None)
            self._keep()
        else:
            return False
        return True

    def subscribe(self, key: str, callback: Callable[[T], object]) -> None:
        self._callbacks[key] = callback
        self._keep()

    def _keep(self) -> None:
        if self._context is not None:
            self._context.keep(MappingProxyType(dict(self._callbacks)), name=self._name)

    def publish(self, value: T) -> None:
        for key, callback in list(self._callbacks.items()):
            try:
                callback(value)
            except Exception as exc:  # noqa: BLE001 - a broken subscriber must not stop the owner
                log.warning("subscriber.dropped", owner=self._owner, key=key, error=repr(exc))
                self._callbacks.pop(key, None)
                self._keep()

    def __len__(self) -> int:
        return len(self._callbacks)
