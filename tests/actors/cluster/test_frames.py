"""The leader's frames as v3 parts on a subject, and a follower's pictures from them (no I/O:
the link's side is in test_actor.py)."""

from __future__ import annotations

import numpy as np
import pytest

from actors.cluster.frames import (
    ENVELOPE,
    BadPart,
    FrameCodec,
    FrameReceiver,
    FrameSender,
    NeedKey,
    envelope_parts,
    read_part,
    sender_id,
)
from actors.messages import PositionFrame
from transport.codec import FrameError
from transport.codec_v3 import Box, Chain, Follower

V3 = FrameCodec(Chain, Follower, FrameError)

BOUNDS = 5000.0


def frame(positions: np.ndarray, ids: np.ndarray | None = None, seq: int = 1) -> PositionFrame:
    n = len(positions)
    ids = np.arange(n, dtype=np.uint32) if ids is None else ids
    return PositionFrame.make(seq, ids, positions.astype(np.float32), np.zeros((n, 3), np.float32),
                              np.ones(n, bool), True, BOUNDS)


def send(sender: FrameSender, f: PositionFrame, epoch: int, max_payload: int = 1 << 20) -> list[bytes]:
    data = sender.encode(f)
    return [] if data is None else envelope_parts(data, epoch, 123.5, sender.frames, max_payload)


def take_all(receiver: FrameReceiver, parts: list[bytes], fence: int = 0):
    out = None
    for p in parts:
        out = receiver.take(p, fence) or out
    return out


def test_envelope_round_trip_and_parts_fit_the_payload_limit() -> None:
    data = bytes(range(256)) * 40  # 10,240 bytes
    parts = envelope_parts(data, 7, 1.25, 3, max_payload=1000)
    assert all(len(p) <= 1000 for p in parts)
    read = [read_part(p) for p in parts]
    assert [r.part for r in read] == list(range(len(parts)))
    assert {(r.epoch, r.sent_at, r.frame, r.parts) for r in read} == {(7, 1.25, 3, len(parts))}
    assert b"".join(r.data for r in read) == data
    with pytest.raises(BadPart):
        read_part(b"HVF3")
    with pytest.raises(BadPart):
        read_part(b"XXXX" + parts[0][4:])


def test_a_follower_holds_the_leaders_positions_within_the_quantization() -> None:
    rng = np.random.default_rng(1)
    sender, receiver = FrameSender(V3), FrameReceiver(V3)
    pos = rng.uniform(-100, 100, (2_000, 3))
    got = take_all(receiver, send(sender, frame(pos), epoch=5, max_payload=4096))
    assert got is not None and got.epoch == 5 and got.sent_at == 123.5
    error = Box.world(BOUNDS).error
    assert np.abs(got.frame.positions - pos).max() <= error
    assert got.frame.full and got.frame.bounds == BOUNDS
    # a delta: three nodes move; the picture says exactly those moved
    pos2 = pos.copy()
    pos2[[3, 50, 1999]] += 10.0
    data_parts = send(sender, frame(pos2), epoch=5)
    assert len(data_parts) == 1 and len(data_parts[0]) < 200  # a delta, not the whole frame
    got2 = take_all(receiver, data_parts)
    assert not got2.frame.full and np.flatnonzero(got2.frame.moved).tolist() == [3, 50, 1999]
    assert np.abs(got2.frame.positions - pos2).max() <= error
    # nothing changed: nothing to send
    assert sender.encode(frame(pos2)) is None


def test_a_missed_delta_asks_for_a_keyframe_and_the_key_repairs_it() -> None:
    rng = np.random.default_rng(2)
    sender, receiver = FrameSender(V3), FrameReceiver(V3)
    pos = rng.uniform(-100, 100, (300, 3))
    take_all(receiver, send(sender, frame(pos), epoch=1))
    pos += 1.0
    send(sender, frame(pos), epoch=1)  # lost on the way
    pos += 1.0
    with pytest.raises(NeedKey):
        take_all(receiver, send(sender, frame(pos), epoch=1))
    sender.want_key()
    got = take_all(receiver, send(sender, frame(pos), epoch=1))
    assert got is not None and np.abs(got.frame.positions - pos).max() <= Box.world(BOUNDS).error


def test_a_missed_part_asks_for_a_keyframe() -> None:
    sender, receiver = FrameSender(V3), FrameReceiver(V3)
    parts = send(sender, frame(np.zeros((1_000, 3))), epoch=1, max_payload=1024)
    assert len(parts) > 3
    receiver.take(parts[0], 0)
    with pytest.raises(NeedKey):
        receiver.take(parts[2], 0)


def test_frames_of_an_older_epoch_are_refused() -> None:
    old, new, receiver = FrameSender(V3), FrameSender(V3), FrameReceiver(V3)
    pos = np.zeros((10, 3))
    assert take_all(receiver, send(new, frame(pos), epoch=9)) is not None
    # the old leader resumes and sends: refused, whether or not the lease said so yet
    assert take_all(receiver, send(old, frame(pos + 5), epoch=4), fence=0) is None
    assert receiver.stale == 1
    # the lease's epoch alone fences too
    fresh = FrameReceiver(V3)
    assert take_all(fresh, send(FrameSender(V3), frame(pos), epoch=4), fence=9) is None
    assert fresh.stale == 1


def test_a_new_leader_starts_a_new_picture() -> None:
    a, b, receiver = FrameSender(V3), FrameSender(V3), FrameReceiver(V3)
    take_all(receiver, send(a, frame(np.zeros((10, 3))), epoch=3))
    got = take_all(receiver, send(b, frame(np.ones((12, 3)), seq=1), epoch=8))
    assert got is not None and got.epoch == 8 and got.frame.full and len(got.frame) == 12


def test_a_lease_that_counts_again_lifts_the_fence() -> None:
    """A NATS server restarted without its store numbers leases from 1 again: the lease is the
    truth, so frames of the new (lower) epoch are shown."""
    receiver = FrameReceiver(V3)
    take_all(receiver, send(FrameSender(V3), frame(np.zeros((4, 3))), epoch=40), fence=40)
    got = take_all(receiver, send(FrameSender(V3), frame(np.ones((4, 3))), epoch=2), fence=2)
    assert got is not None and got.epoch == 2


def test_the_envelope_is_32_bytes_and_names_its_sender() -> None:
    assert ENVELOPE.size == 32
    [part] = envelope_parts(b"x", 1, 0.0, 1, 1000, sender=sender_id("alpha"))
    assert read_part(part).sender == sender_id("alpha") != sender_id("beta")
