"""Binary position frames, protocol v2 of the original system (see docs/protocol.md).

A frame is one version byte (2) and then fixed 36-byte little-endian records:
``id u32 | position 3xf32 | velocity 3xf32 | sssp_distance f32 | sssp_parent i32``.
The browser sends the same records *without* the version byte when a user drags nodes.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "PROTOCOL_VERSION",
    "RECORD",
    "RECORD_SIZE",
    "FrameError",
    "decode_client_update",
    "decode_frame",
    "encode_records",
]


PROTOCOL_VERSION = 2
RECORD = np.dtype(
    [
        ("id", "<u4"),
        ("position", "<f4", (3,)),
        ("velocity", "<f4", (3,)),
        ("sssp_distance", "<f4"),
        ("sssp_parent", "<i4"),
    ]
)
RECORD_SIZE = RECORD.itemsize
assert RECORD_SIZE == 36


class FrameError(ValueError):
    """A binary frame that does not follow the protocol."""


def encode_records(ids: np.ndarray, positions: np.ndarray, velocities: np.ndarray) -> bytes:
    """One frame: the version byte and a record per node (SSSP fields unused: +inf, -1)."""
    records = np.empty(len(ids), dtype=RECORD)
    records["id"] = ids
    records["position"] = positions
    records["velocity"] = velocities
    records["sssp_distance"] = np.inf
    records["sssp_parent"] = -1
    return bytes((PROTOCOL_VERSION,)) + records.tobytes()


def decode_frame(data: bytes) -> np.ndarray:
    """Parse a server frame (version byte first); raise :class:`FrameError` when malformed."""
    if not data:
        raise FrameError("empty frame")
    if data[0] != PROTOCOL_VERSION:
        raise FrameError(f"unsupported protocol version {data[0]} (expected {PROTOCOL_VERSION})")
    body = len(data) - 1
    if body % RECORD_SIZE:
        raise FrameError(f"frame length {len(data)} is not 1 + k*{RECORD_SIZE}")
    return np.frombuffer(data, dtype=RECORD, offset=1)


def decode_client_update(data: bytes) -> np.ndarray:
    """Parse a client's drag update: records without a version byte (one is tolerated)."""
    if len(data) % RECORD_SIZE == 1 and data[:1] == bytes((PROTOCOL_VERSION,)):
        records = decode_frame(data)
    elif not data or len(data) % RECORD_SIZE:
        raise FrameError(
            f"binary update of {len(data)} bytes is not a whole number of {RECORD_SIZE}-byte records"
        )
    else:
        records = np.frombuffer(data, dtype=RECORD)
    if not np.isfinite(records["position"]).all():
        raise FrameError("positions must be finite numbers")
    return records
