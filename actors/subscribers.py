"""Who hears about an actor's news: callbacks registered with ``Subscribe``/``Unsubscribe``.

Callbacks run on the publishing actor's thread and must only hand the value over (to an event
loop with ``call_soon_threadsafe``, say). One that raises is dropped, and the actor goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import structlog

from actors.messages import Subscribe, Unsubscribe

log = structlog.get_logger("actors.subscribers")
T = TypeVar("T")


class Subscribers(Generic[T]):
    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._callbacks: dict[str, Callable[[T], object]] = {}

    def handle(self, message: Any) -> bool:
        """Apply a ``Subscribe``/``Unsubscribe`` message; False for any other message."""
        if isinstance(message, Subscribe):
            self._callbacks[message.key] = message.callback
            return True
        if isinstance(message, Unsubscribe):
            self._callbacks.pop(message.key, None)
            return True
        return False

    def publish(self, value: T) -> None:
        for key, callback in list(self._callbacks.items()):
            try:
                callback(value)
            except Exception as exc:  # noqa: BLE001 - a broken subscriber must not stop the owner
                log.warning("subscriber.dropped", owner=self._owner, key=key, error=repr(exc))
                self._callbacks.pop(key, None)

    def __len__(self) -> int:
        return len(self._callbacks)
