"""The binary codec against the protocol's text (struct), including malformed input."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from transport.codec import FrameError, decode_client_update, decode_frame, encode_records


def test_encode_matches_the_spec_layout() -> None:
    ids = np.array([0x80000001, 0x40000000 | 16384], dtype=np.uint32)
    pos = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
    vel = np.array([[0.5, 0, -0.5], [0, 0, 0]], dtype=np.float32)
    data = encode_records(ids, pos, vel)
    assert len(data) == 1 + 2 * 36 and data[0] == 2
    rid, *rest = struct.unpack_from("<I3f3ffi", data, 1)
    assert rid == 0x80000001 and rest[:6] == [1, 2, 3, 0.5, 0, -0.5]
    assert rest[6] == float("inf") and rest[7] == -1
    assert struct.unpack_from("<I", data, 37)[0] == 0x40004000  # ids above 16383 survive


def test_decode_rejects_malformed_frames() -> None:
    good = encode_records(np.array([1], np.uint32), np.zeros((1, 3), np.float32),
                          np.zeros((1, 3), np.float32))
    assert decode_frame(good)["id"].tolist() == [1]
    with pytest.raises(FrameError, match="version"):
        decode_frame(b"\x01" + good[1:])
    with pytest.raises(FrameError, match="1 \\+ k\\*36"):
        decode_frame(good + b"\x00")
    with pytest.raises(FrameError, match="empty"):
        decode_frame(b"")


def test_client_updates_without_version_byte() -> None:
    record = struct.pack("<I3f3ffi", 5, 1, 2, 3, 0, 0, 0, 0, -1)
    assert decode_client_update(record)["position"].tolist() == [[1, 2, 3]]
    assert decode_client_update(b"\x02" + record)["id"].tolist() == [5]
    with pytest.raises(FrameError, match="36-byte"):
        decode_client_update(record[:-1])
    nan = struct.pack("<I3f3ffi", 5, float("nan"), 2, 3, 0, 0, 0, 0, -1)
    with pytest.raises(FrameError, match="finite"):
        decode_client_update(nan)
    with pytest.raises(FrameError, match="finite"):
        decode_client_update(b"\x02" + nan)  # with the version byte too
