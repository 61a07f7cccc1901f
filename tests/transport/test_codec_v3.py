"""transport/codec_v3.py: protocol v3 keyframes and deltas. Property tests over random runs of
moves, adds, removes, drags, dropped frames and reconnects: the reference client's positions
always equal the server's within the stated bound, and never drift. Malformed frames are a
FrameError, never another exception."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from transport.codec import FrameError
from transport.codec_v3 import (
    DELTA,
    KEY,
    RING,
    Box,
    Chain,
    Follower,
    encode_delta,
    frame_kind,
)

BOUNDS = 5000.0
BOX = Box.world(BOUNDS)

# One step of a run: what the layout does, then which viewers read.
op = st.one_of(
    st.tuples(st.just("drift"), st.floats(0.0, 3.0)),  # every node moves a little (converging)
    st.tuples(st.just("jump"), st.floats(50.0, 4000.0)),  # a few nodes move far (a drag)
    st.tuples(st.just("add"), st.integers(1, 5)),
    st.tuples(st.just("remove"), st.integers(1, 5)),
    st.tuples(st.just("still"), st.just(0)),  # nothing moves past a quantum
    st.tuples(st.just("box"), st.floats(1000.0, 8000.0)),  # the world's bounds change (SIGHUP)
)


class World:
    """The server's layout: ids and float32 positions, clamped to the bounds like the engine."""

    def __init__(self, rng: np.random.Generator, n: int) -> None:
        self.rng = rng
        self.next_id = n
        self.ids = np.arange(n, dtype=np.uint32) | np.uint32(0x40000000)
        self.pos = self._clamp(rng.normal(size=(n, 3)) * 200.0)
        self.bounds = BOUNDS

    def _clamp(self, pos: np.ndarray) -> np.ndarray:
        b = getattr(self, "bounds", BOUNDS)
        return np.clip(pos, -b, b).astype(np.float32)

    def do(self, kind: str, arg: float) -> None:
        n = len(self.ids)
        if kind == "drift":
            self.pos = self._clamp(self.pos + self.rng.normal(size=self.pos.shape) * arg)
        elif kind == "jump" and n:
            pick = self.rng.choice(n, size=min(n, 3), replace=False)
            moved = self.pos.copy()
            moved[pick] += self.rng.choice([-1.0, 1.0], size=(pick.size, 3)) * arg
            self.pos = self._clamp(moved)
        elif kind == "add":
            new = np.arange(self.next_id, self.next_id + int(arg), dtype=np.uint32) | np.uint32(0x40000000)
            self.next_id += int(arg)
            self.ids = np.concatenate([self.ids, new])
            self.pos = self._clamp(np.concatenate([self.pos, self.rng.normal(size=(len(new), 3)) * 50]))
        elif kind == "remove" and n:
            keep = np.ones(n, bool)
            keep[self.rng.choice(n, size=min(n, int(arg)), replace=False)] = False
            self.ids, self.pos = self.ids[keep], self.pos[keep]
        elif kind == "box":
            self.bounds = float(arg)
            self.pos = self._clamp(self.pos)


def started(seed: int, n: int) -> tuple[World, Chain, Follower]:
    """A world of ``n`` nodes, its chain at the first state, and a client holding it."""
    world = World(np.random.default_rng(seed), n)
    chain = Chain()
    chain.advance(world.ids, world.pos, world.bounds)
    client = Follower()
    client.apply(chain.frame_for(None))
    return world, chain, client


def assert_follows(client: Follower, world: World) -> None:
    assert client.ids.tolist() == world.ids.tolist()
    error = np.abs(client.positions() - world.pos).max(initial=0.0)
    assert error <= Box.world(world.bounds).error, error


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(0, 300),
       steps=st.lists(st.tuples(op, st.lists(st.booleans(), min_size=3, max_size=3),
                                st.integers(0, 2)), min_size=1, max_size=40))
def test_clients_that_read_or_miss_frames_always_end_exactly_where_the_server_is(
        seed: int, n: int, steps: list) -> None:
    """Three viewers read after some frames and miss others (a slow reader's slot was
    overwritten); now and then one reconnects, with or without its last state. Whenever one
    reads, it gets what brings it to the newest state, and then holds the server's positions
    within the bound: exactly the chain's quantized state, so nothing accumulates."""
    rng = np.random.default_rng(seed)
    world = World(rng, n)
    chain = Chain()
    chain.advance(world.ids, world.pos, world.bounds)
    clients = [Follower() for _ in range(3)]
    for (kind, arg), reads, reconnect in steps:
        world.do(kind, arg)
        chain.advance(world.ids, world.pos, world.bounds)
        if reconnect:  # a new connection: it keeps its state only when it says so (resume)
            old = clients[reconnect]
            clients[reconnect] = Follower()
            if reconnect == 2 and old.at is not None:
                clients[reconnect] = old  # resumed: the server starts from the state it names
        for client, reads_now in zip(clients, reads, strict=True):
            if not reads_now:
                continue
            data = chain.frame_for(client.at)
            if data is not None:
                client.apply(data)
            assert client.at == chain.state
            assert_follows(client, world)


def test_up_to_date_clients_share_one_encoding_and_laggards_get_deltas_from_their_own_state() -> None:
    world, chain, behind = started(1, 1_000)
    first = chain.frame_for(None)
    assert first is not None and frame_kind(first) == KEY
    assert chain.frame_for(None) is first  # one keyframe encoding per state
    current = Follower()
    current.apply(first)
    for _ in range(3):
        world.do("drift", 1.0)
        chain.advance(world.ids, world.pos, world.bounds)
        shared = chain.frame_for(current.at)
        assert shared is chain.frame_for(current.at)  # the same bytes object for everyone
        current.apply(shared)
    lagging = chain.frame_for(behind.at)  # three states behind: its own delta
    assert lagging is not None and frame_kind(lagging) == DELTA and lagging is not shared
    behind.apply(lagging)
    assert np.array_equal(behind.q, current.q)
    for _ in range(RING):
        world.do("drift", 1.0)
        chain.advance(world.ids, world.pos, world.bounds)
    assert frame_kind(chain.frame_for(behind.at)) == KEY  # too far behind: a keyframe


def test_a_still_layout_sends_nothing_and_a_converging_one_is_compact() -> None:
    world, chain, client = started(2, 10_000)
    key = chain.frame_for(None)
    assert len(key) == 32 + 10 * 10_000  # 10 bytes a node, against v2's 36
    assert not chain.advance(world.ids, world.pos.copy(), world.bounds)  # the still frame
    assert chain.frame_for(client.at) is None
    world.do("drift", 1.0)
    chain.advance(world.ids, world.pos, world.bounds)
    delta = chain.frame_for(client.at)
    assert len(delta) < 3.3 * 10_000  # every node moved: 3.25 bytes a node, against v2's 36
    client.apply(delta)
    assert_follows(client, world)


def test_a_sparse_delta_names_its_nodes_by_gaps() -> None:
    old = np.zeros((100_000, 3), np.uint16)
    new = old.copy()
    new[[5, 6, 70_000]] = 9
    data = encode_delta(1, 0, 1, old, new)
    assert len(data) < 100  # a bitmap alone would be 12,500 bytes
    client = Follower()
    client.key, client.seq, client.ids, client.q = 1, 0, np.arange(100_000, dtype=np.uint32), old
    client.apply(data)
    assert np.array_equal(client.q, new)


def test_a_delta_for_another_state_is_refused() -> None:
    world, chain, client = started(3, 50)
    world.do("drift", 2.0)
    chain.advance(world.ids, world.pos, world.bounds)
    delta = chain.frame_for(client.at)
    world.do("drift", 2.0)
    chain.advance(world.ids, world.pos, world.bounds)
    skipped = chain.frame_for((chain.key, chain.seq - 1))
    with pytest.raises(FrameError, match="does not apply"):
        client.apply(skipped)  # it holds seq 0, this one starts at 1
    client.apply(delta)
    client.apply(skipped)
    assert_follows(client, world)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_malformed_frames_are_a_frame_error(data: st.DataObject) -> None:
    """Truncated, extended or corrupted frames: a FrameError or a valid decode, never another
    exception and never a state that breaks the next frame."""
    rng = np.random.default_rng(data.draw(st.integers(0, 1000)))
    world = World(rng, data.draw(st.integers(1, 60)))
    chain = Chain()
    chain.advance(world.ids, world.pos, world.bounds)
    key = chain.frame_for(None)
    world.do("drift", data.draw(st.floats(0.0, 500.0)))
    chain.advance(world.ids, world.pos, world.bounds)
    frame = bytearray(data.draw(st.sampled_from([key, chain.frame_for((chain.key, 0)) or key])))
    action = data.draw(st.sampled_from(["cut", "grow", "flip"]))
    if action == "cut":
        del frame[data.draw(st.integers(0, len(frame) - 1)):]
    elif action == "grow":
        frame += bytes(data.draw(st.integers(1, 8)))
    else:
        at = data.draw(st.integers(0, len(frame) - 1))
        frame[at] ^= 1 << data.draw(st.integers(0, 7))
    client = Follower()
    client.apply(key)
    try:
        client.apply(bytes(frame))
    except FrameError:
        return
    assert client.q.shape == (len(client.ids), 3)


def test_the_header_is_checked_first() -> None:
    with pytest.raises(FrameError, match="shorter"):
        frame_kind(b"\x03\x01")
    with pytest.raises(FrameError, match="version 2"):
        frame_kind(struct.pack("<BBHII", 2, 1, 0, 0, 0))
    with pytest.raises(FrameError, match="kind 7"):
        frame_kind(struct.pack("<BBHII", 3, 7, 0, 0, 0))
