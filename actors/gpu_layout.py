"""The layout actor: owns the agent and knowledge graphs and their 3D simulation.

Nobody else touches the arrays. Each tick steps the engine (CUDA or CPU, see ``gpu/``), then
publishes an immutable :class:`PositionFrame` to subscribers. The tick rate drops to
``min_tick_hz`` once the layout has settled (kinetic energy per node under a threshold).

The layout comes to rest, as d3-force's simulation stops when its alpha falls below alphaMin:
once no node has moved more than ``rest_drift`` of the layout's extent in ``rest_window_s``,
the velocities are zeroed, one last frame is published, and the actor neither steps nor
publishes until something changes (found in use: a still 500-node graph streamed 340 KB/s to
every viewer forever, every node jittering at the temperature's floor). A change wakes it
locally: a new or removed node, an edge added or removed, a drag, moves the nodes within
``wake_hops`` edges of it, and every other node is held where it is (``gpu.engine.ASLEEP``),
still pushing and pulling its neighbours, so that the viewer's mental map holds. A new graph,
or a change that touches most of the graph, wakes every node.

After a restart the actor comes back with the last graphs and positions it kept through
``self.supervision.keep`` (immutable values), not with an empty world.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import structlog

from actors.graph import Graph, NodeKind, wire_id
from actors.layout_store import LayoutSaver, LayoutStore, SavedLayout
from actors.memory import release_freed_memory
from actors.messages import (
    ActorStatus,
    GetGraph,
    GetSnapshot,
    PinNodes,
    PositionFrame,
    ResumeLayout,
    SetGraph,
    SetParams,
    StatusQuery,
    Step,
    UnpinNodes,
    UpdateGraph,
)
from actors.schema import SettingError, Settings, internal, seconds, setting
from actors.subscribers import Subscribers
from actors.ticker import TickingActor
from gpu import LayoutEngine, SimParams, stress
from supervisor import ChildContext, context_of

__all__ = [
    "POSITION_DEADBAND",
    "SMALL_GRAPH",
    "VELOCITY_DEADBAND",
    "LayoutActor",
    "LayoutSettings",
]


log = structlog.get_logger("actors.gpu_layout")

POSITION_DEADBAND = 0.01
VELOCITY_DEADBAND = 0.005
SMALL_GRAPH = 2_000  # below this, several steps per tick cost less than waking threads


@dataclass(frozen=True)
class LayoutSettings(Settings):
    """``[actors.gpu_layout]`` and its ``params`` sub-table (every :class:`SimParams` field)."""

    backend: Literal["auto", "cpu", "cuda"] = "auto"
    tick_hz: float = setting(60.0, above=0, hi=1000)
    min_tick_hz: float = setting(5.0, above=0, hi=1000)  # once the layout has settled
    steps_per_tick: int = setting(1, lo=1, hi=100)
    settle_energy: float = setting(1e-3, lo=0)  # kinetic energy per node: settled below it
    rest_drift: float = setting(0.002, lo=0, hi=1)  # at rest below this most-moved fraction of the extent
    rest_window_s: float = seconds(1.0, lo=0.05)  # ... over this long
    wake_hops: int = setting(2, lo=0, hi=1000)  # a change moves the nodes this many edges from it
    save_interval_s: float = seconds(30.0, lo=1.0)  # positions written this often (and at the end)
    params: SimParams = setting(default_factory=SimParams)
    state_dir: str = internal("")  # graph and positions saved here; the daemon sets it

    def __post_init__(self) -> None:
        if isinstance(self.params, Mapping):  # a table of fields: SimParams names a bad one
            object.__setattr__(self, "params", SimParams(**self.params))
        super().__post_init__()
        if self.min_tick_hz > self.tick_hz:
            raise SettingError("min_tick_hz", f"must not exceed tick_hz ({self.tick_hz:g})")


def _warm_up(params: SimParams, backend: str) -> None:
    """Compile the kernels now, during start-up, rather than inside the first step a caller
    waits for: seconds on a fresh checkout (Numba's cache makes later starts fast)."""
    started = time.perf_counter()
    engine = LayoutEngine(params, backend=backend)
    engine.set_graph(np.arange(3, dtype=np.int64), np.array([0, 1], dtype=np.int64),
                     np.array([1, 2], dtype=np.int64))
    engine.step(1)
    path = np.arange(11, dtype=np.int64)  # and the multilevel placement's (above 2,048 nodes)
    stress.place(12, path, path + 1, full_nodes=4)
    took = time.perf_counter() - started
    if took > 1.0:
        log.info("layout.compiled", backend=engine.backend_name, took_s=round(took, 1))


def _same_shape(a: Graph, b: Graph) -> bool:
    """The same nodes and the same weighted edges, in the same order: only labels or
    attributes differ."""
    return (np.array_equal(a.ids, b.ids) and np.array_equal(a.sources, b.sources)
            and np.array_equal(a.targets, b.targets) and np.array_equal(a.weights, b.weights))


def _edge_weights(graph: Graph) -> tuple[np.ndarray, np.ndarray]:
    """Each undirected edge once, as ``min(id) << 30 | max(id)`` (ids are below 2^30), sorted,
    with the sum of its weights (parallel edges add up, as in the engine)."""
    a, b = np.minimum(graph.sources, graph.targets), np.maximum(graph.sources, graph.targets)
    keys, inverse = np.unique((a << 30) | b, return_inverse=True)
    return keys, np.bincount(inverse, weights=graph.weights, minlength=len(keys))


def _changed(previous: Graph | None, graph: Graph) -> np.ndarray:
    """The node ids of ``graph``'s kind that a change touches: nodes added or removed, and
    both ends of every edge added, removed or given another weight. Computed on this kind's
    columns alone, never on the whole engine's."""
    if previous is None:
        return graph.ids.copy()
    nodes = np.setxor1d(previous.ids, graph.ids, assume_unique=True)
    old_keys, old_w = _edge_weights(previous)
    new_keys, new_w = _edge_weights(graph)
    both, i_old, i_new = np.intersect1d(old_keys, new_keys, assume_unique=True,
                                        return_indices=True)
    touched = np.concatenate([np.setxor1d(old_keys, new_keys, assume_unique=True),
                              both[old_w[i_old] != new_w[i_new]]])
    ends = np.concatenate([touched >> 30, touched & ((1 << 30) - 1)])
    return np.union1d(nodes, ends)


class LayoutActor(TickingActor):
    supervision: ChildContext  # set by the supervisor before the actor starts

    def __init__(self, settings: LayoutSettings | None = None) -> None:
        super().__init__()
        self.settings = settings or LayoutSettings()
        self._engine: LayoutEngine | None = None
        self._graphs: dict[NodeKind, Graph] = {}
        self._subscribers: Subscribers[PositionFrame] = Subscribers("gpu_layout", context_of(self))
        self._seq = 0
        self._sent_pos: np.ndarray | None = None
        self._sent_vel: np.ndarray | None = None
        self._ids_changed = True
        self._energy = 0.0
        self._step_ms = 0.0
        self._settled = False
        self._resting = False  # at rest: no steps, no frames, until something changes
        self._window: tuple[float, np.ndarray] | None = None  # (when, positions) rest is judged from
        self._window_steps = 0  # steps taken since the window began
        self._woken_at = time.monotonic()
        self._frames = 0
        self._saver: LayoutSaver | None = None
        self._start: tuple[np.ndarray, np.ndarray] | None = None  # saved positions, by wire id

    # -- lifecycle -------------------------------------------------------------------------

    def on_start(self) -> None:
        params = self.settings.params
        _warm_up(params, self.settings.backend)
        # Compiling the kernels (a first start, or a new version: Numba's cache is cold) leaves
        # LLVM's working memory freed but resident: the daemon sat at 383 MB for good instead
        # of 277 MB. Trimmed here, it starts at 247 MB either way.
        release_freed_memory()
        self._engine = LayoutEngine(params, backend=self.settings.backend)
        # what survives a restart: the graphs (kept when they change) and the last frame's
        # positions (kept at each publish: one reference, the frame is immutable)
        graphs: Mapping[NodeKind, Graph] | None = self.supervision.kept()
        restored = "memory" if graphs is not None else None
        if graphs is not None:
            self._graphs = dict(graphs)
            frame: PositionFrame | None = self.supervision.kept(name="frame")
            if frame is not None:  # known nodes start where they were: never placed afresh
                self._start = (frame.wire_ids.astype(np.int64), frame.positions)
            self._load_graphs()
            if frame is not None:
                self._restore(frame)
        if self.settings.state_dir:
            store = LayoutStore(self.settings.state_dir)
            if graphs is None:  # the process's first incarnation: what the last process left
                restored = self._load_saved(store)
            self._saver = LayoutSaver(store, self.settings.save_interval_s)
            self.supervision.on_exit(self._save_last)  # also after a kill, which runs no on_stop
        self.start_ticking(1.0 / self.settings.tick_hz)
        log.info("layout.started", backend=self._engine.backend_name,
                 nodes=self._engine.node_count, restored=restored)

    def _load_saved(self, store: LayoutStore) -> str | None:
        saved = store.load()
        self._start = (saved.wire_ids, saved.positions) if len(saved.wire_ids) else None
        if saved.graph is None:
            return None
        self._graphs[NodeKind.KNOWLEDGE] = saved.graph
        self._load_graphs()
        engine = self._engine_or_raise()
        for wid, pos in saved.pins.items():
            with contextlib.suppress(KeyError):  # a pinned agent that is not back yet
                engine.pin(wid, pos)
        log.info("layout.restored", folder=str(store.folder), nodes=saved.graph.node_count,
                 edges=saved.graph.edge_count, positions=len(saved.wire_ids), pins=len(saved.pins))
        return "disk"

    def _save_last(self) -> None:
        """The incarnation's last positions, after whatever was still being written."""
        saver, engine = self._saver, self._engine
        if saver is None:
            return
        final = None
        if engine is not None and engine.node_count:
            final = (engine.node_ids.copy(), engine.positions().copy(), engine.pins)
        saver.close(final)

    # -- messages --------------------------------------------------------------------------

    def on_message(self, message: Any) -> Any:
        if isinstance(message, SetGraph):
            return self._set_graph(message.graph)
        if isinstance(message, UpdateGraph):
            current = self._graphs.get(message.kind) or Graph.empty(message.kind)
            return self._set_graph(current.updated(message.add_nodes, message.remove_nodes,
                                                   message.add_edges, message.remove_edges))
        if isinstance(message, ResumeLayout):
            return self._resume(message.saved)
        if isinstance(message, PinNodes):
            return self._pin(message)
        if isinstance(message, UnpinNodes):
            engine = self._engine_or_raise()
            for wid in message.wire_ids:
                engine.unpin(wid)
            self._wake(self._around(np.asarray(message.wire_ids, dtype=np.int64)))
            return None
        if isinstance(message, SetParams):
            changes: dict[str, Any] = dict(message.changes)
            params = dataclasses.replace(self._engine_or_raise().params, **changes)
            self._engine_or_raise().set_params(params)
            self._wake(None)
            return None
        if isinstance(message, Step):
            if self._resting:  # an explicit step: the layout moves, so it is not at rest
                self._wake(None)
            energy = self._step(message.n)
            self._publish()
            return energy
        if isinstance(message, GetSnapshot):
            return self._frame(full=True)
        if isinstance(message, GetGraph):
            return self._graph_view(message.kind)
        if self._subscribers.handle(message):
            return None
        if isinstance(message, StatusQuery):
            return self._status()
        return super().on_message(message)

    def _engine_or_raise(self) -> LayoutEngine:
        if self._engine is None:
            raise RuntimeError("layout engine not started")
        return self._engine

    # -- graph -----------------------------------------------------------------------------

    def _set_graph(self, graph: Graph) -> dict[str, int]:
        """Load ``graph``; if the engine refuses it, keep the last good one (and raise)."""
        previous = self._graphs.get(graph.kind)
        if previous is not None and _same_shape(previous, graph):
            # labels or attributes alone (the agents' graph comes again with every telemetry
            # poll, with new CPU and task counts): nothing moves, nothing is sent, no reload
            self._graphs[graph.kind] = graph
            self.supervision.keep(MappingProxyType(dict(self._graphs)))
            if self._saver is not None and graph.kind is NodeKind.KNOWLEDGE:
                self._saver.graph(graph)
            return {"nodes": graph.node_count, "edges": graph.edge_count}
        engine = self._engine_or_raise()
        before_count, before_awake = engine.node_count, engine.awake
        before_ids, before_iteration = engine.node_ids, engine.iteration
        self._graphs[graph.kind] = graph
        try:
            self._load_graphs()
        except ValueError:  # LayoutEngine.set_graph validates before it changes anything
            if previous is None:
                del self._graphs[graph.kind]
            else:
                self._graphs[graph.kind] = previous
            raise
        self.supervision.keep(MappingProxyType(dict(self._graphs)))
        if self._saver is not None and graph.kind is NodeKind.KNOWLEDGE:
            self._saver.graph(graph)
        seeds = _changed(previous, graph) | np.int64(graph.kind.flag)  # as wire ids
        self._wake_after_load(seeds, before_count, before_ids, before_awake, before_iteration)
        if self._engine_or_raise().node_count:
            self._publish()  # new nodes are shown now, not at the next tick (up to 200 ms away)
        return {"nodes": graph.node_count, "edges": graph.edge_count}

    def _load_graphs(self) -> None:
        graphs = list(self._graphs.items())
        flags = [np.int64(kind.flag) for kind, _ in graphs]

        def column(name: str, dtype: Any, flagged: bool = True) -> np.ndarray:
            parts = [getattr(g, name) | f if flagged else getattr(g, name)
                     for f, (_, g) in zip(flags, graphs, strict=True)]
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

        self._engine_or_raise().set_graph(
            column("ids", np.int64), column("sources", np.int64), column("targets", np.int64),
            column("weights", np.float32, flagged=False), start=self._start)
        self._ids_changed = True
        if self._start is not None:  # each saved position places its node once: a node deleted
            ids, positions = self._start  # and added hours later starts afresh
            waiting = ~np.isin(ids, self._engine_or_raise().node_ids)  # agents still to come back
            self._start = (ids[waiting], positions[waiting]) if waiting.any() else None

    def _pin(self, message: PinNodes) -> int:
        engine = self._engine_or_raise()
        known = set(engine.node_ids.tolist())
        pinned = 0
        for wid, pos in zip(message.wire_ids, message.positions, strict=True):
            if wid not in known:
                continue
            bound = engine.params.bounds  # a drag cannot throw a node out of the world
            clamped = (min(max(pos[0], -bound), bound), min(max(pos[1], -bound), bound),
                       min(max(pos[2], -bound), bound))
            try:
                engine.pin(wid, clamped)
            except ValueError as exc:  # client data: a bad position is skipped, never a crash
                log.warning("layout.pin_rejected", node=wid, error=str(exc))
                continue
            pinned += 1
        self._wake(self._around(np.asarray(message.wire_ids, dtype=np.int64)))
        return pinned

    def _resume(self, saved: SavedLayout) -> int:
        """Take up the layout ``saved`` (another daemon's): its graph, every position it
        names (a node this layout knows is moved there too) and exactly its pins; then run
        on from there, as after a restart. How many nodes it placed."""
        engine = self._engine_or_raise()
        self._start = (saved.wire_ids, saved.positions) if len(saved.wire_ids) else None
        if saved.graph is not None:
            self._set_graph(saved.graph)
        index = {int(w): i for i, w in enumerate(saved.wire_ids.tolist())}
        placed = 0
        for wid in engine.node_ids.tolist():
            i = index.get(int(wid))
            if i is not None:
                p = saved.positions[i]
                engine.pin(wid, (float(p[0]), float(p[1]), float(p[2])))
                engine.unpin(wid)
                placed += 1
        known = set(engine.node_ids.tolist())
        for wid in list(engine.pins):
            if wid not in saved.pins:
                engine.unpin(wid)
        for wid, pos in saved.pins.items():
            if wid in known:
                engine.pin(wid, pos)
        if engine.node_count:
            self._ids_changed = True
            self._wake(None, reheat=False)
            self._publish()
        log.info("layout.resumed", nodes=engine.node_count, placed=placed, pins=len(saved.pins))
        return placed

    def _restore(self, frame: PositionFrame) -> None:
        """Put known nodes back where the last incarnation left them."""
        engine = self._engine_or_raise()
        known = set(engine.node_ids.tolist())
        for wid, pos in zip(frame.wire_ids.tolist(), frame.positions.tolist(), strict=True):
            if wid in known:
                engine.pin(wid, (pos[0], pos[1], pos[2]))
                engine.unpin(wid)

    def _graph_view(self, kind: NodeKind | None) -> dict[str, Any]:
        engine = self._engine_or_raise()
        index = {int(w): i for i, w in enumerate(engine.node_ids.tolist())}
        positions = engine.positions()
        out: dict[str, Any] = {}
        for graph_kind, graph in self._graphs.items():
            if kind is not None and graph_kind is not kind:
                continue
            view = graph.to_json()
            for node in view["nodes"]:
                i = index.get(wire_id(graph_kind, node["id"]))
                node["kind"] = str(graph_kind)
                node["position"] = positions[i].tolist() if i is not None else None
            out[str(graph_kind)] = view
        return out

    # -- simulation ------------------------------------------------------------------------

    def on_tick(self) -> None:
        engine = self._engine_or_raise()
        if engine.node_count == 0 or self._resting:
            return
        n = self.settings.steps_per_tick
        if engine.node_count < SMALL_GRAPH and n == 1:
            n = 2
        self._step(n)
        self._window_steps += n
        if self._came_to_rest(n):
            return  # it published the still frame itself
        self._publish()
        if self._saver is not None and self._saver.positions_due():
            self._saver.positions(engine.node_ids, engine.positions(), engine.pins)
        # per node that moves: a local wake's few nodes are not "settled" by the many held still
        settled = self._energy / max(1, self._moving()) < self.settings.settle_energy
        if settled != self._settled:
            self._settled = settled
            hz = self.settings.min_tick_hz if settled else self.settings.tick_hz
            self.tick_interval_s = 1.0 / hz
            log.debug("layout.rate", tick_hz=hz, settled=settled)

    def _step(self, n: int) -> float:
        started = time.perf_counter()
        self._energy = float(self._engine_or_raise().step(n))
        elapsed_ms = (time.perf_counter() - started) * 1e3 / max(1, n)
        self._step_ms = elapsed_ms if self._step_ms == 0 else 0.9 * self._step_ms + 0.1 * elapsed_ms
        return self._energy

    # -- rest and wake --------------------------------------------------------------------

    def _came_to_rest(self, per_tick: int) -> bool:
        """Judge rest once a window (``rest_window_s``): the node that moved most since the
        window began, scaled to the steps a full-speed window holds (a slow machine or a big
        graph takes fewer, and must not rest early for that), moved less than ``rest_drift``
        of the extent (the 1st to 99th percentile's span: a node dragged to the world's edge
        does not stretch it). Then halt, save, publish the still frame, and stop."""
        engine = self._engine_or_raise()
        now = time.monotonic()
        if self._window is not None and now - self._window[0] < self.settings.rest_window_s:
            return False
        positions = engine.positions()
        window, steps = self._window, self._window_steps
        self._window, self._window_steps = (now, positions), 0
        if (window is None or not steps or window[1].shape != positions.shape
                or engine.iteration <= engine.params.warmup_iterations):
            return False  # a warm-up moves slowly, not little
        full_speed = self.settings.tick_hz * self.settings.rest_window_s * per_tick
        drift = float(np.sqrt(((positions - window[1]) ** 2).sum(axis=1)).max(initial=0.0))
        drift *= max(1.0, full_speed / steps)
        low, high = np.percentile(positions, [1, 99], axis=0)
        extent = float((high - low).max())
        if drift > self.settings.rest_drift * max(extent, 1.0):
            return False
        engine.halt()
        self._energy = 0.0
        if self._saver is not None:
            self._saver.positions(engine.node_ids, engine.positions(), engine.pins)
        self._publish()  # velocities now zero: viewers see it still
        self._resting = self._settled = True
        self.tick_interval_s = 1.0 / self.settings.min_tick_hz
        log.info("layout.at_rest", nodes=engine.node_count, drift=round(drift, 4),
                 extent=round(extent, 1), after_s=round(now - self._woken_at, 2))
        return True

    def _moving(self) -> int:
        """How many nodes the next step may move (0 at rest)."""
        engine = self._engine_or_raise()
        awake = engine.awake
        return 0 if self._resting else engine.node_count if awake is None else int(awake.sum())

    def _around(self, wire_ids: np.ndarray) -> np.ndarray:
        """The nodes within ``wake_hops`` edges of ``wire_ids``."""
        engine = self._engine_or_raise()
        return engine.neighbourhood(engine.indices(wire_ids), self.settings.wake_hops)

    def _wake(self, region: np.ndarray | None, reheat: bool = True) -> None:
        """Let ``region`` (a mask over the nodes; None: all) move, with whatever was moving
        already, and step again; hot again unless ``reheat`` is False."""
        engine = self._engine_or_raise()
        if region is not None and not region.any():
            if self._resting:  # a graph change that touched nothing here: held again
                engine.hold(np.zeros(engine.node_count, dtype=bool))
            return  # nothing of this layout is touched (a drag of a node it does not have)
        moving = engine.awake
        if region is None or (not self._resting and moving is None):
            engine.hold(None)
        else:
            engine.hold(region if self._resting or moving is None else region | moving)
        if reheat:
            engine.reheat()
        self._resting = self._settled = False
        self._window, self._window_steps = None, 0
        self._woken_at = time.monotonic()
        self.tick_interval_s = 1.0 / self.settings.tick_hz

    def _wake_after_load(self, seeds: np.ndarray, before_count: int, before_ids: np.ndarray,
                         before_awake: np.ndarray | None, before_iteration: int) -> None:
        """After a graph change: wake the nodes within ``wake_hops`` of ``seeds`` (the wire
        ids of new and removed nodes and of the ends of edges added, removed or reweighted),
        with what was moving already, hot but not warmed up again; every node, warmed up, for a
        first graph or a change that touches most of it."""
        engine = self._engine_or_raise()
        region = self._around(seeds)
        if not before_count or region.sum() * 2 > engine.node_count:
            self._wake(None, reheat=False)  # a new layout: set_graph began its warm-up, or placed it
            return
        engine.resume(before_iteration)  # the rest of the layout is as cool as it was
        moving = not self._resting
        if moving:  # what was moving keeps moving, and keeps cooling: agents that come and go
            # while a big graph settles must not reheat all of it, or it never comes to rest
            region |= np.isin(engine.node_ids, before_ids if before_awake is None
                              else before_ids[before_awake])
        self._resting = True  # set_graph let every node go: hold all but the region again
        self._wake(region, reheat=not moving)

    def _frame(self, full: bool) -> PositionFrame:
        engine = self._engine_or_raise()
        ids = engine.node_ids.astype(np.uint32)
        pos = engine.positions()
        vel = engine.velocities()
        if full or self._ids_changed or self._sent_pos is None or self._sent_vel is None:
            moved = np.ones(len(ids), dtype=bool)
            full = True
        else:
            dp = ((pos - self._sent_pos) ** 2).sum(axis=1)
            dv = ((vel - self._sent_vel) ** 2).sum(axis=1)
            moved = (dp > POSITION_DEADBAND**2) | (dv > VELOCITY_DEADBAND**2)
        return PositionFrame.make(self._seq + 1, ids, pos, vel, moved, full, engine.params.bounds)

    def _publish(self) -> None:
        frame = self._frame(full=False)
        if self._sent_pos is None or self._ids_changed:
            self._sent_pos, self._sent_vel = frame.positions.copy(), frame.velocities.copy()
        else:
            assert self._sent_vel is not None
            self._sent_pos[frame.moved] = frame.positions[frame.moved]
            self._sent_vel[frame.moved] = frame.velocities[frame.moved]
        self._ids_changed = False
        self.supervision.keep(frame, name="frame")
        if not frame.full and not frame.moved.any():
            return  # nothing to say; the next frame's delta still follows the last one sent
        self._seq = frame.seq
        self._frames += 1
        self._subscribers.publish(frame)

    def _status(self) -> ActorStatus:
        engine = self._engine_or_raise()
        interval = self.tick_interval_s
        return ActorStatus(
            "gpu_layout", "healthy", "",
            MappingProxyType({
                "backend": engine.backend_name,
                "nodes": engine.node_count,
                "step_ms": round(self._step_ms, 3),
                "tick_hz": round(1.0 / interval, 2) if interval else 0.0,
                "kinetic_energy": self._energy,
                "settled": self._settled,
                "at_rest": self._resting,
                "moving": self._moving(),
                "frames_published": self._frames,
                "saved": self._saver.describe() if self._saver is not None else None,
                "subscribers": len(self._subscribers),
            }),
        )
