"""The leader lease: one key in a JetStream key-value bucket whose entries live ``lease_ttl_s``.

- **Election.** A daemon that finds no lease key creates it, an append that the server refuses
  when the key exists (expected last sequence 0). The revision of that create is the
  **epoch**: it only grows, and every daemon reads the same one.
- **Renewal.** The leader rewrites the key every round, each write conditioned on the revision
  of its last (``update(last=...)``), so a write after someone else's is refused.
- **Step-down.** A leader whose renewal fails, or whose own clock says the lease ran out
  before it could renew (it was stopped, SIGSTOP, or stalled), is a follower at once, before
  it writes anything. Its belief ends ``ttl * LEASE_MARGIN`` after the renewal it last *sent*,
  and the server keeps the entry at least ``ttl`` after it *received* it: the old leader lets
  go before anyone else can take over.
- **Followers** read the key each round: the leader's name and the epoch. An expired key (the
  bucket's max age) is absent, and the next round's create elects someone.

The key's value is JSON ``{"name", "instance", "epoch"}``; the first write cannot know its own
revision, so its epoch is 0 and readers take the revision instead.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import nats.js.errors

__all__ = ["LEASE_KEY", "LEASE_MARGIN", "Lease", "LeaseStore", "LeaseView"]


LEASE_KEY = "leader"
# The share of the TTL a leader trusts its lease for after the renewal it sent.
LEASE_MARGIN = 0.9


class LeaseStore(Protocol):
    """What the lease needs of a key-value bucket (``nats.js.kv.KeyValue``)."""

    async def get(self, key: str) -> Any: ...

    async def create(self, key: str, value: bytes) -> int: ...

    async def update(self, key: str, value: bytes, last: int | None = None) -> int: ...

    async def delete(self, key: str, last: int | None = None) -> bool: ...


@dataclass(frozen=True, slots=True)
class LeaseView:
    """What one round found. ``until`` is the monotonic time the leader's belief ends (0 for
    a follower); ``epoch`` 0 and ``leader`` None when no lease was readable."""

    role: Literal["leader", "follower"]
    epoch: int
    leader: str | None
    until: float = 0.0


class Lease:
    """One daemon's candidacy. Not thread-safe: one asyncio task runs its rounds."""

    def __init__(self, name: str, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.instance = uuid.uuid4().hex  # two daemons given one name still differ
        self.ttl_s = ttl_s
        self._clock = clock
        self._revision: int | None = None  # of our last write, while we lead
        self._sent_at = 0.0  # when that write was sent
        self.epoch = 0
        self.leader: str | None = None
        self.stepped_down: str | None = None  # why we last stopped leading

    @property
    def until(self) -> float:
        """When our leadership ends unless renewed (0 when we do not lead)."""
        if self._revision is None:
            return 0.0
        return self._sent_at + self.ttl_s * LEASE_MARGIN

    def leading(self) -> bool:
        return self._revision is not None and self._clock() < self.until

    def leading_epoch(self) -> int | None:
        """The epoch we lead, None when we do not: what a leader's writes carry (``epoch``
        alone is also a follower's view of the leader's)."""
        return self.epoch if self.leading() else None

    def view(self) -> LeaseView:
        if self.leading():
            return LeaseView("leader", self.epoch, self.name, self.until)
        return LeaseView("follower", self.epoch, self.leader)

    def step_down(self, reason: str) -> None:
        """Stop leading now (no write): a failed renewal, an expired belief, a lost link."""
        if self._revision is not None:
            self._revision = None
            self.stepped_down = reason
            if self.leader == self.name:
                self.leader = None

    async def round(self, store: LeaseStore) -> LeaseView:
        """Renew (as leader) or watch and maybe take (as follower) in ``store`` (the bucket,
        opened again after a lost server); the view after it.

        Exceptions other than the store's well-formed "no" (a lost connection, a timeout)
        propagate after a leader has stepped down: the caller reports the link's fault.
        """
        if self._revision is not None:
            if not self.leading():
                self.step_down("the lease ran out before it was renewed (was this process stopped?)")
            else:
                sent = self._clock()
                try:
                    self._revision = await store.update(
                        LEASE_KEY, self._value(self.epoch), last=self._revision)
                except nats.js.errors.KeyWrongLastSequenceError:
                    self.step_down("another daemon holds the lease")
                except BaseException:
                    self.step_down("the lease could not be renewed")
                    raise
                else:
                    self._sent_at = sent
                    return self.view()
        try:
            entry = await store.get(LEASE_KEY)
        except nats.js.errors.KeyNotFoundError:
            await self._campaign(store)
            return self.view()
        self._observe(entry.value, int(entry.revision))
        return self.view()

    async def _campaign(self, store: LeaseStore) -> None:
        sent = self._clock()
        try:
            revision = await store.create(LEASE_KEY, self._value(0))
        except nats.js.errors.KeyWrongLastSequenceError:
            return  # someone else created it first: read it next round
        self._revision, self._sent_at = revision, sent
        self.epoch, self.leader, self.stepped_down = revision, self.name, None

    def _observe(self, value: bytes, revision: int) -> None:
        """The key is the truth, even when its epoch is lower than one seen before (a NATS
        server restarted without its store starts counting again)."""
        try:
            record = json.loads(value)
            name, epoch = str(record["name"]), int(record["epoch"]) or revision
            mine = record.get("instance") == self.instance
        except (ValueError, TypeError, KeyError, AttributeError):
            return  # not a lease a daemon wrote: leave the view as it was
        # Our own lease, which we stopped trusting: nobody leads until it expires.
        self.epoch, self.leader = epoch, (None if mine else name)

    def _value(self, epoch: int) -> bytes:
        return json.dumps({"name": self.name, "instance": self.instance, "epoch": epoch}).encode()

    async def release(self, store: LeaseStore) -> None:
        """On a clean stop: delete the key if it is still ours, so a follower takes over at its
        next round instead of after the TTL."""
        if self._revision is not None and self.leading():
            revision, self._revision = self._revision, None
            await store.delete(LEASE_KEY, last=revision)
