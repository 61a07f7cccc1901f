"""The cluster's shared state: a JetStream key-value bucket only the leader writes, every
write fenced.

What it holds today is the layout's durable state, the two files
:mod:`actors.layout_store` keeps on disk (``graph``: the knowledge graph; ``positions``: every
node's last position and the pins), so that a new leader resumes the layout where the old one
was, as a restart does from disk.

**Fencing.** Every write is a publish on the bucket's stream conditioned on the stream's last
sequence (``Nats-Expected-Last-Sequence``): the server refuses it if anyone wrote since this
leader's own last write. A new leader first *claims* the bucket, one such write of its epoch
conditioned on the sequence it just read; from then on, a write of an older leader (stopped,
then resumed with its old idea of the sequence) is refused by the server, whatever its clock
says. :class:`StaleWrite` is that refusal: the writer is no longer the leader.

**Size.** A value is cut into parts that fit the server's ``max_payload`` (a 100,000-node
positions file is 1.2 MB): keys ``<name>.<i>`` first, then ``<name>``, a small JSON manifest
(parts, size, SHA-256). A reader checks the digest, so parts of two different writes are never
taken for one value.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from typing import Any

import nats.js.errors

__all__ = ["SharedState", "StaleWrite"]

# room left in a message for the headers and the subject
HEADROOM = 4096
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a refused expected-last-sequence


class StaleWrite(RuntimeError):
    """The server refused a fenced write: someone else wrote since (a newer leader)."""


class SharedState:
    """One leader's handle on the bucket. Not thread-safe: the link's loop alone uses it."""

    def __init__(self, bucket: str) -> None:
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self._js: Any = None
        self._max_payload = 1 << 20
        self._last_seq: int | None = None  # of our last write, once claimed
        self.epoch = 0  # the epoch we claimed the bucket for (0: not claimed)
        self._lock: asyncio.Lock | None = None  # one write at a time: each names the last

    async def open(self, nc: Any, timeout: float) -> None:
        """The bucket, made on first use (one value per key, kept until replaced)."""
        js = nc.jetstream(timeout=timeout)
        try:
            await js.key_value(self.bucket)
        except nats.js.errors.BucketNotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # made meanwhile
                await js.create_key_value(bucket=self.bucket, history=1)
        self._js, self._max_payload = js, nc.max_payload
        self._last_seq, self.epoch = None, 0

    async def claim(self, epoch: int) -> None:
        """Fence the bucket for ``epoch``: from now on only our writes are accepted."""
        async with self._writing():
            for _ in range(5):  # an old leader's write may land between the read and the claim
                info = await self._js.stream_info(self.stream)
                self._last_seq = int(info.state.last_seq)
                try:
                    await self._write("epoch", json.dumps({"epoch": epoch}).encode())
                except StaleWrite:
                    continue
                self.epoch = epoch
                return
        raise StaleWrite("the shared state kept changing while this leader claimed it")

    def _writing(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    async def put(self, name: str, value: bytes) -> None:
        """Write ``value`` under ``name`` (after :meth:`claim`); :class:`StaleWrite` when fenced."""
        if not self.epoch:
            raise StaleWrite("the shared state is not claimed by this leader")
        async with self._writing():
            await self._put(name, value)

    async def delete(self, name: str) -> None:
        """Remove ``name`` (its manifest and parts), fenced like a write."""
        if not self.epoch:
            raise StaleWrite("the shared state is not claimed by this leader")
        async with self._writing():
            kv = await self._js.key_value(self.bucket)
            parts = 1
            with contextlib.suppress(nats.js.errors.KeyNotFoundError, ValueError, TypeError, KeyError):
                parts = int(json.loads((await kv.get(name)).value)["parts"])
            await self._write(name, b"", delete=True)
            for i in range(parts):
                await self._write(f"{name}.{i}", b"", delete=True)

    async def names(self, prefix: str) -> list[str]:
        """The names of the values under ``prefix`` (``swarms.``: one per swarm)."""
        kv = await self._js.key_value(self.bucket)
        try:
            keys = await kv.keys()
        except nats.js.errors.NoKeysError:
            return []
        return sorted(k for k in keys if k.startswith(prefix) and "." not in k[len(prefix):])

    async def _put(self, name: str, value: bytes) -> None:
        room = max(1, self._max_payload - HEADROOM)
        parts = [value[i:i + room] for i in range(0, len(value), room)] or [b""]
        for i, part in enumerate(parts):
            await self._write(f"{name}.{i}", part)
        manifest = {"parts": len(parts), "size": len(value), "epoch": self.epoch,
                    "sha256": hashlib.sha256(value).hexdigest()}
        await self._write(name, json.dumps(manifest).encode())

    async def get(self, name: str) -> bytes | None:
        """The value under ``name``; None when there is none (or it is not whole)."""
        kv = await self._js.key_value(self.bucket)
        for _ in range(3):  # a write in flight may replace parts under us: read again
            try:
                manifest = json.loads((await kv.get(name)).value)
                parts = [(await kv.get(f"{name}.{i}")).value or b""
                         for i in range(int(manifest["parts"]))]
            except nats.js.errors.KeyNotFoundError:
                return None
            except (ValueError, TypeError, KeyError):
                return None  # not a manifest this daemon wrote
            value = b"".join(parts)
            if hashlib.sha256(value).hexdigest() == manifest.get("sha256"):
                return value
        return None

    async def _write(self, key: str, value: bytes, delete: bool = False) -> None:
        headers = {"Nats-Expected-Last-Sequence": str(self._last_seq)}
        if delete:
            headers["KV-Operation"] = "DEL"
        try:
            ack = await self._js.publish(f"$KV.{self.bucket}.{key}", value, headers=headers)
        except nats.js.errors.APIError as exc:
            if exc.err_code == WRONG_LAST_SEQUENCE:
                raise StaleWrite(f"the server refused a write of {key!r}: another leader "
                                 f"wrote the shared state since") from None
            raise
        self._last_seq = int(ack.seq)
