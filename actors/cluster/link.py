"""The NATS connection on an asyncio loop of its own (nats-py is asyncio; actors are threads).

One thread runs one loop: connect behind the circuit breaker (the project's one breaker, with
the one backoff between attempts), open the bucket, then a round every ``round_s``: the lease
(:mod:`actors.cluster.lease`) and a heartbeat on the peers' subject. Each outcome goes to
``report`` as a :class:`LinkReport`; the link never raises into its owner.

Frames (:mod:`actors.cluster.frames`) share the connection: the leader publishes the newest
frame handed to :meth:`NatsLink.send_frame` (a slot: one waiting frame at most, newest wins)
while its lease holds; a follower decodes what it hears and hands each picture to
``received``, and asks for a keyframe when it has none it can build on.

The connection is ours to remake, not nats-py's: it is opened without automatic reconnects
(nats-py would retry its first connect for ever, and would buffer writes while reconnecting and
send them once back: a lease renewal sent after its leader stepped down). A failed round closes
it, the lease steps down, and the next connection comes after the backoff.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import nats
import nats.errors
import nats.js.api
import nats.js.errors
import structlog

from actors.circuit_breaker import BreakerOpen, CircuitBreaker
from actors.cluster.forward import FORWARDED_BY, RESPONSE_HEADERS, LeaderTimeout, Message, NoLeader
from actors.cluster.forward import decode as decode_message
from actors.cluster.forward import encode as encode_message
from actors.cluster.frames import FrameCodec, FrameReceiver, FrameSender, NeedKey, envelope_parts, sender_id
from actors.cluster.lease import Lease, LeaseView
from actors.cluster.newest import Newest, Waiting
from actors.cluster.settings import ClusterSettings
from actors.cluster.state import SharedState, StaleWrite
from actors.hive_mind.messages import TableChange
from actors.messages import PositionFrame

__all__ = ["LinkReport", "NatsLink"]


log = structlog.get_logger("actors.cluster")

# The longest a clean stop waits for each of: the round in flight, the lease's release, the
# connection's close (so stop() fits the supervisor's shutdown timeout).
STOP_STEP_S = 1.0
# A follower asks for a keyframe at most this often (a lost part makes every later one useless
# until the keyframe comes: one request for the lot).
KEY_REQUEST_S = 0.25
# Room a message keeps for the headers and the subject; a larger body goes through the
# object store.
MESSAGE_HEADROOM = 4096
# How long a body put in the object store is kept if nobody fetches (and deletes) it.
BODY_TTL_S = 300.0
# How often a leader looks for layout files its layout rewrote (two stat calls): a graph load
# reaches the shared state this long after the layout saved it, plus the upload.
STATE_POLL_S = 0.1
# How often a leader looks for swarm records that changed (a stat per swarm): a write made
# through the HTTP API is kept before it is answered (flush), a job's progress within this.
RECORDS_POLL_S = 1.0
# The longest a new leader takes to claim the shared state and read it.
PROMOTE_TIMEOUT_S = 30.0
# The longest the leader lets a forwarded request run on its own server.
FORWARD_RUN_S = 30.0


class BucketMismatch(RuntimeError):
    """The lease bucket's entries do not live ``lease_ttl_s``: leading on it is unsafe."""


# The layout's files (actors/layout_store.py) kept in the shared state, by name there.
LAYOUT_FILES = {"graph": "graph.npz", "positions": "positions.npz"}
# The hive-mind's swarm records (actors/hive_mind/records.py), one per swarm: swarms.<id>.
RECORDS = "swarms."


@dataclass(frozen=True, slots=True)
class TableRow:
    """A row of the leader's swarm table, heard by a follower."""

    epoch: int
    change: TableChange


@dataclass(frozen=True, slots=True)
class PinsForLeader:
    """A drag made on a follower's viewer (JSON ``{"ids", "positions"}``), for our layout."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Promoted:
    """This daemon leads ``epoch`` and has claimed the shared state: the layout's files as
    the last leader left them (a name is absent when none was kept), and the swarm records
    (swarm id -> the record file's bytes)."""

    epoch: int
    files: dict[str, bytes]
    records: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkReport:
    """One round's outcome: the lease as seen, the peers heard within a TTL (this daemon
    included), and the fault when the round failed (None when it worked)."""

    view: LeaseView
    peers: tuple[str, ...]
    fault: str | None
    breaker: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0


class NatsLink:
    def __init__(self, settings: ClusterSettings, tell: Callable[[Any], None],
                 failed: Callable[[BaseException], None], codec: FrameCodec) -> None:
        """``tell`` gets what the link has to say: each round's :class:`LinkReport`, each
        picture :class:`~actors.cluster.frames.Received` from the leader, and
        :class:`Promoted` once this daemon leads; ``failed`` a bug that ended the loop."""
        self.settings = settings
        self.name = settings.name
        self._report = tell
        self._failed = failed
        self._received = tell
        self.breaker = CircuitBreaker("nats", settings.breaker)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="cluster-nats", daemon=True)
        self._stop_requested = threading.Event()  # also before the loop has started
        self._stopping = asyncio.Event()  # the same, for the loop's waits (set on the loop)
        self._heard: dict[str, float] = {}  # peer name -> monotonic time last heard
        self._failures = 0  # connections in a row that failed or did not last (the backoff)
        self.lease = Lease(self.name, settings.lease_ttl_s)
        self._outgoing: tuple[PositionFrame, float] | None = None  # the newest local frame
        self._frame_ready = asyncio.Event()
        self._sender = FrameSender(codec)
        self._sender_id = sender_id(self.name)
        self._receiver = FrameReceiver(codec)
        self._pictures: Newest[Any] = Newest()  # the newest picture for the actor
        self._key_asked = (0.0, -1)  # (when, for which epoch) a follower last asked for a key
        self._nc: Any = None  # the connection being served
        self._state = SharedState(f"{settings.bucket}_state")
        self._promoting: asyncio.Future[None] | None = None
        self._synced: dict[str, tuple[int, int] | None] = {}  # shared name -> (mtime, size) sent
        self._records_placed = 0  # the claim whose records the actor put in records_dir
        self._claimed = 0  # the epoch whose claim (and read of the shared state) is complete
        self._layout_resumed = 0  # the claim whose layout files the actor's layout took up
        self._syncing = asyncio.Lock()
        self.local_url = ""  # this daemon's own HTTP server: where forwarded requests run
        self.api_token = ""  # and the token it asks for changes
        self._http: aiohttp.ClientSession | None = None
        self._http_sub: Any = None  # the leader's subscription to forwarded requests
        self._answering: set[asyncio.Future[None]] = set()
        self._bodies: Any = None  # the object store for large bodies
        self.forwarded = 0  # requests forwarded to the leader
        self.answered = 0  # forwarded requests this daemon ran as leader
        self.published = 0  # frames sent as leader
        self.dropped_stale = 0  # frame parts refused for an old epoch (mirrors the receiver)
        self.stale_rows = 0  # swarm-table rows refused for an old epoch
        self._rows: asyncio.Queue[bytes] = asyncio.Queue()  # table rows to publish, in order

    @property
    def subject(self) -> str:
        return f"hive.{self.settings.bucket}.peers"

    @property
    def frames_subject(self) -> str:
        return f"hive.{self.settings.bucket}.frames"

    @property
    def http_subject(self) -> str:
        """Where followers send the requests they forward; only the leader listens."""
        return f"hive.{self.settings.bucket}.http"

    @property
    def pins_subject(self) -> str:
        """Drags made on a follower's viewers, for the leader's layout."""
        return f"hive.{self.settings.bucket}.pins"

    def forward(self, request: bytes, timeout: float) -> concurrent.futures.Future[bytes]:
        """From any thread: send ``request`` (an encoded :class:`Message`) to the leader; the
        future's result is the encoded response, or :class:`NoLeader` / :class:`LeaderTimeout`."""
        return asyncio.run_coroutine_threadsafe(self._request(request, timeout), self._loop)

    def publish_pins(self, data: bytes) -> None:
        """From any thread: a follower's drag, for the leader (lost if nobody leads)."""
        with contextlib.suppress(RuntimeError):
            asyncio.run_coroutine_threadsafe(self._publish_quietly(self.pins_subject, data), self._loop)

    @property
    def table_subject(self) -> str:
        """The leader's swarm table, row by row, for the followers' copies."""
        return f"hive.{self.settings.bucket}.swarms"

    def publish_table(self, session_id: str, view: bytes | None) -> None:
        """From any thread: a row of the leader's swarm table changed (sent if we still lead
        when the loop gets to it, with the epoch we lead)."""
        def send() -> None:
            epoch = self.lease.leading_epoch()
            if epoch is None:
                return
            self._rows.put_nowait(json.dumps({"epoch": epoch, "id": session_id, "view": (
                view.decode() if view is not None else None)}).encode())

        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(send)

    @property
    def key_subject(self) -> str:
        """Where followers ask the leader for a keyframe."""
        return f"hive.{self.settings.bucket}.frames.key"

    def send_frame(self, frame: PositionFrame, at: float) -> None:
        """From any thread: publish ``frame`` (made at wall time ``at``) if we lead when the
        loop gets to it; a frame still waiting is replaced."""
        self._outgoing = (frame, at)
        with contextlib.suppress(RuntimeError):  # the loop closed: the link is stopping
            self._loop.call_soon_threadsafe(self._frame_ready.set)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 4 * STOP_STEP_S) -> None:
        """End the rounds, hand the lease back if we hold it, close the connection. Safe to
        call more than once, from any thread, before or after the loop started."""
        self._stop_requested.set()
        with contextlib.suppress(RuntimeError):  # the loop already closed
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # a bug here: the actor fails and restarts
            log.exception("cluster.link_failed")
            self._failed(exc)
        finally:
            with contextlib.suppress(Exception):
                self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _main(self) -> None:
        try:
            await self._connections()
        finally:
            if self._http is not None:
                with contextlib.suppress(Exception):
                    await self._http.close()

    async def _connections(self) -> None:
        if self._stop_requested.is_set():
            return
        while not self._stopping.is_set():
            nc = await self._connect()
            if nc is not None:
                try:
                    await self._serve(nc)
                finally:
                    await self._close(nc)
            if not self._stopping.is_set():
                await self._pause(self.settings.backoff.delay(self._failures))
                self._failures += 1
        # stopped while not connected: nothing to release

    async def _serve(self, nc: Any) -> None:
        """Rounds on one connection until one fails or the link stops."""
        self._nc = nc
        await nc.subscribe(self.subject, cb=self._heard_from)
        await nc.subscribe(self.frames_subject, cb=self._frame_in)
        await nc.subscribe(self.key_subject, cb=self._key_wanted)
        await nc.subscribe(self.pins_subject, cb=self._pins_in)
        await nc.subscribe(self.table_subject, cb=self._table_in)
        self._http_sub, self._bodies = None, None
        self._key_asked = (0.0, -1)
        self._sender.want_key()
        with contextlib.suppress(Exception):  # a lost server: the first round reports it
            async with asyncio.timeout(self.settings.connect_timeout):
                await self._state.open(nc, self.settings.connect_timeout)
        tasks = [asyncio.ensure_future(self._frames_out(nc)),
                 asyncio.ensure_future(self._state_out()),
                 asyncio.ensure_future(self._rows_out(nc))]
        try:
            await self._rounds(nc)
        finally:
            for task in [*tasks, self._promoting, *self._answering]:
                if task is not None:
                    task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._promoting = None

    async def _rounds(self, nc: Any) -> None:
        kv = None
        while not self._stopping.is_set():
            try:
                kv = kv or await self._bucket(nc)
                round_ = asyncio.ensure_future(self._round(nc, kv))
                stop = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({round_, stop}, return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                if not round_.done():  # stopping: give the round a moment, then cancel it
                    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                        await asyncio.wait_for(round_, STOP_STEP_S)
                    break
                round_.result()
            except BreakerOpen as exc:
                self._lost(f"NATS at {self.settings.redacted_url}: {exc}")
                return
            except Exception as exc:  # noqa: BLE001 - a lost server, a timeout: the peer's fault
                self.breaker.failure(exc)
                self._lost(f"NATS at {self.settings.redacted_url}: {_describe(exc)}")
                return
            await self._pause(self.settings.round_s)
        if kv is not None:  # a clean stop: a follower takes over at its next round
            with contextlib.suppress(Exception):
                async with asyncio.timeout(STOP_STEP_S):
                    await self.lease.release(kv)

    async def _connect(self) -> Any:
        """One connection attempt behind the breaker; None (reported) when it failed."""
        s = self.settings
        try:
            self.breaker.check()
            async with asyncio.timeout(s.connect_timeout + 1.0):
                nc = await nats.connect(
                    servers=[s.nats_url], name=f"hive-supervisor {self.name}",
                    connect_timeout=s.connect_timeout, allow_reconnect=False,
                    no_echo=True,  # a leader does not hear its own frames
                    # a dead TCP connection noticed within about two TTLs
                    ping_interval=max(1, round(s.lease_ttl_s)), max_outstanding_pings=2,
                    error_cb=self._quiet,
                )
        except BreakerOpen as exc:
            self._publish_fault(f"NATS at {s.redacted_url} unreachable: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - any failure to connect is the peer's
            self.breaker.failure(exc)
            self._publish_fault(f"NATS at {s.redacted_url} unreachable: {_describe(exc)}")
            return None
        self.breaker.success()
        log.info("cluster.connected", url=s.redacted_url, node=self.name)
        return nc

    async def _close(self, nc: Any) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_STEP_S):
                await nc.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _round(self, nc: Any, kv: Any) -> None:
        s = self.settings
        self.breaker.check()
        async with asyncio.timeout(s.connect_timeout):
            view = await self.lease.round(kv)
            await nc.publish(self.subject, json.dumps(
                {"name": self.name, "role": view.role, "epoch": view.epoch}).encode())
        self.breaker.success()
        self._failures = 0
        self._heard[self.name] = time.monotonic()
        if view.role == "follower" and view.leader is not None:
            # a leader we have no picture from (we joined, or it is new): ask once per epoch
            await self._ask_key(nc, view.epoch, once=True)
        await self._listen_for_requests(nc, view.role == "leader")
        if (view.role == "leader" and self._state.epoch != view.epoch
                and (self._promoting is None or self._promoting.done())):
            self._promoting = asyncio.ensure_future(self._promote(view.epoch))
        self._report(LinkReport(view, self._peers(), None, self.breaker.describe(), time.monotonic()))

    async def _bucket(self, nc: Any) -> Any:
        """The lease bucket, made on first use with entries that live one TTL; refused when
        it exists with another life (made by daemons with another ``lease_ttl_s``, or by
        hand): the server would expire the lease at a time its leader does not expect."""
        s = self.settings
        js = nc.jetstream(timeout=s.connect_timeout)
        try:
            kv = await js.key_value(s.bucket)
        except nats.js.errors.BucketNotFoundError:
            with contextlib.suppress(nats.js.errors.BadRequestError):  # made meanwhile
                await js.create_key_value(bucket=s.bucket, history=1, ttl=s.lease_ttl_s)
            kv = await js.key_value(s.bucket)
        ttl = (await kv.status()).ttl
        if not ttl or abs(ttl - s.lease_ttl_s) > 0.01:
            raise BucketMismatch(
                f"bucket {s.bucket!r} keeps entries {f'{ttl:g} s' if ttl else 'for ever'}, but "
                f"lease_ttl_s is {s.lease_ttl_s:g}: every daemon must use the bucket's value, or "
                f"delete the bucket to change it")
        return kv

    def _lost(self, fault: str) -> None:
        self.lease.step_down(fault)
        self._publish_fault(fault)

    def _publish_fault(self, fault: str) -> None:
        self._report(LinkReport(self.lease.view(), self._peers(), fault, self.breaker.describe(),
                                time.monotonic()))

    def _peers(self) -> tuple[str, ...]:
        horizon = time.monotonic() - self.settings.lease_ttl_s
        return tuple(sorted(name for name, at in self._heard.items() if at >= horizon))

    async def _heard_from(self, msg: Any) -> None:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            name = str(json.loads(msg.data)["name"])
            self._heard[name] = time.monotonic()

    # -- forwarded requests -----------------------------------------------------------------

    async def _listen_for_requests(self, nc: Any, leading: bool) -> None:
        """Only the leader listens: with nobody listening a follower is told at once."""
        if leading and self._http_sub is None:
            self._http_sub = await nc.subscribe(self.http_subject, cb=self._http_in)
        elif not leading and self._http_sub is not None:
            sub, self._http_sub = self._http_sub, None
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _request(self, request: bytes, timeout: float) -> bytes:
        nc = self._nc
        if nc is None or not nc.is_connected:
            raise NoLeader(f"not connected to NATS at {self.settings.redacted_url}")
        self.forwarded += 1
        try:
            data = await self._outbound(nc, request)
            reply = await nc.request(self.http_subject, data, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise NoLeader("no daemon leads the cluster now") from None
        except nats.errors.TimeoutError:
            raise LeaderTimeout(f"the leader did not answer within {timeout:g} s") from None
        return await self._inbound(nc, reply.data)

    async def _http_in(self, msg: Any) -> None:
        if not self.lease.leading():
            return  # a leader no more: no answer, the follower hears from the next one
        task = asyncio.ensure_future(self._answer(msg))  # requests run side by side
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)

    async def _answer(self, msg: Any) -> None:
        nc = self._nc
        epoch = self.lease.leading_epoch()
        try:
            request = decode_message(await self._inbound(nc, msg.data))
            response = await self._run_here(request)
            if epoch is None or self.lease.leading_epoch() != epoch:
                # the lease lapsed while it ran: what we did is not the cluster's (our
                # hive-mind stands down); the client retries with the next leader
                response = Message({"status": 503, "headers": {
                    "Content-Type": "application/json", "Retry-After": "1"}}, json.dumps(
                    {"error": "the leader lost its lease while running this request: try again "
                              "(with the same Idempotency-Key)"}).encode())
        except Exception as exc:  # noqa: BLE001 - said to the follower, which tells its client
            log.warning("cluster.forwarded_failed", error=_describe(exc))
            body = json.dumps({"error": f"the leader could not run the request: {_describe(exc)}"})
            response = Message({"status": 502, "headers": {"Content-Type": "application/json"}},
                               body.encode())
        self.answered += 1
        with contextlib.suppress(Exception):  # the follower gave up meanwhile
            await msg.respond(await self._outbound(nc, encode_message(response)))

    async def _run_here(self, request: Message) -> Message:
        """Run a forwarded request against this daemon's own HTTP server."""
        if not self.local_url:
            raise RuntimeError("this daemon's HTTP address is not known yet")
        meta = request.meta
        given = meta.get("headers")
        headers = {str(k): str(v) for k, v in given.items()} if isinstance(given, dict) else {}
        headers[FORWARDED_BY] = str(meta.get("from", ""))
        # the follower checked its client (token, Host, Origin); peers on the NATS server are
        # trusted, and a request its own actors forward (a voice command) carries no token
        headers.pop("Authorization", None)
        if self.api_token:
            headers["Authorization"] = f"Bearer {self.api_token}"
        if self._http is None:
            self._http = aiohttp.ClientSession(auto_decompress=False)
        async with self._http.request(
                str(meta["method"]), self.local_url + str(meta["path"]), headers=headers,
                data=request.body, allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=FORWARD_RUN_S)) as r:
            body = await r.read()
            kept = {k: r.headers[k] for k in RESPONSE_HEADERS if k in r.headers}
            if "Content-Encoding" in r.headers:
                kept["Content-Encoding"] = r.headers["Content-Encoding"]
            return Message({"status": r.status, "headers": kept}, body)

    async def _outbound(self, nc: Any, data: bytes) -> bytes:
        """``data`` as one message: itself, or (too large) a pointer into the object store."""
        if len(data) <= nc.max_payload - MESSAGE_HEADROOM:
            return data
        store = await self._object_store(nc)
        name = uuid.uuid4().hex
        await store.put(name, data)
        return encode_message(Message({"object": name}))

    async def _inbound(self, nc: Any, data: bytes) -> bytes:
        """The message's data, fetched (and deleted) from the object store when it points there."""
        message = decode_message(data)
        name = message.meta.get("object")
        if not isinstance(name, str) or set(message.meta) != {"object"}:
            return data
        store = await self._object_store(nc)
        result = await store.get(name)
        with contextlib.suppress(Exception):
            await store.delete(name)
        return bytes(result.data or b"")

    async def _object_store(self, nc: Any) -> Any:
        if self._bodies is None:
            js = nc.jetstream(timeout=self.settings.connect_timeout * 4)
            name = f"{self.settings.bucket}_bodies"
            try:
                self._bodies = await js.object_store(name)
            except nats.js.errors.NotFoundError:
                with contextlib.suppress(nats.js.errors.BadRequestError):
                    await js.create_object_store(name, config=nats.js.api.ObjectStoreConfig(
                        bucket=name, ttl=BODY_TTL_S))
                self._bodies = await js.object_store(name)
        return self._bodies

    async def _rows_out(self, nc: Any) -> None:
        """The table's rows, one at a time and in order (a follower applies them in order)."""
        while True:
            data = await self._rows.get()
            with contextlib.suppress(Exception):  # a lost server: the next round reports it
                await nc.publish(self.table_subject, data)

    async def _table_in(self, msg: Any) -> None:
        if self.lease.leading():
            return
        try:
            row = json.loads(msg.data)
            epoch, sid, view = int(row["epoch"]), str(row["id"]), row["view"]
        except (ValueError, TypeError, KeyError):
            return
        if epoch < self.lease.epoch:  # a deposed leader's: refused like its frames
            self.stale_rows += 1
            return
        self._received(TableRow(epoch, TableChange(sid, view.encode() if view is not None else None)))

    async def _pins_in(self, msg: Any) -> None:
        if self.lease.leading():
            self._received(PinsForLeader(bytes(msg.data)))

    async def _publish_quietly(self, subject: str, data: bytes) -> None:
        nc = self._nc
        if nc is not None and nc.is_connected:
            with contextlib.suppress(Exception):
                await nc.publish(subject, data)

    # -- the shared state ----------------------------------------------------------------------

    async def _promote(self, epoch: int) -> None:
        """Claim the shared state for ``epoch`` and hand what the last leader kept (the
        layout's files, the swarm records) to the actor."""
        try:
            async with asyncio.timeout(PROMOTE_TIMEOUT_S):
                await self._state.claim(epoch)
                files = {}
                for name in LAYOUT_FILES:
                    value = await self._state.get(name)
                    if value is not None:
                        files[name] = value
                records = {}
                for name in await self._state.names(RECORDS):
                    value = await self._state.get(name)
                    if value is not None:
                        records[name[len(RECORDS):]] = value
        except Exception as exc:  # noqa: BLE001 - the next round tries again, or steps down
            log.warning("cluster.claim_failed", epoch=epoch, error=_describe(exc))
            self._state.epoch = 0
            return
        self._synced = {}
        self._records_placed = self._layout_resumed = 0  # the actor says when each is in place
        self._claimed = epoch
        log.info("cluster.state_claimed", epoch=epoch, files={k: len(v) for k, v in files.items()},
                 records=len(records))
        self._received(Promoted(epoch, files, records))

    def records_placed(self, epoch: int) -> None:
        """From any thread: the records of ``epoch``'s claim are in ``records_dir`` now (what
        is there from now on is ours to keep in the shared state)."""
        def placed() -> None:
            self._records_placed = epoch
            local = self._local_files(records=True) or {}
            self._synced = {name: stat for name, stat in self._synced.items()
                            if not name.startswith(RECORDS)}
            self._synced.update({name: _stat(path) for name, path in local.items()
                                 if name.startswith(RECORDS)})

        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(placed)

    def layout_resumed(self, epoch: int, kept: frozenset[str]) -> None:
        """From any thread: the layout took up ``epoch``'s shared files (``kept``: the names
        the shared state had). Those files as they are now are not sent again, only what the
        layout writes from now on (not a late save of the layout it ran before); a file the
        shared state did not have is sent as it is (the first leader's own)."""
        def resumed() -> None:
            self._layout_resumed = epoch
            for name, path in (self._local_files() or {}).items():
                if name in LAYOUT_FILES and name in kept:
                    self._synced[name] = _stat(path)

        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(resumed)

    def flush(self) -> concurrent.futures.Future[bool]:
        """From any thread: keep what changed in the shared state now (a write the leader just
        accepted); the future says whether it was kept (False: not leading, or it failed)."""
        return asyncio.run_coroutine_threadsafe(self._sync(records=True), self._loop)

    async def _state_out(self) -> None:
        """While we lead: the layout's files every STATE_POLL_S, the records every
        RECORDS_POLL_S (and whenever :meth:`flush` asks), into the shared state."""
        polls = 0
        while True:
            await asyncio.sleep(STATE_POLL_S)
            polls += 1
            await self._sync(records=polls % round(RECORDS_POLL_S / STATE_POLL_S) == 0)

    async def _sync(self, records: bool) -> bool:
        epoch = self.lease.leading_epoch()
        if epoch is None or self._claimed != epoch or self._state.epoch != epoch:
            return False
        async with self._syncing:
            local = self._local_files(records)
            if local is None:  # the records folder could not be read: nothing is taken as gone
                local, records = self._local_files(False) or {}, False
            if self._layout_resumed != epoch:
                local = {n: p for n, p in local.items() if n not in LAYOUT_FILES}
            stats = {name: _stat(path) for name, path in local.items()}
            name = ""
            try:
                for name, stat in stats.items():
                    if stat is None or stat == self._synced.get(name):
                        continue
                    data = await asyncio.to_thread(_read, local[name])
                    await self._state.put(name, data)
                    self._synced[name] = stat
                if records and self._records_placed == self._state.epoch:
                    for name in [n for n in self._synced if n.startswith(RECORDS) and n not in local]:
                        await self._state.delete(name)  # a swarm forgotten (removed, expired)
                        del self._synced[name]
            except StaleWrite as exc:
                self.lease.step_down(str(exc))
                log.warning("cluster.state_write_refused", name=name, error=str(exc))
                return False
            except Exception as exc:  # noqa: BLE001 - a lost server or file: tried again
                log.warning("cluster.state_not_sent", name=name, error=_describe(exc))
                return False
        return True

    def _local_files(self, records: bool = False) -> dict[str, str] | None:
        """Shared-state name -> local path: the layout's files, and (``records``, once the
        records of this claim are in place) one per swarm record; None when the records
        folder could not be read (a swarm must not be taken as gone for that)."""
        s = self.settings
        files = {name: os.path.join(s.layout_dir, file)
                 for name, file in LAYOUT_FILES.items()} if s.layout_dir else {}
        if records and s.records_dir and self._records_placed == self._state.epoch:
            try:
                with os.scandir(s.records_dir) as entries:
                    for entry in entries:
                        if entry.name.endswith(".json") and not entry.name.startswith("."):
                            files[RECORDS + entry.name[:-len(".json")]] = entry.path
            except OSError as exc:
                log.warning("cluster.records_unreadable", folder=s.records_dir, error=str(exc))
                return None
        return files

    # -- frames ------------------------------------------------------------------------------

    async def _frames_out(self, nc: Any) -> None:
        """The leader's publisher: the newest local frame, encoded once, in parts that fit."""
        while True:
            await self._frame_ready.wait()
            self._frame_ready.clear()
            item = self._outgoing  # kept: a keyframe asked for later re-sends it
            if item is None:
                continue
            if not self.lease.leading() or len(self._peers()) < 2:
                self._sender.want_key()  # nobody follows this leader's states yet
                continue
            try:
                await self._publish_frame(nc, *item)
            except Exception as exc:  # noqa: BLE001 - a lost server: the next round reports it
                self._sender.want_key()
                log.warning("cluster.frame_not_sent", error=_describe(exc))

    async def _publish_frame(self, nc: Any, frame: PositionFrame, at: float) -> None:
        epoch = self.lease.leading_epoch()
        if epoch is None:
            return
        data = self._sender.encode(frame)
        if data is None:
            return
        for part in envelope_parts(data, epoch, at, self._sender.frames, nc.max_payload,
                                   self._sender_id):
            if self.lease.leading_epoch() != epoch:  # the lease lapsed mid-frame: the rest is stale
                self._sender.want_key()
                return
            await nc.publish(self.frames_subject, part)
        self.published += 1

    async def _frame_in(self, msg: Any) -> None:
        if self.lease.leading():
            return
        try:
            received = self._receiver.take(msg.data, self.lease.epoch)
        except NeedKey:
            await self._ask_key(self._nc, self._receiver.epoch)
            return
        finally:
            self.dropped_stale = self._receiver.stale
        if received is not None and self._pictures.offer(received):
            self._received(Waiting(self._pictures))  # the newest picture, once taken

    async def _key_wanted(self, _msg: Any) -> None:
        if self.lease.leading():
            self._sender.want_key()
            self._frame_ready.set()

    async def _ask_key(self, nc: Any, epoch: int, once: bool = False) -> None:
        when, asked_epoch = self._key_asked
        now = time.monotonic()
        if (once and asked_epoch == epoch) or now - when < KEY_REQUEST_S:
            return
        self._key_asked = (now, epoch)
        with contextlib.suppress(Exception):  # the round that follows reports a lost server
            await nc.publish(self.key_subject, self.name.encode())

    async def _quiet(self, exc: Exception) -> None:
        log.debug("cluster.nats_error", error=_describe(exc))


def _stat(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
