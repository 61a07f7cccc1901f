"""Fan-out of position frames to ``/wss`` clients that never waits on a slow reader.

Each frame is encoded once for everyone (and a full encoding at most once, for clients that
missed a frame). Protocol v3 clients are served from one :class:`transport.codec_v3.Chain`:
the delta from the state before, encoded once and shared by every v3 client that holds that
state; a client that missed states gets a delta from the one it holds (one encoding per
lagging state) or the keyframe. Its baseline is what was written to its socket.

Each client has a slot that holds only the newest frame and its own sender
task: a slow client's slot is overwritten (the loss is counted) while the others go on. Frames
arrive from the layout actor's thread through ``call_soon_threadsafe``; everything else runs on
the event loop, so there are no locks here.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from actors.messages import PositionFrame
from transport.codec import encode_records
from transport.codec_v3 import Chain

__all__ = ["Client", "FrameHub", "Send"]


Send = Callable[[bytes], Awaitable[None]]


@dataclass(eq=False)
class Client:
    """One ``/wss`` connection's delivery state (lives and dies with the connection)."""

    id: int
    interval_s: float = 0.06
    subscribed: bool = False
    pending: PositionFrame | None = None
    last_seq: int = -1
    sent: int = 0
    dropped: int = 0  # replaced unsent while the client was still busy with an earlier one
    throttled: bool = False  # waiting out its interval: replacements then are by request
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    protocol: int = 2
    v3_at: tuple[int, int] | None = None  # v3: the (key, seq) state written to its socket
    subscriptions: int = 0  # bumped by each subscribe: a send chosen before one is stale


class _Encodings:
    """The latest frame's bytes: the delta once, the full frame once, both on demand."""

    def __init__(self, frame: PositionFrame) -> None:
        self.frame = frame
        self._delta: bytes | None = None
        self._full: bytes | None = None

    def delta(self) -> bytes:
        if self._delta is None:
            f = self.frame
            if f.full or f.moved.all():
                self._delta = self.full()
            else:
                m = f.moved
                self._delta = encode_records(f.wire_ids[m], f.positions[m], f.velocities[m])
        return self._delta

    def full(self) -> bytes:
        if self._full is None:
            f = self.frame
            self._full = encode_records(f.wire_ids, f.positions, f.velocities)
        return self._full


class FrameHub:
    def __init__(
        self,
        on_sent: Callable[[int, int], None] | None = None,
        on_dropped: Callable[[int], None] | None = None,
    ) -> None:
        self._clients: dict[int, Client] = {}
        self._ids = itertools.count(1)
        self._latest: _Encodings | None = None
        self._chain = Chain()
        self._on_sent = on_sent or (lambda _n, _b: None)
        self._on_dropped = on_dropped or (lambda _n: None)

    @property
    def clients(self) -> int:
        return len(self._clients)

    @property
    def latest(self) -> PositionFrame | None:
        """The newest frame published (what a viewer subscribing now is sent first)."""
        return self._latest.frame if self._latest is not None else None

    def add_client(self) -> Client:
        client = Client(next(self._ids))
        self._clients[client.id] = client
        return client

    def subscribe(self, client: Client, interval_s: float, protocol: int = 2,
                  resume: tuple[int, int] | None = None) -> None:
        """Start sending to ``client``, at once with the newest frame: a layout at rest
        publishes nothing, and a newcomer must still see where everything is. A v3 client
        may ``resume`` from the (key, seq) state it holds (after a reconnect): it then gets
        a delta from there while that state is kept, else a keyframe."""
        client.interval_s = interval_s
        client.subscribed = True
        client.protocol = protocol
        client.v3_at = resume if protocol == 3 else None
        client.subscriptions += 1
        if protocol == 3 and not self._chain.started and self._latest is not None:
            f = self._latest.frame
            self._chain.advance(f.wire_ids, f.positions, f.bounds)
        if client.pending is None and self._latest is not None:
            client.pending = self._latest.frame
            client.wake.set()

    def remove_client(self, client: Client) -> None:
        self._clients.pop(client.id, None)
        client.wake.set()

    def threadsafe_publisher(
        self, loop: asyncio.AbstractEventLoop
    ) -> Callable[[PositionFrame], None]:
        """A callback for the layout actor's thread that hands frames to the loop."""

        def publish(frame: PositionFrame) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing: nowhere to go
                loop.call_soon_threadsafe(self.publish, frame)

        return publish

    def publish(self, frame: PositionFrame) -> None:
        """On the loop: put the frame in every subscribed client's newest-frame slot."""
        self._latest = _Encodings(frame)
        v3 = any(c.subscribed and c.protocol == 3 for c in self._clients.values())
        fresh = False
        if v3:
            held = {c.v3_at for c in self._clients.values() if c.v3_at is not None}
            fresh = self._chain.advance(frame.wire_ids, frame.positions, frame.bounds, held)
        elif self._chain.started:
            self._chain.reset()
        dropped = 0
        for client in self._clients.values():
            if not client.subscribed or (client.protocol == 3 and not fresh):
                continue
            if client.pending is not None and not client.throttled:
                client.dropped += 1
                dropped += 1
            client.pending = frame
            client.wake.set()
        if dropped:
            self._on_dropped(dropped)

    def _bytes_for(self, client: Client, frame: PositionFrame) -> bytes:
        latest = self._latest
        if latest is None or latest.frame is not frame:
            latest = _Encodings(frame)
        if not frame.full and client.sent and client.last_seq == frame.seq - 1:
            return latest.delta()
        return latest.full()

    async def run_sender(self, client: Client, send: Send) -> None:
        """The client's own task: send its newest frame, at most once per interval."""
        last_sent_at = 0.0
        while client.id in self._clients:
            await client.wake.wait()
            client.wake.clear()
            frame = client.pending
            if frame is None:
                continue
            wait = last_sent_at + client.interval_s - time.monotonic()
            if wait > 0:
                client.throttled = True
                await asyncio.sleep(wait)
                client.throttled = False
                frame = client.pending  # a newer one may have arrived meanwhile
                if frame is None:
                    continue
            client.pending = None
            state = None
            subscription = client.subscriptions
            if client.protocol == 3:
                data, state = self._chain.frame_for(client.v3_at), self._chain.state
                if data is None:  # it holds the newest state already
                    continue
            else:
                data = self._bytes_for(client, frame)
            await send(data)
            if state is not None and client.subscriptions == subscription:
                # Its baseline: what was written to its socket. A subscribe while the send
                # waited (its confirmation holds the socket) said what the client holds now:
                # nothing (a keyframe next) or the state it resumes from.
                client.v3_at = state
            elif state is not None:
                client.wake.set()
            last_sent_at = time.monotonic()
            client.last_seq = frame.seq
            client.sent += 1
            self._on_sent(1, len(data))
