"""systemd's readiness protocol (``Type=notify``), without libsystemd.

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to a service
of ``Type=notify``; the service sends ``READY=1`` once it answers, ``STOPPING=1`` as it begins
to shut down, and, when ``WATCHDOG_USEC`` is set (``WatchdogSec=`` in the unit), ``WATCHDOG=1``
at least that often, or systemd restarts it. One datagram per message, ``KEY=value`` lines.

The watchdog ping is sent from the event loop and only while the root supervisor runs: a loop
that stalls or a tree that gave up stops the pings, which is what the watchdog is for. Without
``NOTIFY_SOCKET`` (not under systemd) everything here does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Mapping

import structlog

__all__ = ["Notifier"]

log = structlog.get_logger("hive.systemd")


class Notifier:
    """Sends to the socket named in ``env`` (the process environment by default)."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = _watchdog_interval(env)
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def send(self, *lines: str) -> bool:
        """One datagram; False (and a log line) when it could not be sent."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self._address)
                sock.sendall("\n".join(lines).encode())
        except OSError as exc:
            log.warning("systemd.notify_failed", error=str(exc), message=lines[0])
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def reloading(self, status: str) -> None:
        self.send("RELOADING=1", f"STATUS={status}")

    def start_watchdog(self, healthy: Callable[[], bool]) -> None:
        """Ping at half the interval systemd asked for, while ``healthy()`` says so."""
        if self.enabled and self.watchdog_s is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._ping(healthy))

    async def _ping(self, healthy: Callable[[], bool]) -> None:
        assert self.watchdog_s is not None
        while True:
            if healthy():
                self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_s / 2)

    async def stop_watchdog(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """``WATCHDOG_USEC`` in seconds, when it is meant for this process (``WATCHDOG_PID``)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1e6
