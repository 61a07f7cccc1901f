"""Compact position frames, ``/wss`` protocol v3 (docs/protocol.md has the same in prose).

v2 spends 36 bytes per node per frame; a converging 100,000-node layout moves every node, so
a viewer needed 108 MB/s. v3 sends what a viewer needs to draw, within a stated error:

- **Positions are quantized** to 16 bits per axis inside the world box (``[-bounds, bounds]``
  on each axis, where the layout clamps every node): a decoded coordinate is within half a
  step, ``bounds / 65535`` (0.076 at the default 5,000; an edge is about 10 long), of the
  server's. Velocities are not sent: a client interpolates between frames.
- **A keyframe fixes the node order**: its ids, once, and every node's quantized position.
- **A delta names its nodes by index** into that order (a bitmap, or LEB128 gaps when that is
  shorter) and carries each one's new quantized position: as a signed byte per axis when the
  node moved at most 127 steps, else the absolute 16-bit value.
- **Deltas cannot drift**: the server's chain of states is the quantized positions themselves,
  and a delta turns state ``base`` into state ``seq`` exactly (integers, no rounding). A client
  holding state ``base`` of keyframe ``key`` ends up holding ``seq``, bit for bit what the
  server holds. A client that missed frames gets a delta from the state it does hold, or a
  keyframe.

Every frame starts with the same 12 bytes, little-endian: ``version u8 (3) | kind u8 (1 key,
2 delta) | flags u16 | key u32 | seq u32``. Every section starts at a multiple of 4 bytes
(zero padding), so a browser reads each one as a typed array without copying.

Keyframe (kind 1): ``n u32 | origin 3 x f32 | step f32`` (32 bytes in all), then ``n`` ids
(``u32``), then ``n`` x 3 quantized coordinates (``u16``, x y z per node). A coordinate is
``origin + q * step``.

Delta (kind 2): ``base u32 | n u32 | count u32 | far u32`` (28 bytes in all), then the changed
nodes' indices (flag bit 0 clear: a bitmap of ``n`` bits, bit ``i`` of byte ``i >> 3`` least
significant first; set: ``count`` LEB128 gaps, each index minus the previous one minus 1, the
first counted from -1), then a bitmap of ``count`` bits marking the far nodes among the changed
ones in index order, then the near nodes' moves (``i8`` x 3 each, in index order), then the far
nodes' new coordinates (``u16`` x 3 each). A node not named keeps its coordinates.

:class:`Chain` is the encoder (the server's states, one shared encoding per frame), and
:class:`Follower` the decoder (the reference client the tests and the bench check against).
"""

from __future__ import annotations

import secrets
import struct
from dataclasses import dataclass

import numpy as np

from transport.codec import FrameError

__all__ = ["DELTA", "KEY", "RING", "VERSION", "Box", "Chain", "Follower", "frame_kind"]

VERSION = 3
KEY = 1
DELTA = 2
GAPS = 0x0001  # flags: the delta's indices are LEB128 gaps, not a bitmap
LEVELS = 65_535  # the largest quantized coordinate
NEAR = 127  # the largest move, in steps, that a delta sends as a signed byte
# States a lagging client can be brought forward from with a delta (older: a keyframe): the
# newest RING, and up to HELD more that some client holds (a slow reader, a long interval).
# At 100,000 nodes a state is 600 kB.
RING = 8
HELD = 32

_HEAD = struct.Struct("<BBHII")
_KEY = struct.Struct("<I4f")
_DELTA = struct.Struct("<IIII")
HEAD_SIZE = _HEAD.size
KEY_HEAD = HEAD_SIZE + _KEY.size
DELTA_HEAD = HEAD_SIZE + _DELTA.size
assert KEY_HEAD == 32 and DELTA_HEAD == 28


@dataclass(frozen=True, slots=True)
class Box:
    """The cube positions are quantized in: ``origin + q * step`` per axis, q in 0..65535."""

    origin: float
    step: float

    @classmethod
    def world(cls, bounds: float) -> Box:
        """The layout's world, ``[-bounds, bounds]`` per axis (float32, as sent)."""
        return cls(float(np.float32(-bounds)), float(np.float32(2.0 * bounds / LEVELS)))

    @property
    def error(self) -> float:
        """The most a decoded coordinate differs from one inside the box: half a step, and
        the float32 rounding of the result (2^-23 of the largest coordinate)."""
        return self.step / 2 + abs(self.origin) * 2.0**-23

    def quantize(self, positions: np.ndarray) -> np.ndarray:
        """(n, 3) float positions -> (n, 4) uint16 rows, x y z and a zero: 8 bytes a node, so
        a row compares as one uint64 (:func:`encode_delta`). Outside the box: clamped."""
        q = np.asarray(positions, np.float64) - self.origin
        q *= 1.0 / self.step
        np.rint(q, out=q)
        np.clip(q, 0, LEVELS, out=q)
        rows = np.zeros((len(q), 4), np.uint16)
        rows[:, :3] = q
        return rows

    def positions(self, q: np.ndarray) -> np.ndarray:
        return (self.origin + q[:, :3].astype(np.float64) * self.step).astype(np.float32)


def _pad(n: int) -> bytes:
    return bytes(-n % 4)


def _varints(values: np.ndarray) -> bytes:
    """LEB128 of non-negative integers below 2^32, vectorised."""
    v = values.astype(np.uint64)
    size = np.ones(v.shape, np.int64)
    for bits in range(1, 5):
        size += v >= np.uint64(1 << (7 * bits))
    lanes = np.arange(5, dtype=np.uint64)
    groups = ((v[:, None] >> (np.uint64(7) * lanes)) & np.uint64(0x7F)).astype(np.uint8)
    groups |= np.where(lanes[None, :] < (size[:, None] - 1).astype(np.uint64), 0x80, 0).astype(np.uint8)
    return groups[lanes[None, :] < size[:, None].astype(np.uint64)].tobytes()


def _read_varints(buf: np.ndarray, count: int) -> tuple[np.ndarray, int]:
    """``count`` LEB128 values from the start of ``buf`` (uint8): (values, bytes used)."""
    if count == 0:
        return np.zeros(0, np.int64), 0
    ends = np.flatnonzero(buf < 0x80)
    if ends.size < count:
        raise FrameError("delta: index list ends early")
    end = int(ends[count - 1]) + 1
    b = buf[:end]
    group = np.zeros(end, np.int64)
    group[1:] = np.cumsum(b[:-1] < 0x80)
    first = np.zeros(count, np.int64)
    first[1:] = ends[: count - 1] + 1
    shift = 7 * (np.arange(end) - first[group])
    if shift.max() > 28:
        raise FrameError("delta: an index gap longer than 5 bytes")
    parts = (b & 0x7F).astype(np.float64) * np.exp2(shift)
    return np.bincount(group, weights=parts, minlength=count).astype(np.int64), end


def frame_kind(data: bytes) -> int:
    """The kind of a v3 frame (:data:`KEY` or :data:`DELTA`), checking its header."""
    if len(data) < HEAD_SIZE:
        raise FrameError(f"v3 frame of {len(data)} bytes is shorter than its header")
    version, kind, _flags, _key, _seq = _HEAD.unpack_from(data)
    if version != VERSION:
        raise FrameError(f"unsupported protocol version {version} (expected {VERSION})")
    if kind not in (KEY, DELTA):
        raise FrameError(f"unknown v3 frame kind {kind}")
    return int(kind)


def encode_key(key: int, seq: int, ids: np.ndarray, q: np.ndarray, box: Box) -> bytes:
    n = len(ids)
    head = _HEAD.pack(VERSION, KEY, 0, key, seq) + _KEY.pack(n, box.origin, box.origin,
                                                             box.origin, box.step)
    body = (np.ascontiguousarray(ids, "<u4").tobytes()
            + np.ascontiguousarray(q[:, :3], "<u2").tobytes())
    return head + body + _pad(len(body))


def _rows(q: np.ndarray) -> np.ndarray:
    """(n, 4) uint16 rows of (n, 3) or (n, 4) quantized coordinates."""
    if q.shape[1] == 4 and q.dtype == np.uint16 and q.flags.c_contiguous:
        return q
    rows = np.zeros((len(q), 4), np.uint16)
    rows[:, :3] = q[:, :3]
    return rows


def encode_delta(key: int, base: int, seq: int, old: np.ndarray, new: np.ndarray) -> bytes:
    """The delta that turns quantized state ``old`` into ``new`` (same node order; (n, 3) or
    (n, 4) rows). Each step is one pass over whole arrays: at 100,000 converging nodes this
    runs on the event loop every frame."""
    old, new = _rows(old), _rows(new)
    n = len(new)
    mask = old.view(np.uint64).ravel() != new.view(np.uint64).ravel()
    changed = np.flatnonzero(mask)
    every = changed.size == n
    now = new if every else new[changed]
    moves = now.astype(np.int32)
    moves -= old if every else old[changed]
    small = moves.astype(np.int8)
    far = (small != moves).view(np.uint32).ravel() != 0  # any axis beyond a signed byte
    bitmap_size = (n + 7) // 8
    index = b""
    if changed.size < bitmap_size:  # each gap takes a byte at least: only then can it be shorter
        index = _varints(np.diff(changed, prepend=-1) - 1)
    flags = GAPS if changed.size < bitmap_size and len(index) < bitmap_size else 0
    if not flags:
        index = np.packbits(mask, bitorder="little").tobytes()
    marks = np.packbits(far, bitorder="little").tobytes()
    some_far = bool(far.any())
    near = np.ascontiguousarray((small[~far] if some_far else small)[:, :3]).tobytes()
    absolute = np.ascontiguousarray(now[far, :3], "<u2").tobytes() if some_far else b""
    return b"".join([
        _HEAD.pack(VERSION, DELTA, flags, key, seq),
        _DELTA.pack(base, n, changed.size, int(far.sum()) if some_far else 0),
        index, _pad(len(index)), marks, _pad(len(marks)),
        near, _pad(len(near)), absolute, _pad(len(absolute)),
    ])


class Chain:
    """The server side: the states viewers are brought to, and their encodings.

    :meth:`advance` takes each published frame: a new node set (or world box) starts a new
    key; otherwise the quantized positions, when any changed, become the next state. Bytes
    are encoded at most once per state and starting point (the delta from the state before,
    shared by every client that is up to date; a delta from an older state for the clients
    that lag, cached per state they lag at; the keyframe), and only when a client asks.
    """

    def __init__(self) -> None:
        # Keys start at random: a client resuming after a daemon restart must not name a
        # state of the new chain by accident (every key is new to it, so it gets a keyframe).
        self.key = secrets.randbits(32)
        self.seq = 0
        self._ids: np.ndarray | None = None
        self._box: Box | None = None
        self._states: dict[int, np.ndarray] = {}
        self._cache: dict[int | None, bytes] = {}

    @property
    def started(self) -> bool:
        return self._ids is not None

    @property
    def state(self) -> tuple[int, int]:
        """The newest state, (key, seq)."""
        return self.key, self.seq

    def reset(self) -> None:
        """Forget the states (no v3 client left): the next frame starts a new key."""
        self._ids = None
        self._states.clear()
        self._cache.clear()

    def advance(self, ids: np.ndarray, positions: np.ndarray, bounds: float,
                held: set[tuple[int, int]] | frozenset[tuple[int, int]] = frozenset()) -> bool:
        """Take a frame; True when it made a new state (or key) to send. ``held``: the
        (key, seq) states clients hold, kept (up to :data:`HELD` of them) beyond the newest
        :data:`RING` so that a slow reader still gets a delta from its own state."""
        box = Box.world(bounds)
        q = box.quantize(positions)
        q.flags.writeable = False
        if self._ids is None or box != self._box or not np.array_equal(ids, self._ids):
            self.key = (self.key + 1) & 0xFFFFFFFF
            self.seq = 0
            self._ids = np.array(ids, np.uint32)
            self._box = box
            self._states = {0: q}
            self._cache.clear()
            return True
        if np.array_equal(q.view(np.uint64), self._states[self.seq].view(np.uint64)):
            return False
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self._states[self.seq] = q
        recent = {(self.seq - k) & 0xFFFFFFFF for k in range(RING)}
        kept = sorted((seq for key, seq in held if key == self.key and seq in self._states
                       and seq not in recent), key=lambda seq: (self.seq - seq) & 0xFFFFFFFF)
        keep = recent | set(kept[:HELD])
        self._states = {seq: state for seq, state in self._states.items() if seq in keep}
        self._cache.clear()
        return True

    def frame_for(self, at: tuple[int, int] | None) -> bytes | None:
        """What brings a client holding state ``at`` (key, seq) to the newest state: None
        when it holds it already, a delta when its state is still kept, else the keyframe."""
        if self._ids is None:
            return None
        if at is not None and at[0] == self.key:
            if at[1] == self.seq:
                return None
            if at[1] in self._states:
                return self._encoded(at[1])
        return self._encoded(None)

    def _encoded(self, base: int | None) -> bytes:
        data = self._cache.get(base)
        if data is None:
            assert self._ids is not None and self._box is not None
            newest = self._states[self.seq]
            if base is None:
                data = encode_key(self.key, self.seq, self._ids, newest, self._box)
            else:
                data = encode_delta(self.key, base, self.seq, self._states[base], newest)
            self._cache[base] = data
        return data


class Follower:
    """The client side: applies keyframes and deltas, and refuses what it cannot apply
    exactly (a delta for another key or state than the one it holds)."""

    def __init__(self) -> None:
        self.key: int | None = None
        self.seq = 0
        self.ids = np.zeros(0, np.uint32)
        self.q = np.zeros((0, 3), np.uint16)
        self.box = Box(0.0, 1.0)

    @property
    def at(self) -> tuple[int, int] | None:
        return None if self.key is None else (self.key, self.seq)

    def positions(self) -> np.ndarray:
        return self.box.positions(self.q)

    def apply(self, data: bytes) -> None:
        kind = frame_kind(data)
        _v, _k, flags, key, seq = _HEAD.unpack_from(data)
        if kind == KEY:
            self._key(data, key, seq)
        else:
            self._delta(data, flags, key, seq)

    def _key(self, data: bytes, key: int, seq: int) -> None:
        if len(data) < KEY_HEAD:
            raise FrameError("keyframe shorter than its header")
        n, ox, oy, oz, step = _KEY.unpack_from(data, HEAD_SIZE)
        if not (ox == oy == oz) or not step > 0:
            raise FrameError("keyframe: the box must be a cube with a positive step")
        size = KEY_HEAD + 4 * n + 6 * n
        if len(data) != size + (-size % 4):
            raise FrameError(f"keyframe of {n} nodes is {len(data)} bytes, not {size + (-size % 4)}")
        ids = np.frombuffer(data, "<u4", n, KEY_HEAD)
        q = np.frombuffer(data, "<u2", 3 * n, KEY_HEAD + 4 * n).reshape(n, 3)
        self.key, self.seq = key, seq
        self.ids, self.q, self.box = ids.copy(), q.copy(), Box(ox, step)

    def _delta(self, data: bytes, flags: int, key: int, seq: int) -> None:
        if len(data) < DELTA_HEAD:
            raise FrameError("delta shorter than its header")
        base, n, count, far = _DELTA.unpack_from(data, HEAD_SIZE)
        if self.key != key or self.seq != base or n != len(self.ids):
            raise FrameError(f"delta {key}:{base}->{seq} does not apply to state {self.at}")
        if count > n or far > count:
            raise FrameError("delta: more changed nodes than nodes")
        buf = np.frombuffer(data, np.uint8)
        at = DELTA_HEAD
        if flags & GAPS:
            gaps, used = _read_varints(buf[at:], count)
            index = np.cumsum(gaps + 1) - 1
            at += used
        else:
            if len(data) < at + (n + 7) // 8:
                raise FrameError("delta: bitmap ends early")
            index = np.flatnonzero(np.unpackbits(buf[at:at + (n + 7) // 8], count=n,
                                                 bitorder="little"))
            at += (n + 7) // 8
        at += -at % 4
        if index.size != count or (count and (index[-1] >= n or index.min() < 0)):
            raise FrameError("delta: the indices do not match its count")
        marks_size = (count + 7) // 8
        near_size = 3 * (count - far)
        near_at = at + marks_size + (-(at + marks_size) % 4)
        far_at = near_at + near_size + (-(near_at + near_size) % 4)
        end = far_at + 6 * far
        if len(data) != end + (-end % 4):
            raise FrameError(f"delta is {len(data)} bytes, not {end + (-end % 4)}")
        marked = np.unpackbits(buf[at:at + marks_size], count=count, bitorder="little").astype(bool)
        if int(marked.sum()) != far:
            raise FrameError("delta: the far marks do not match its count")
        moves = np.frombuffer(data, "<i1", near_size, near_at).reshape(-1, 3).astype(np.int32)
        q = self.q.copy()
        moved = q[index[~marked]].astype(np.int32) + moves
        if moved.size and (moved.min() < 0 or moved.max() > LEVELS):
            raise FrameError("delta: a move leaves the box")
        q[index[~marked]] = moved.astype(np.uint16)
        q[index[marked]] = np.frombuffer(data, "<u2", 3 * far, far_at).reshape(-1, 3)
        self.q, self.seq = q, seq
