"""The shared state bucket against a real NATS server: values larger than a message, and
fencing: once a newer leader claimed it, an older leader's write is refused by the server."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest

from actors.cluster.state import SharedState, StaleWrite
from tests.peers.nats import NatsServer


@pytest.fixture
async def connections(nats_server: NatsServer) -> AsyncIterator[list[Any]]:
    ncs = [await nats.connect(nats_server.url) for _ in range(2)]
    yield ncs
    for nc in ncs:
        await nc.close()


async def opened(nc: Any) -> SharedState:
    state = SharedState("state_test")
    await state.open(nc, timeout=2.0)
    return state


async def test_a_value_larger_than_a_message_comes_back_whole(connections: list[Any]) -> None:
    state = await opened(connections[0])
    await state.claim(3)
    value = os.urandom(2_500_000)  # the server's max_payload is 1 MB
    await state.put("positions", value)
    reader = await opened(connections[1])
    got = await reader.get("positions")
    assert got is not None and hashlib.sha256(got).digest() == hashlib.sha256(value).digest()
    assert await reader.get("graph") is None
    await state.put("positions", b"short")  # fewer parts than before: the old ones are not read
    assert await reader.get("positions") == b"short"


async def test_an_older_leaders_writes_are_refused_once_a_newer_one_claimed(
        connections: list[Any]) -> None:
    old, new = await opened(connections[0]), await opened(connections[1])
    await old.claim(5)
    await old.put("graph", b"old 1")
    await new.claim(9)
    with pytest.raises(StaleWrite):
        await old.put("graph", b"old 2")  # its clock says nothing: the server refuses it
    await new.put("graph", b"new")
    assert await new.get("graph") == b"new"
    with pytest.raises(StaleWrite):
        await old.put("positions", b"old 3")
    assert await new.get("positions") is None


async def test_writing_before_claiming_is_refused(connections: list[Any]) -> None:
    state = await opened(connections[0])
    with pytest.raises(StaleWrite):
        await state.put("graph", b"x")


async def test_names_and_a_fenced_delete(connections: list[Any]) -> None:
    old, new = await opened(connections[0]), await opened(connections[1])
    await old.claim(1)
    for name in ("swarms.a", "swarms.b", "graph"):
        await old.put(name, name.encode() * 10)
    assert await old.names("swarms.") == ["swarms.a", "swarms.b"]
    await old.delete("swarms.a")
    assert await old.get("swarms.a") is None and await old.names("swarms.") == ["swarms.b"]
    await new.claim(2)
    with pytest.raises(StaleWrite):
        await old.delete("swarms.b")  # a deposed leader deletes nothing either
    assert await new.get("swarms.b") == b"swarms.b" * 10
