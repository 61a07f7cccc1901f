"""The cluster actor: owns the NATS connection (``link``) as ``actors/mcp`` owns its pool, and
answers what this daemon is in the cluster: its role, the epoch, the leader and the peers.

The role is judged when it is asked, from the lease's own deadline, not only from the last
report: a link stalled in a call (or a process stopped and resumed) is a follower the moment
its lease runs out, whether or not a report has come since.

It is also what this daemon's viewers see. In a cluster the ``FrameHub`` subscribes here, not
to the layout: a leader shows its own layout's frames (``LocalFrame``, and publishes them for
the followers), a follower shows the leader's (``Received`` from the link). The first frame
from a source other than the last one's is sent whole, and frames are numbered here, so a
viewer's deltas always follow the frame before.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pykka
import structlog

from actors.cluster.forward import Message
from actors.cluster.forward import decode as decode_message
from actors.cluster.forward import encode as encode_message
from actors.cluster.frames import FrameCodec, Received
from actors.cluster.link import LinkReport, NatsLink, PinsForLeader, Promoted, TableRow
from actors.cluster.messages import ClusterState, Flush, Forward, GetCluster, ServingAt
from actors.cluster.newest import Newest, Waiting
from actors.cluster.settings import ClusterSettings
from actors.hive_mind.messages import (
    CHARGE,
    SESSION_ID,
    ReplaceTable,
    StandDown,
    TableChange,
    TakeCharge,
)
from actors.layout_store import SavedLayout, saved_from_bytes
from actors.messages import (
    ActorStatus,
    GetSnapshot,
    PinNodes,
    PositionFrame,
    ResumeLayout,
    StatusQuery,
)
from actors.subscribers import Subscribers
from supervisor import ChildContext, ChildUnavailable, SupervisionError, UnknownChild, context_of

__all__ = ["ClusterActor", "LocalFrame", "frames_to"]


log = structlog.get_logger("actors.cluster")

MAX_TABLE = 10_000  # swarms a follower copies at most (the API's largest page)
TABLE_FETCH_S = 10.0
RESUME_ASK_S = 60.0  # a layout taking up a large graph (or still warming up) may be slow


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """A frame of this daemon's own layout, made at wall time ``at``."""

    frame: PositionFrame
    at: float


def frames_to(cluster: Any) -> Callable[[PositionFrame], None]:
    """The layout's subscriber callback for the cluster actor at ``cluster`` (an address):
    the newest frame in a slot, one message while the actor has not taken it."""
    slot: Newest[LocalFrame] = Newest()

    def forward(frame: PositionFrame) -> None:
        if slot.offer(LocalFrame(frame, time.time())):
            try:
                cluster.tell(Waiting(slot))
            except Exception:  # noqa: BLE001 - restarting: the next frame tells again
                slot.untold()

    return forward


def _place_records(folder: Path, records: dict[str, bytes]) -> None:
    """``records`` (swarm id -> a record file's bytes) as the only records in ``folder``,
    each written whole and renamed into place."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.json"):
        if old.stem not in records:
            old.unlink(missing_ok=True)
    for sid, data in records.items():
        if not SESSION_ID.fullmatch(sid):
            log.warning("cluster.record_skipped", name=sid[:80])
            continue
        partial = folder / f".{sid}.json.cluster.tmp"
        partial.write_bytes(data)
        os.replace(partial, folder / f"{sid}.json")


def _with_picture(saved: SavedLayout, picture: PositionFrame | None) -> SavedLayout:
    """``saved`` with the positions of ``picture`` (the leader's last frame) over its own."""
    if picture is None or not len(picture):
        return saved
    ids = picture.wire_ids.astype(np.int64)
    older = ~np.isin(saved.wire_ids, ids)
    return SavedLayout(saved.graph, np.concatenate([saved.wire_ids[older], ids]),
                       np.concatenate([saved.positions[older], picture.positions]).astype(np.float32),
                       saved.pins)


@dataclass(frozen=True, slots=True)
class _TableTaken:
    epoch: int
    ok: bool


@dataclass(frozen=True, slots=True)
class _Snapshot:
    promoted: Promoted
    frame: Any  # the layout's snapshot, or the exception its ask raised


def _ask_aside(address: Any, message: Any, timeout: float, me: Any,
               reply: Callable[[Any], Any]) -> None:
    """Ask ``address`` on a thread of its own and tell ``me`` ``reply(answer)`` (the answer,
    or the exception): the actor's thread never waits on another actor."""
    def ask() -> None:
        try:
            answer = address.ask(message, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - said to the actor, which tries again
            answer = exc
        with contextlib.suppress(pykka.ActorDeadError):
            me.tell(reply(answer))

    threading.Thread(target=ask, name="cluster-ask", daemon=True).start()


@dataclass(frozen=True, slots=True)
class _TableFetched:
    epoch: int
    future: concurrent.futures.Future[bytes]


@dataclass(frozen=True, slots=True)
class _LinkFailed:
    error: BaseException


class ClusterActor(pykka.ThreadingActor):
    supervision: ChildContext

    def __init__(self, settings: ClusterSettings, codec: FrameCodec) -> None:
        """``codec``: protocol v3 (the daemon hands in transport's: :class:`FrameCodec`)."""
        super().__init__()
        self.settings = settings
        self._codec = codec
        self._report: LinkReport | None = None
        self._role: str | None = None
        self._link: NatsLink | None = None
        self._subscribers: Subscribers[PositionFrame] = Subscribers("cluster", context_of(self))
        self._local: LocalFrame | None = None  # the layout's newest frame
        self._source: str | None = None  # "local" or "remote": where the last shown frame came from
        self._source_seq = -1  # that frame's number in its source
        self._seq = 0  # of the frames shown
        self._shown_remote = 0
        self._last_age_s = 0.0
        self._remote: PositionFrame | None = None  # the leader's last picture
        self._table_epoch = 0  # the leader's epoch whose whole swarm table our hive-mind holds
        self._fetching: int | None = None  # the epoch of a table fetch in flight
        self._rows_meanwhile: list[TableChange] = []  # rows heard while it is in flight
        self._promoted: Promoted | None = None  # a promotion still being taken up
        self._taken: list[bool | None] = [False, False]  # (swarms, layout): None under way

    def on_start(self) -> None:
        ref = self.actor_ref

        def tell(message: Any) -> None:
            with contextlib.suppress(pykka.ActorDeadError):  # stopping: nobody to tell
                ref.tell(message)

        self._link = NatsLink(self.settings, tell, lambda exc: tell(_LinkFailed(exc)), self._codec)
        serving: ServingAt = self.supervision.kept(ServingAt(""), name="serving_at")
        self._link.local_url, self._link.api_token = serving.url, serving.api_token
        self.supervision.on_exit(self._link.stop)  # also after a kill (no on_stop then)
        self._link.start()
        # a link that starts again has lost the lease: swarms kept running here are not ours
        self._stand_down()
        log.info("cluster.started", node=self.settings.name, url=self.settings.redacted_url,
                 lease_ttl_s=self.settings.lease_ttl_s)

    def on_stop(self) -> None:
        if self._link is not None:
            self._link.stop()

    def on_failure(self, *_exc: Any) -> None:
        self.on_stop()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, LinkReport):
            self._report = message
            if message.fault:  # rows may be lost until the link is back: copy the table again
                self._table_epoch = 0
            if message.view.role == "follower":  # what the round found, however late we are
                self._stand_down()
            self._log_changes()
            self._take_over()
            self._fetch_table()
            return None
        if isinstance(message, Waiting):
            message = message.slot.take()
            if message is None:
                return None
        if isinstance(message, LocalFrame):
            self._local = message
            if self._link is not None:
                self._link.send_frame(message.frame, message.at)
            if self.state().role == "leader":
                self._show(message.frame, "local")
            return None
        if isinstance(message, Forward):
            if self._link is None:
                raise RuntimeError("the NATS link has not started")
            return self._link.forward(message.request, message.timeout_s)
        if isinstance(message, ServingAt):
            if self._link is not None:
                self._link.local_url, self._link.api_token = message.url, message.api_token
            self.supervision.keep(message, name="serving_at")  # for the next incarnation
            return None
        if isinstance(message, PinNodes):  # a drag on one of our viewers
            self._drag(message)
            return None
        if isinstance(message, TableChange):  # our hive-mind's table changed
            if self._link is not None and self.state().role == "leader":
                self._link.publish_table(message.session_id, message.view)
            return None
        if isinstance(message, TableRow):  # the leader's table changed
            self._table_row(message)
            return None
        if isinstance(message, _TableFetched):
            self._table_fetched(message)
            return None
        if isinstance(message, _TableTaken):
            self._table_taken(message)
            return None
        if isinstance(message, _Snapshot):
            self._snapshot(message)
            return None
        if isinstance(message, PinsForLeader):  # a drag on a follower's viewer
            with contextlib.suppress(ValueError, TypeError, KeyError):
                body = json.loads(message.data)
                self._drag(PinNodes(tuple(int(i) for i in body["ids"]),
                                    tuple((float(p[0]), float(p[1]), float(p[2]))
                                          for p in body["positions"])), remote=True)
            return None
        if isinstance(message, Flush):
            if self._link is None or self.state().role != "leader":
                return None
            return self._link.flush()
        if isinstance(message, Promoted):
            self._promoted, self._taken = message, [False, False]
            self._table_epoch = 0  # a copy of someone's table no more
            self._take_over()
            return None
        if isinstance(message, Received):
            if self.state().role == "follower":
                self._remote = message.frame
                self._show(message.frame, "remote")
                self._shown_remote += 1
                self._last_age_s = time.time() - message.sent_at
            return None
        if self._subscribers.handle(message):
            return None
        if isinstance(message, GetCluster):
            return self.state()
        if isinstance(message, StatusQuery):
            state = self.state()
            # lease_until: the health actor serves no snapshot saying "leader" past it
            link = self._link
            detail = MappingProxyType({
                **state.detail(), "lease_until": state.until,
                "breaker": dict(self._report.breaker if self._report else {}),
                "frames": {"published": link.published if link else 0,
                           "shown_from_leader": self._shown_remote,
                           "stale_refused": link.dropped_stale if link else 0,
                           "last_age_ms": round(self._last_age_s * 1e3, 1)}})
            if state.fault:
                return ActorStatus("cluster", "degraded", state.fault, detail)
            return ActorStatus("cluster", "healthy", "", detail)
        if isinstance(message, _LinkFailed):
            raise RuntimeError(f"the NATS link failed: {message.error!r}") from message.error
        return None

    def state(self) -> ClusterState:
        node = self.settings.name
        report = self._report
        if report is None:
            return ClusterState(node, "follower", 0, None, (), "not connected to NATS yet")
        view, now = report.view, time.monotonic()
        fault = report.fault
        silent_s = now - report.at
        if fault is None and silent_s > 2 * self.settings.lease_ttl_s:
            # a fixed text: a changing one would push a new health snapshot every tick
            fault = f"no round with NATS for over {2 * self.settings.lease_ttl_s:g} s"
        if view.role == "leader" and now < view.until:
            return ClusterState(node, "leader", view.epoch, node, report.peers, fault, view.until)
        leader = None if view.leader == node else view.leader
        return ClusterState(node, "follower", view.epoch, leader, report.peers, fault,
                            table_copied=bool(leader) and self._table_epoch == view.epoch)

    def _log_changes(self) -> None:
        state = self.state()
        if state.role != self._role:
            log.info("cluster.role", node=state.node, role=state.role, epoch=state.epoch,
                     leader=state.leader)
            self._role = state.role

    # -- the followers' copy of the swarm table ------------------------------------------------

    def _fetch_table(self) -> None:
        """A follower of a leader whose table we do not hold: ask it for the whole of it (a
        forwarded ``GET /api/swarms``), keeping the rows heard meanwhile."""
        state = self.state()
        if (state.role != "follower" or state.leader is None or self._link is None
                or self._table_epoch == state.epoch or self._fetching is not None
                or not self.settings.records_dir):
            return
        epoch, ref = state.epoch, self.actor_ref
        self._fetching, self._rows_meanwhile = epoch, []
        request = encode_message(Message({"method": "GET", "path": f"/api/swarms?limit={MAX_TABLE}",
                                          "headers": {}, "from": state.node}))
        future = self._link.forward(request, TABLE_FETCH_S)

        def done(f: concurrent.futures.Future[bytes]) -> None:
            with contextlib.suppress(pykka.ActorDeadError):
                ref.tell(_TableFetched(epoch, f))

        future.add_done_callback(done)

    def _table_fetched(self, fetched: _TableFetched) -> None:
        self._fetching = None
        try:
            answer = decode_message(fetched.future.result())
            if answer.meta.get("status") != 200:
                raise ValueError(f"the leader answered {answer.meta.get('status')}")
            views = tuple(json.dumps(s, separators=(",", ":")).encode()
                          for s in json.loads(answer.body)["swarms"])
        except Exception as exc:  # noqa: BLE001 - no leader now, a bad answer: the next round
            log.info("cluster.table_not_fetched", error=repr(exc)[:200])
            return
        state = self.state()
        if state.role != "follower" or state.epoch != fetched.epoch:
            return  # another leader meanwhile: the next round fetches its table
        try:
            hive = self.supervision.sibling("hive_mind")
        except UnknownChild:
            return
        self._fetching = fetched.epoch  # until the hive-mind has taken it
        _ask_aside(hive, ReplaceTable(views, tuple(self._rows_meanwhile)), 5.0, self.actor_ref,
                   lambda copied: _TableTaken(fetched.epoch, copied is True))
        self._rows_meanwhile = []

    def _table_taken(self, taken: _TableTaken) -> None:
        """The hive-mind has the table (or was not on standby: the next round tries again);
        the rows heard since it was sent follow it, in order."""
        self._fetching = None
        rows, self._rows_meanwhile = self._rows_meanwhile, []
        if not taken.ok:
            return
        self._table_epoch = taken.epoch
        log.info("cluster.table_copied", epoch=taken.epoch)
        for change in rows:
            self._table_row(TableRow(taken.epoch, change))

    def _table_row(self, row: TableRow) -> None:
        state = self.state()
        if state.role != "follower" or row.epoch < state.epoch:
            return
        if self._fetching is not None:
            self._rows_meanwhile.append(row.change)
            return
        if self._table_epoch != row.epoch:
            return  # a leader whose table we do not hold yet: the fetch brings it
        try:
            self.supervision.sibling("hive_mind").tell(row.change)
        except (SupervisionError, UnknownChild):
            self._table_epoch = 0  # a row lost: copy the whole table again

    def _drag(self, pins: PinNodes, remote: bool = False) -> None:
        """A drag goes to the layout that viewers see: ours while we lead, else the leader's."""
        if self.state().role == "leader":
            with contextlib.suppress(Exception):  # the layout restarting: the next drag moves it
                self.supervision.sibling("gpu_layout").tell(pins)
        elif not remote and self._link is not None:
            self._link.publish_pins(json.dumps(
                {"ids": list(pins.wire_ids), "positions": [list(p) for p in pins.positions]}).encode())

    def _take_swarms(self, promoted: Promoted) -> bool:
        """Put the last leader's swarm records where our hive-mind reads them (ours, older,
        go), keep the charge (the one fact a starting hive-mind reads) and tell it to take
        charge: it finishes what was in flight, once. False: tried again next round."""
        folder = self.settings.records_dir
        if not folder:
            return True
        try:
            hive = self.supervision.sibling("hive_mind")
        except UnknownChild:
            return True  # off in this daemon
        charged = self.supervision.kept(0, name=CHARGE)
        if charged == promoted.epoch:
            return True
        if charged:  # in charge for an older term we never saw end (a stall): let go first
            self._stand_down(wait=True)
        if not hive.available:
            return False
        try:
            _place_records(Path(folder), promoted.records)
        except OSError as exc:
            log.error("cluster.records_unwritable", folder=folder, error=str(exc))
            return False
        assert self._link is not None
        self._link.records_placed(promoted.epoch)
        self.supervision.keep(promoted.epoch, name=CHARGE)
        with contextlib.suppress(ChildUnavailable):  # restarting: it reads the charge itself
            hive.tell(TakeCharge())
        log.info("cluster.swarms_taken", epoch=promoted.epoch, records=len(promoted.records))
        return True

    def _stand_down(self, wait: bool = False) -> None:
        """Another daemon leads (or may): withdraw the charge and restart our hive-mind, which
        stops every job and starts again on standby (reading the charge, not a message). The
        restart runs on a thread of its own (it waits for the jobs to let go) unless ``wait``."""
        if not self.supervision.kept(0, name=CHARGE):
            return
        self.supervision.keep(0, name=CHARGE)
        try:
            hive = self.supervision.sibling("hive_mind")
        except UnknownChild:
            return
        with contextlib.suppress(ChildUnavailable):  # restarting already: it starts on standby
            hive.tell(StandDown())
        tree = self.supervision.tree

        def restart() -> None:
            try:
                tree.restart(hive.path)
            except Exception as exc:  # noqa: BLE001 - a stopping tree: nothing left to stop
                log.warning("cluster.stand_down_failed", error=repr(exc))

        if wait:
            restart()
        else:
            threading.Thread(target=restart, name="cluster-stand-down", daemon=True).start()
        log.info("cluster.swarms_released")

    def _take_over(self) -> None:
        """We lead and hold the shared state: our hive-mind takes the swarms, our layout
        takes up where the last leader's was (its files, with the positions of the last
        picture it sent us, which are newer), and our viewers see our layout from now on.
        Each part is tried again at the next round until its actor runs (a daemon elected
        as it starts)."""
        promoted = self._promoted
        if promoted is None:
            return
        state = self.state()
        if state.role != "leader" or state.epoch != promoted.epoch:
            self._promoted = None  # not ours any more: the next promotion brings its own
            return
        if self._taken[0] is False:
            self._taken[0] = self._take_swarms(promoted)
        if self._taken[1] is False:
            self._taken[1] = self._resume_layout(promoted)
        if all(t is True for t in self._taken):
            self._promoted = None

    def _resume_layout(self, promoted: Promoted) -> bool | None:
        """Tell our layout to take up the kept one, and ask for its snapshot off this thread
        (a layout warming up may take a while: this actor answers meanwhile). True: nothing
        to do; None: under way (``_Snapshot`` comes); False: the next round."""
        try:
            layout = self.supervision.sibling("gpu_layout")
        except UnknownChild:
            return True  # off in this daemon
        saved = saved_from_bytes(promoted.files.get("graph"), promoted.files.get("positions"))
        saved = _with_picture(saved, self._remote)
        try:
            if saved.graph is not None or len(saved.wire_ids):
                layout.tell(ResumeLayout(saved))
        except SupervisionError as exc:  # restarting, or still starting: the next round
            log.info("cluster.resume_waits", reason=str(exc))
            return False
        log.info("cluster.resumed", epoch=promoted.epoch,
                 nodes=saved.graph.node_count if saved.graph is not None else 0,
                 positions=len(saved.wire_ids), from_picture=self._remote is not None)
        self._remote = None  # used: a picture of a leader before this one, from now on
        _ask_aside(layout, GetSnapshot(), RESUME_ASK_S, self.actor_ref,
                   lambda frame: _Snapshot(promoted, frame))
        return None

    def _snapshot(self, message: _Snapshot) -> None:
        promoted = self._promoted
        if promoted is not message.promoted:
            return  # another promotion since
        if not isinstance(message.frame, PositionFrame):
            self._taken[1] = False  # the layout did not answer: again next round
            return
        assert self._link is not None
        self._link.layout_resumed(promoted.epoch, frozenset(promoted.files))
        self._taken[1] = True
        if self.state().role == "leader":
            self._show(message.frame, "local")
        if all(t is True for t in self._taken):
            self._promoted = None

    def _show(self, frame: PositionFrame, source: str) -> None:
        """Hand ``frame`` to the viewers' hub, numbered in the order shown; whole when the
        source changed or frames of it were skipped (``moved`` is against the source's frame
        before: a viewer's delta must follow the frame it last got)."""
        full = frame.full or source != self._source or frame.seq != self._source_seq + 1
        self._source, self._source_seq = source, frame.seq
        self._seq += 1
        moved = frame.moved if not full else np.ones(len(frame), bool)
        self._subscribers.publish(PositionFrame.make(
            self._seq, frame.wire_ids, frame.positions, frame.velocities, moved, full,
            frame.bounds))
