"""``[cluster]``: the cluster's settings, the one schema of its keys (docs/configuration.md).

Empty ``nats_url`` (the default) is no cluster at all: no actor, no NATS client, the daemon
exactly as a single process.
"""

from __future__ import annotations

import re
import socket
import urllib.parse
from dataclasses import dataclass

from actors.circuit_breaker import BreakerSettings
from actors.schema import SettingError, Settings, internal, seconds, setting
from supervisor import Backoff

__all__ = ["NODE_NAME", "ClusterSettings", "default_node_name"]


# A node name is a key in the cluster's bucket: letters, digits, "-" and "_" (NATS keys also
# allow "." and "/", which would nest it).
NODE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def default_node_name() -> str:
    """This host's name made into a node name (several daemons on one host need their own)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:64].strip("-")
    return name or "hive"


@dataclass(frozen=True)
class ClusterSettings(Settings):
    # e.g. nats://10.0.0.5:4222; empty: no cluster (one process). A secret: it may carry a
    # user and password (logs and faults show it without them: redacted_url)
    nats_url: str = setting("", secret=True)
    node_name: str = ""  # this daemon's name in the cluster; empty: the host's name
    lease_ttl_s: float = seconds(5.0, lo=1.0)  # the leader lease; every daemon must agree
    bucket: str = "hive_cluster"  # the key-value bucket of the lease (peers: a core subject)
    # one connection attempt and one round's longest wait; 0: min(2 s, half the TTL)
    connect_timeout_s: float = seconds(0.0)
    layout_dir: str = internal("")  # the layout's state folder, kept in the shared state
    records_dir: str = internal("")  # the hive-mind's swarm records, kept in the shared state
    breaker: BreakerSettings = internal(
        default_factory=lambda: BreakerSettings(failure_threshold=3, recovery_timeout_s=2.0,
                                                success_threshold=1))
    backoff: Backoff = internal(default_factory=lambda: Backoff(0.2, 5.0, 2.0, jitter=0.2))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nats_url and not self.nats_url.startswith(("nats://", "tls://", "ws://", "wss://")):
            raise SettingError("nats_url", "must start with nats://, tls://, ws:// or wss://")
        if self.node_name and not NODE_NAME.fullmatch(self.node_name):
            raise SettingError("node_name", "must be 1-64 letters, digits, '-' or '_'")
        if not NODE_NAME.fullmatch(self.bucket):
            raise SettingError("bucket", "must be 1-64 letters, digits, '-' or '_'")
        if self.connect_timeout_s and not self.connect_timeout_s >= 0.1:
            raise SettingError("connect_timeout_s", "must be 0 (automatic) or at least 0.1")
        if self.connect_timeout_s > self.lease_ttl_s / 2:
            # a renewal may take this long: longer, and a slow one lets the lease lapse
            raise SettingError("connect_timeout_s", f"must be at most half of lease_ttl_s "
                                                    f"({self.lease_ttl_s / 2:g})")

    @property
    def connect_timeout(self) -> float:
        """``connect_timeout_s``, or (0) 2 s capped at half the TTL: a renewal may take this
        long, and a longer one would let the lease lapse."""
        return self.connect_timeout_s or min(2.0, self.lease_ttl_s / 2)

    @property
    def redacted_url(self) -> str:
        """``nats_url`` without a user or password in it (for logs, faults and health)."""
        parts = urllib.parse.urlsplit(self.nats_url)
        if parts.username is None and parts.password is None:
            return self.nats_url
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urllib.parse.urlunsplit((parts.scheme, f"***@{netloc}", parts.path, "", ""))

    @property
    def enabled(self) -> bool:
        return bool(self.nats_url)

    @property
    def name(self) -> str:
        """The node name in use: ``node_name``, else the host's."""
        return self.node_name or default_node_name()

    @property
    def round_s(self) -> float:
        """The pause between rounds (renewal or watch): a quarter TTL, and at most 1 s, so a
        follower sees an expired lease within min(TTL / 4, 1 s) plus a round's own time."""
        return min(self.lease_ttl_s / 4.0, 1.0)
