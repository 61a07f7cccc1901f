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
