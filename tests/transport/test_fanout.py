"""The frame hub on its own, with hand-made frames: who gets a delta, who gets the full frame,
and a slow reader's frames replaced rather than queued."""

from __future__ import annotations

import asyncio

import numpy as np

from actors.graph import KNOWLEDGE_FLAG
from actors.messages import PositionFrame
from tests.conftest import decode_by_spec
from transport.fanout import FrameHub

IDS = np.array([KNOWLEDGE_FLAG | i for i in range(4)], dtype=np.uint32)


def frame(seq: int, moved: list[int], full: bool = False) -> PositionFrame:
    pos = np.full((4, 3), float(seq), dtype=np.float32)
    mask = np.zeros(4, dtype=bool)
    mask[moved] = True
    return PositionFrame.make(seq, IDS, pos, np.zeros((4, 3), np.float32), mask, full)


async def test_deltas_only_to_a_client_that_saw_the_previous_frame() -> None:
    hub = FrameHub()
    client = hub.add_client()
    client.subscribed, client.interval_s = True, 0.0
    sent: asyncio.Queue[bytes] = asyncio.Queue()
    sender = asyncio.create_task(hub.run_sender(client, sent.put))

    async def ids_sent_for(f: PositionFrame) -> list[int]:
        hub.publish(f)
        async with asyncio.timeout(5):
            return [r[0] for r in decode_by_spec(await sent.get())]

    try:
        everyone = IDS.tolist()
        assert await ids_sent_for(frame(0, [0])) == everyone  # a new client: full, even at seq 0
        assert await ids_sent_for(frame(1, [1, 3])) == [IDS[1], IDS[3]]  # in order: the delta
        assert await ids_sent_for(frame(3, [2])) == everyone  # missed seq 2: full again
        assert await ids_sent_for(frame(4, [2])) == [IDS[2]]
        assert await ids_sent_for(frame(5, [2], full=True)) == everyone  # the ids changed
        assert await ids_sent_for(frame(6, [])) == []  # nothing moved: an empty delta
    finally:
        hub.remove_client(client)
        await sender


async def test_a_busy_client_gets_only_the_newest_frame() -> None:
    hub = FrameHub()
    client = hub.add_client()
    client.subscribed, client.interval_s = True, 0.0
    release = asyncio.Event()
    got: list[bytes] = []

    async def stuck_send(data: bytes) -> None:
        got.append(data)
        await release.wait()

    sender = asyncio.create_task(hub.run_sender(client, stuck_send))
    try:
        hub.publish(frame(0, [0]))
        async with asyncio.timeout(5):
            while not got:
                await asyncio.sleep(0)
        for seq in range(1, 6):  # the client is stuck in its first send
            hub.publish(frame(seq, [0]))
        assert client.dropped == 4  # 1..4 replaced unsent; 5 waits in the slot
        release.set()
        async with asyncio.timeout(5):
            while len(got) < 2:
                await asyncio.sleep(0)
        assert decode_by_spec(got[1])[0][1] == (5.0, 5.0, 5.0)  # the newest, full (seq 0 -> 5)
        assert len(decode_by_spec(got[1])) == 4
    finally:
        hub.remove_client(client)
        release.set()
        await sender


async def test_v3_clients_share_one_encoding_and_a_slow_one_catches_up_exactly() -> None:
    """Issue 21: every v3 client that holds the state before gets the very same bytes (one
    encoding per frame); a client whose slot dropped frames gets a frame from the state
    written to its socket, and ends where the others are."""
    from transport.codec_v3 import Follower

    hub = FrameHub()
    rng = np.random.default_rng(0)
    ids = np.arange(500, dtype=np.uint32) | np.uint32(KNOWLEDGE_FLAG)
    pos = (rng.normal(size=(500, 3)) * 100).astype(np.float32)
    fast, slow = hub.add_client(), hub.add_client()
    got: dict[int, list[bytes]] = {fast.id: [], slow.id: []}
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def fast_send(data: bytes) -> None:
        got[fast.id].append(data)
        arrived.set()

    async def slow_send(data: bytes) -> None:
        got[slow.id].append(data)
        await release.wait()

    def publish(seq: int) -> None:
        nonlocal pos
        pos = pos + (rng.normal(size=pos.shape) * 2).astype(np.float32)
        hub.publish(PositionFrame.make(seq, ids, pos, np.zeros_like(pos), np.ones(500, bool), False))

    publish(0)
    senders = [asyncio.create_task(hub.run_sender(fast, fast_send)),
               asyncio.create_task(hub.run_sender(slow, slow_send))]
    try:
        for c in (fast, slow):
            hub.subscribe(c, 0.0, protocol=3)
        for seq in range(1, 6):
            async with asyncio.timeout(5):
                await arrived.wait()
            arrived.clear()
            publish(seq)
        async with asyncio.timeout(5):
            await arrived.wait()
        assert got[slow.id][0] is got[fast.id][0]  # the keyframe: one encoding for both
        assert len(got[slow.id]) == 1 and slow.dropped > 0  # stuck on it meanwhile
        release.set()
        async with asyncio.timeout(5):
            while slow.v3_at != fast.v3_at:
                await asyncio.sleep(0.01)
        a, b = Follower(), Follower()
        for client, follower in ((fast, a), (slow, b)):
            for data in got[client.id]:
                follower.apply(data)
        assert len(got[slow.id]) == 2  # the keyframe, then one delta from it over 5 states
        assert np.array_equal(a.q, b.q) and a.at == b.at
        assert np.abs(a.positions() - pos).max() <= 5000 / 65535 + 5000 * 2**-23
    finally:
        for c in (fast, slow):
            hub.remove_client(c)
        release.set()
        await asyncio.gather(*senders)


async def test_a_v3_resubscribe_during_a_send_gets_a_keyframe_next() -> None:
    """Found in review: a delta chosen before a resubscribe was written after its confirmation
    and then recorded as the client's state, wiping out the resubscribe's "holds nothing"; a
    client that had dropped its state got deltas it could not apply, or nothing at rest."""
    from transport.codec_v3 import KEY, frame_kind

    hub = FrameHub()
    rng = np.random.default_rng(1)
    ids = np.arange(50, dtype=np.uint32) | np.uint32(KNOWLEDGE_FLAG)
    pos = (rng.normal(size=(50, 3)) * 100).astype(np.float32)
    client = hub.add_client()
    got: list[bytes] = []
    gate = asyncio.Event()
    gate.set()

    async def send(data: bytes) -> None:
        got.append(data)
        await gate.wait()

    def publish(seq: int) -> None:
        nonlocal pos
        pos = pos + np.float32(3.0)
        hub.publish(PositionFrame.make(seq, ids, pos, np.zeros_like(pos), np.ones(50, bool), False))

    publish(0)
    sender = asyncio.create_task(hub.run_sender(client, send))
    try:
        hub.subscribe(client, 0.0, protocol=3)
        async with asyncio.timeout(5):
            while not got:
                await asyncio.sleep(0.01)
        gate.clear()
        publish(1)
        async with asyncio.timeout(5):
            while len(got) < 2:  # the delta, now stuck in its send
                await asyncio.sleep(0.01)
        hub.subscribe(client, 0.0, protocol=3)  # the client dropped its state meanwhile
        gate.set()
        async with asyncio.timeout(5):
            while len(got) < 3:
                await asyncio.sleep(0.01)
        assert frame_kind(got[2]) == KEY
    finally:
        hub.remove_client(client)
        gate.set()
        await sender


def test_a_slow_readers_state_is_kept_past_the_ring() -> None:
    from transport.codec_v3 import DELTA, RING, Chain, Follower, frame_kind

    rng = np.random.default_rng(2)
    ids = np.arange(100, dtype=np.uint32)
    pos = (rng.normal(size=(100, 3)) * 100).astype(np.float32)
    chain = Chain()
    chain.advance(ids, pos, 5000.0)
    slow = Follower()
    slow.apply(chain.frame_for(None))
    for _ in range(3 * RING):
        pos = pos + np.float32(1.0)
        chain.advance(ids, pos, 5000.0, held={slow.at})
    data = chain.frame_for(slow.at)
    assert frame_kind(data) == DELTA  # from its own state, not a keyframe
    slow.apply(data)
    assert slow.at == chain.state
