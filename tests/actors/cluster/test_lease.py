"""The leader lease against a real NATS server with JetStream (tests/peers/nats.py): election,
the epoch, renewal, a refused renewal, a stopped leader, and a clean hand-over."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from actors.cluster.lease import LEASE_KEY, Lease
from tests.peers.nats import NatsServer

TTL = 1.0


class Clock:
    """A monotonic clock a test can move forward (a process stopped, then resumed)."""

    def __init__(self) -> None:
        self.skew = 0.0

    def __call__(self) -> float:
        return asyncio.get_running_loop().time() + self.skew


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server.url)
    yield nc
    await nc.close()


@pytest.fixture
async def bucket(client: Any) -> Any:
    return await client.jetstream().create_key_value(bucket="lease_test", history=1, ttl=TTL)


async def writes_to(client: Any, bucket: str) -> list[dict[str, Any]]:
    """Every write (also one the server refuses) sent to the lease key from now on."""
    seen: list[dict[str, Any]] = []

    async def record(msg: Any) -> None:
        seen.append(json.loads(msg.data))

    await client.subscribe(f"$KV.{bucket}.{LEASE_KEY}", cb=record)
    return seen


async def test_the_first_candidate_leads_and_its_create_revision_is_the_epoch(bucket: Any) -> None:
    a, b = Lease("a", TTL), Lease("b", TTL)
    first = await a.round(bucket)
    second = await b.round(bucket)
    entry = await bucket.get(LEASE_KEY)
    assert (first.role, first.leader) == ("leader", "a")
    assert first.epoch == entry.revision  # the create's revision
    assert (second.role, second.leader, second.epoch) == ("follower", "a", first.epoch)
    renewed = await a.round(bucket)  # a renewal is a new revision, the same epoch
    assert renewed.role == "leader" and renewed.epoch == first.epoch
    assert (await bucket.get(LEASE_KEY)).revision > entry.revision
    assert json.loads((await bucket.get(LEASE_KEY)).value)["epoch"] == first.epoch


async def test_a_follower_takes_over_once_the_leader_stops_renewing(bucket: Any, client: Any) -> None:
    a, b = Lease("a", TTL), Lease("b", TTL)
    old = await a.round(bucket)
    writes = await writes_to(client, "lease_test")
    started = asyncio.get_running_loop().time()
    while (view := await b.round(bucket)).role != "leader":
        assert asyncio.get_running_loop().time() - started < TTL + 2.0, "no takeover"
        await asyncio.sleep(0.1)
    took = asyncio.get_running_loop().time() - started
    assert view.epoch > old.epoch and view.leader == "b"
    assert took >= TTL * 0.9  # not before the lease ran out
    late = await a.round(bucket)  # the old leader, back: a follower of b
    assert (late.role, late.leader, late.epoch) == ("follower", "b", view.epoch)
    await client.flush()
    assert [w["name"] for w in writes] == ["b"]  # a sent nothing, not even a refused renewal


async def test_a_leader_whose_clock_passed_its_lease_steps_down_before_writing(client: Any) -> None:
    """Split brain at the lease: SIGSTOP past the TTL looks, to the process, like its clock
    jumping. It must not renew (the key may already be someone else's). A bucket whose
    entries live 30 s, so the server keeps the key however slow this machine is."""
    kv = await client.jetstream().create_key_value(bucket="lease_long", history=1, ttl=30.0)
    writes = await writes_to(client, "lease_long")
    clock = Clock()
    a = Lease("a", 30.0, clock=clock)
    await a.round(kv)
    revision = (await kv.get(LEASE_KEY)).revision
    clock.skew = 30.0  # "stopped" a whole TTL, to its own clock
    view = await a.round(kv)
    assert view.role == "follower"
    assert view.leader is None  # its own stale lease: nobody leads until it expires
    assert (await kv.get(LEASE_KEY)).revision == revision
    await client.flush()
    assert len(writes) == 1  # the create; no renewal sent
    assert "ran out" in (a.stepped_down or "")


async def test_a_renewal_refused_steps_down_at_once(bucket: Any) -> None:
    a = Lease("a", TTL)
    await a.round(bucket)
    await bucket.put(LEASE_KEY, json.dumps({"name": "z", "instance": "x", "epoch": 99}).encode())
    view = await a.round(bucket)
    assert (view.role, view.leader, view.epoch) == ("follower", "z", 99)
    assert a.stepped_down == "another daemon holds the lease"


async def test_a_clean_stop_hands_the_lease_over_at_once(bucket: Any) -> None:
    a, b = Lease("a", TTL), Lease("b", TTL)
    await a.round(bucket)
    assert (await b.round(bucket)).role == "follower"
    await a.release(bucket)
    view = await b.round(bucket)  # no TTL to wait
    assert (view.role, view.leader) == ("leader", "b")
