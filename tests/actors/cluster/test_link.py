"""The link's keeping of the shared state, with the bucket replaced by a recorder (the real
bucket's fencing is in test_state.py): what it sends, and what it never deletes."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from actors.cluster.frames import FrameCodec
from actors.cluster.link import NatsLink
from actors.cluster.settings import ClusterSettings
from transport.codec import FrameError
from transport.codec_v3 import Chain, Follower

EPOCH = 7


class Recorder:
    """What a claimed SharedState would be asked to do."""

    def __init__(self) -> None:
        self.epoch = EPOCH
        self.puts: list[str] = []
        self.deletes: list[str] = []

    async def put(self, name: str, value: bytes) -> None:
        self.puts.append(name)

    async def delete(self, name: str) -> None:
        self.deletes.append(name)


def leading_link(tmp_path: Path, records: Path) -> tuple[NatsLink, Recorder]:
    settings = ClusterSettings(nats_url="nats://127.0.0.1:1", node_name="a",
                               layout_dir=str(tmp_path / "layout"), records_dir=str(records))
    link = NatsLink(settings, lambda _m: None, lambda _e: None, FrameCodec(Chain, Follower, FrameError))
    lease: Any = link.lease
    lease._revision, lease._sent_at, lease.epoch = 1, time.monotonic(), EPOCH
    recorder = Recorder()
    link._state = recorder  # type: ignore[assignment]
    link._claimed = link._records_placed = link._layout_resumed = EPOCH
    return link, recorder


def test_a_records_folder_that_cannot_be_read_takes_no_swarm_as_gone(tmp_path: Path) -> None:
    """Found in review: a failed read of the folder (EMFILE, a folder briefly missing) made
    every kept record look deleted, and the leader deleted them all from the shared state."""
    link, recorder = leading_link(tmp_path, tmp_path / "missing")
    link._synced = {"swarms.3f0c1c2e-7d1b-4f6a-9a34-0c2d4e6f8a10": (1, 1)}
    assert asyncio.run(link._sync(records=True))
    assert recorder.deletes == []


def test_records_are_sent_when_they_change_and_deleted_when_they_go(tmp_path: Path) -> None:
    records = tmp_path / "swarms"
    records.mkdir()
    sid = "3f0c1c2e-7d1b-4f6a-9a34-0c2d4e6f8a10"
    (records / f"{sid}.json").write_text("{}")
    link, recorder = leading_link(tmp_path, records)
    assert asyncio.run(link._sync(records=True)) and recorder.puts == [f"swarms.{sid}"]
    assert asyncio.run(link._sync(records=True)) and recorder.puts == [f"swarms.{sid}"]
    os.unlink(records / f"{sid}.json")
    assert asyncio.run(link._sync(records=True)) and recorder.deletes == [f"swarms.{sid}"]


def test_nothing_is_sent_before_the_claim_is_read_or_while_not_leading(tmp_path: Path) -> None:
    """Found in review: a new leader's sync ran between its claim and its read of the shared
    state, and sent its own old files over the last leader's."""
    (tmp_path / "layout").mkdir()
    (tmp_path / "layout" / "graph.npz").write_bytes(b"old")
    link, recorder = leading_link(tmp_path, tmp_path / "swarms")
    link._claimed = 0  # claimed (the bucket's epoch is ours) but not read yet
    assert not asyncio.run(link._sync(records=True)) and recorder.puts == []
    link._claimed = EPOCH
    link._layout_resumed = 0  # read, but the layout has not taken up the kept files yet
    assert asyncio.run(link._sync(records=True)) and recorder.puts == []
    link._layout_resumed = EPOCH
    link.lease.step_down("test")
    assert not asyncio.run(link._sync(records=True)) and recorder.puts == []


def test_a_write_the_server_refuses_makes_the_leader_step_down(tmp_path: Path) -> None:
    """The server's fence (a newer leader claimed the bucket: test_state.py) ends this
    daemon's leadership at once, whatever its clock says."""
    from actors.cluster.state import StaleWrite

    (tmp_path / "layout").mkdir()
    (tmp_path / "layout" / "graph.npz").write_bytes(b"new")
    link, recorder = leading_link(tmp_path, tmp_path / "swarms")

    async def refused(name: str, value: bytes) -> None:
        raise StaleWrite("another leader wrote the shared state since")

    recorder.put = refused  # type: ignore[method-assign]
    assert link.lease.leading()
    assert not asyncio.run(link._sync(records=False))
    assert not link.lease.leading() and link.lease.stepped_down
