"""The leader's position frames on a NATS subject, and a follower's picture built from them.

The leader encodes each frame once, as protocol v3 (:mod:`transport.codec_v3`): a delta from
the state it sent before, or a keyframe when a follower asks for one (it joined, missed a delta,
or a new leader began). Every follower decodes what it hears into a
:class:`~actors.messages.PositionFrame` for its own ``FrameHub``, so its viewers get the same
swarm, in whichever protocol each asked for.

A message on the subject is one part of one encoded frame, behind 32 bytes, little-endian:
``magic 4s ("HVF3") | epoch u64 | sent_at f64 (the leader's wall clock) | frame u32 | part u16
| parts u16 | sender u32`` (the CRC-32 of the sender's node name: who sent it, for logs and
tests). A frame larger than the server's ``max_payload`` (a 100,000-node keyframe is
1 MB, NATS's default limit) goes in several parts; a receiver keeps the parts of one frame at
a time.

**Fencing.** The epoch is the lease's (:mod:`actors.cluster.lease`). A receiver drops every
part from an epoch older than the newest it knows, from the lease or from a frame: a leader
that was stopped past its TTL and resumes shows no viewer anything. The leader checks its own
lease before each publish too (:meth:`actors.cluster.link.NatsLink`).

This module does no I/O: the link publishes the parts and hands in what it hears. Nor does it
import the codec: v3 is the front end's (``transport/codec_v3.py``, a floor above this one), so
the daemon hands it in as a :class:`FrameCodec` when it builds the tree (``hive/tree.py``).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from actors.messages import PositionFrame

__all__ = ["ENVELOPE", "BadPart", "FrameCodec", "FrameReceiver", "FrameSender", "NeedKey", "Part",
           "Received", "envelope_parts", "read_part", "sender_id"]

MAGIC = b"HVF3"
ENVELOPE = struct.Struct("<4sQdIHHI")
assert ENVELOPE.size == 32


def sender_id(node: str) -> int:
    """The envelope's ``sender``: the CRC-32 of a node name."""
    return zlib.crc32(node.encode())


class BadPart(ValueError):
    """A message on the frames' subject that is no part of a cluster frame."""


@dataclass(frozen=True, slots=True)
class FrameCodec:
    """Protocol v3's encoder and decoder (``transport.codec_v3.Chain`` and ``Follower``), and
    the error its decoder raises (``transport.codec.FrameError``)."""

    chain: Callable[[], Any]
    follower: Callable[[], Any]
    error: type[Exception]


@dataclass(frozen=True, slots=True)
class Part:
    epoch: int
    sent_at: float
    frame: int
    part: int
    parts: int
    sender: int
    data: bytes


def envelope_parts(data: bytes, epoch: int, sent_at: float, frame: int,
                   max_payload: int, sender: int = 0) -> list[bytes]:
    """``data`` cut into messages of at most ``max_payload`` bytes, each behind its envelope."""
    room = max_payload - ENVELOPE.size
    if room <= 0:
        raise ValueError(f"max_payload {max_payload} leaves no room after the envelope")
    chunks = [data[i:i + room] for i in range(0, len(data), room)] or [b""]
    if len(chunks) > 0xFFFF:
        raise ValueError(f"a frame of {len(data)} bytes needs more than 65,535 parts")
    return [ENVELOPE.pack(MAGIC, epoch, sent_at, frame & 0xFFFFFFFF, i, len(chunks), sender) + chunk
            for i, chunk in enumerate(chunks)]


def read_part(message: bytes) -> Part:
    """One message's envelope and chunk; :class:`BadPart` for anything else."""
    if len(message) < ENVELOPE.size:
        raise BadPart("cluster frame part shorter than its envelope")
    magic, epoch, sent_at, frame, part, parts, sender = ENVELOPE.unpack_from(message)
    if magic != MAGIC or not 0 <= part < parts:
        raise BadPart("not a cluster frame part")
    return Part(epoch, sent_at, frame, part, parts, sender, message[ENVELOPE.size:])


class FrameSender:
    """The leader's side: each frame as a v3 delta from the state last sent, or a keyframe.

    Not thread-safe: the link's loop alone calls it.
    """

    def __init__(self, codec: FrameCodec) -> None:
        self._chain = codec.chain()
        self._sent: tuple[int, int] | None = None  # the (key, seq) state the followers hold
        self._key_wanted = True
        self.frames = 0  # frame numbers in the envelope

    def want_key(self) -> None:
        """A follower asked (it joined, or could not apply a delta): send a keyframe next."""
        self._key_wanted = True

    def encode(self, frame: PositionFrame) -> bytes | None:
        """The bytes that bring the followers to ``frame``; None when they hold it already."""
        held = frozenset({self._sent}) if self._sent is not None else frozenset()
        self._chain.advance(frame.wire_ids, frame.positions, frame.bounds, held)
        data = self._chain.frame_for(None if self._key_wanted else self._sent)
        if data is None:
            return None
        self._sent, self._key_wanted = self._chain.state, False
        self.frames += 1
        return data


@dataclass(frozen=True, slots=True)
class Received:
    """A follower's new picture: what its hub publishes, and when the leader sent it."""

    frame: PositionFrame
    epoch: int
    sent_at: float


class FrameReceiver:
    """A follower's side: parts in, pictures out. :meth:`take` raises :class:`NeedKey` when
    the followers' state is lost (a missed part or delta): the link asks for a keyframe.

    Not thread-safe: the link's loop alone calls it.
    """

    def __init__(self, codec: FrameCodec) -> None:
        self._codec = codec
        self._decoder = codec.follower()
        self._parts: list[bytes] = []
        self._assembling: tuple[int, int] | None = None  # (epoch, frame) of the parts held
        self.epoch = 0  # the newest epoch heard in a frame
        self.stale = 0  # parts dropped for an old epoch
        self.bad = 0  # parts that were no cluster frame
        self._fence = 0  # the lease's epoch at the last take
        self._seq = 0
        self._shown: tuple[int | None, np.ndarray] | None = None  # (key, quantized) last shown

    def take(self, message: bytes, fence: int) -> Received | None:
        """One message; the new picture once a whole frame applied, else None. ``fence`` is
        the newest epoch the lease has shown this daemon."""
        try:
            part = read_part(message)
        except BadPart:
            self.bad += 1
            return None
        if fence < self._fence:  # the lease counts again (a NATS server that lost its store)
            self.epoch = min(self.epoch, fence)
        self._fence = fence
        if part.epoch < max(fence, self.epoch):
            self.stale += 1
            return None
        if part.epoch > self.epoch:  # a new leader: its states are not ours
            self.epoch = part.epoch
            self._decoder = self._codec.follower()
            self._parts, self._assembling = [], None
        if part.part == 0:
            self._parts, self._assembling = [], (part.epoch, part.frame)
        if self._assembling != (part.epoch, part.frame) or len(self._parts) != part.part:
            self._parts, self._assembling = [], None
            raise NeedKey("a part of a frame was missed")
        self._parts.append(part.data)
        if len(self._parts) < part.parts:
            return None
        data, self._parts, self._assembling = b"".join(self._parts), [], None
        try:
            self._decoder.apply(data)
        except self._codec.error as exc:
            raise NeedKey(str(exc)) from None
        return Received(self._picture(), part.epoch, part.sent_at)

    def _picture(self) -> PositionFrame:
        d = self._decoder
        q, shown = d.q, self._shown
        full = shown is None or shown[0] != d.key
        moved = np.ones(len(q), bool) if full else (q != shown[1]).any(axis=1)  # type: ignore[index]
        self._shown = (d.key, q)
        self._seq += 1
        n = len(d.ids)
        return PositionFrame.make(self._seq, d.ids.copy(), d.positions(), np.zeros((n, 3), np.float32),
                                  moved, full, -d.box.origin)


class NeedKey(Exception):
    """The follower cannot apply what it heard: it needs a keyframe."""
