"""Child processes the daemon runs to completion (a hive-mind CLI command): each in a process
group of its own, killed as a whole on timeout or when asked, and never outliving the daemon.

``start_new_session`` puts the child and everything it starts in one process group, so a
timeout kills the whole group (``killpg``), not only the child's own pid; on Linux the child
also asks the kernel for ``SIGKILL`` when the thread that started it dies
(``PR_SET_PDEATHSIG``, through util-linux's ``setpriv``), which is what happens to every
thread when the daemon is SIGKILLed.
:class:`ProcessGroups` remembers the groups still running so that an actor can kill them all
when it stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["CommandTimeout", "Completed", "ProcessGroups", "kill_group", "run_command",
           "stop_group", "with_parent_death_signal"]


class CommandTimeout(TimeoutError):
    """The command ran past its timeout; its whole process group was killed."""


@dataclass(frozen=True, slots=True)
class Completed:
    code: int
    stdout: str
    stderr: str


def with_parent_death_signal(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that the kernel SIGKILLs it when the thread that started it dies
    (``setpriv --pdeathsig``, util-linux: an exec, no Python between fork and exec)."""
    return [SETPRIV, "--pdeathsig", "KILL", "--", *argv] if SETPRIV else list(argv)


SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


class ProcessGroups:
    """The process groups started through it that are still running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[int] = set()

    def add(self, pgid: int) -> None:
        with self._lock:
            self._running.add(pgid)

    def discard(self, pgid: int) -> None:
        with self._lock:
            self._running.discard(pgid)

    def kill_all(self) -> int:
        """SIGKILL every running group; how many there were."""
        with self._lock:
            groups, self._running = set(self._running), set()
        for pgid in groups:
            kill_group(pgid)
        return len(groups)

    def __len__(self) -> int:
        with self._lock:
            return len(self._running)


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def stop_group(process: subprocess.Popen[Any], grace_s: float = 2.0) -> None:
    """Stop a child started with ``start_new_session`` and everything it started: SIGTERM to
    its whole group, SIGKILL to the group after ``grace_s``; then reap the child."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
    kill_group(process.pid)  # what it left behind in its group goes too, even after it exited
    process.wait()


def run_command(argv: Sequence[str], *, cwd: str | None, env: Mapping[str, str],
                timeout: float, groups: ProcessGroups | None = None,
                stdin: bytes | None = None) -> Completed:
    """Run ``argv`` to completion in a new process group (``stdin`` written to it);
    :class:`CommandTimeout` (the group killed) past ``timeout``. ``FileNotFoundError`` when
    the program does not exist."""
    if shutil.which(argv[0], path=env.get("PATH")) is None:
        raise FileNotFoundError(f"no program {argv[0]!r}")
    process = subprocess.Popen(  # an argv list, never a shell
        with_parent_death_signal(argv), cwd=cwd, env=dict(env),
        stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    if groups is not None:
        groups.add(process.pid)
    try:
        out, err = process.communicate(input=stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        process.communicate()
        raise CommandTimeout(f"{os.path.basename(argv[0])} timed out after {timeout:g} s "
                             f"(its process group was killed)") from None
    finally:
        if groups is not None:
            groups.discard(process.pid)
    if process.returncode < 0:  # killed by a signal: by us (kill_all) or by someone else
        kill_group(process.pid)  # whatever it left behind in its group goes too
    return Completed(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
