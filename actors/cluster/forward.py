"""Requests a follower forwards to the leader, and the leader's responses, as NATS messages.

A message is ``meta_len u32 (little-endian) | meta (UTF-8 JSON) | body``. A request's meta is
``{"method", "path", "headers", "from"}`` (``path`` with its query; ``headers`` only those
that change what the handler does: :data:`FORWARDED_HEADERS`); a response's is ``{"status",
"headers"}``. A body too large for one message travels in the cluster's object store and the
meta names it (``"object"``); the receiver fetches it, and deletes it.

The leader answers a forwarded request by running it against its own HTTP server, so a
forwarded write gets the leader's status codes, errors and ``Idempotency-Key`` replays exactly.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field

__all__ = ["FORWARDED_BY", "FORWARDED_HEADERS", "RESPONSE_HEADERS", "LeaderTimeout", "Message",
           "NoLeader", "decode", "encode"]

# What a handler reads from a request: the body's type and encoding, the token, the key that
# makes a spawn idempotent. (Origin and Host were checked by the follower the client reached.)
FORWARDED_HEADERS = ("Content-Type", "Content-Encoding", "Authorization", "Idempotency-Key",
                     "Accept")
# What a client may read from a response, beyond the status and body.
RESPONSE_HEADERS = ("Content-Type", "Location", "Retry-After", "Idempotent-Replayed",
                    "WWW-Authenticate", "Allow", "X-Hive-Kept")
# Set on the request the leader makes to itself: it is run, never forwarded again.
FORWARDED_BY = "X-Hive-Forwarded-By"

_LEN = struct.Struct("<I")


class NoLeader(RuntimeError):
    """Nobody leads now (an election under way, NATS unreachable): nothing was run."""


class LeaderTimeout(RuntimeError):
    """The leader did not answer in time: the request may or may not have run."""


@dataclass(frozen=True, slots=True)
class Message:
    meta: dict[str, object] = field(default_factory=dict)
    body: bytes = b""


def encode(message: Message) -> bytes:
    meta = json.dumps(message.meta, separators=(",", ":")).encode()
    return _LEN.pack(len(meta)) + meta + message.body


def decode(data: bytes) -> Message:
    """ValueError for anything that is not such a message."""
    if len(data) < _LEN.size:
        raise ValueError("a forwarded message shorter than its length")
    (size,) = _LEN.unpack_from(data)
    if _LEN.size + size > len(data):
        raise ValueError("a forwarded message's meta runs past its end")
    meta = json.loads(data[_LEN.size:_LEN.size + size])
    if not isinstance(meta, dict):
        raise ValueError("a forwarded message's meta is not an object")
    return Message(meta, bytes(data[_LEN.size + size:]))
