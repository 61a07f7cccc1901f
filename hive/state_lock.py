"""One daemon per state folder: a lock file held for the process's life.

Two daemons sharing a state folder would both resume the same in-flight spawns and disagree
about every swarm. The lock is ``flock`` on ``<state_dir>/daemon.lock`` (it goes with the
process, also on SIGKILL), which holds the owner's pid for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_FILE", "StateLocked", "lock_state"]

LOCK_FILE = "daemon.lock"


class StateLocked(RuntimeError):
    """Another process holds the state folder."""


def lock_state(state_dir: str | os.PathLike[str]) -> int:
    """Take the state folder's lock; the open descriptor (keep it for the process's life), or
    :class:`StateLocked` naming the pid that has it."""
    folder = Path(state_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # only its owner reads swarm tasks
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StateLocked(f"another hive-supervisor (pid {owner}) is using the state folder "
                          f"{folder.resolve()}; stop it, or give this one its own "
                          f"[server] state_dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
