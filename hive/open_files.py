"""The open-file limit: raised at start as far as the hard limit allows, and the WebSocket
client limit kept below what it leaves.

Found under load: at the default soft limit of 1,024, 1,100 WebSocket clients used every file
descriptor; ``accept()`` then failed in a tight loop, swarm records could not be written (a
500), MCP maintenance failed and ``/api/health`` took 10 s. Each client holds one descriptor;
the rest of the daemon (MCP servers' pipes, CLI runs, state files, logs, plain HTTP requests)
needs a reserve that clients may never take.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

__all__ = ["RESERVED_FDS", "OpenFiles", "raise_open_files_limit"]

RESERVED_FDS = 256
_CEILING = 1 << 20  # what to ask for when the hard limit is unlimited


@dataclass(frozen=True)
class OpenFiles:
    soft: int
    hard: int  # -1: unlimited
    raised_from: int | None  # the soft limit before it was raised, when it was

    def client_limit(self, max_clients: int) -> int:
        """``max_clients``, or fewer when the soft limit leaves less after the reserve."""
        return max(1, min(max_clients, self.soft - RESERVED_FDS))


def raise_open_files_limit() -> OpenFiles:
    """Raise the soft limit to the hard limit (a process may, without privileges)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = _CEILING if hard == resource.RLIM_INFINITY else min(hard, _CEILING)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            return OpenFiles(soft, -1 if hard == resource.RLIM_INFINITY else hard, None)
        return OpenFiles(want, -1 if hard == resource.RLIM_INFINITY else hard, soft)
    return OpenFiles(_CEILING if soft == resource.RLIM_INFINITY else soft,
                     -1 if hard == resource.RLIM_INFINITY else hard, None)
