"""LayoutEngine: node ids in, positions out; picks and drives a backend.

The engine owns everything about identity (which id sits at which index, which ids are
pinned) and the graph's CSR adjacency; a backend owns the float32 buffers and the kernels.
Node order is the order of the ``node_ids`` last given to ``set_graph``.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from gpu import stress
from gpu.params import SimParams, iteration_at

__all__ = [
    "ASLEEP",
    "PINNED",
    "Backend",
    "CudaUnavailableError",
    "LayoutEngine",
    "cuda_available",
    "make_backend",
    "spawn_positions",
]


class Backend(Protocol):
    """What the engine needs from a backend (CPU or CUDA)."""

    name: str

    @property
    def capacity(self) -> int: ...

    def load(
        self, pos: np.ndarray, vel: np.ndarray, pinned: np.ndarray,
        offsets: np.ndarray, neighbours: np.ndarray, weights: np.ndarray,
    ) -> None: ...

    def state(self) -> tuple[np.ndarray, np.ndarray]: ...

    def set_node(self, i: int, pos: tuple[float, float, float], pinned: bool) -> None: ...

    def set_frozen(self, flags: np.ndarray) -> None: ...

    def halt(self) -> None: ...

    def step(self, n_steps: int, iteration: int, params: SimParams, use_grid: bool) -> float: ...

    def forces(self, params: SimParams, mode: str) -> np.ndarray: ...

    def nbytes(self) -> int: ...


# A node's hold in the backends' ``pinned`` array: 0 moves; PINNED is held where a user put it;
# ASLEEP is held where it is while the rest of the layout settles around a local change (it
# still pushes and pulls its neighbours, it just does not move). The kernels treat any
# non-zero value alike.
PINNED = 1
ASLEEP = 2
# How far, in mean edge lengths, a placed graph's nodes may travel in all once it steps live:
# on networkx's small real graphs 0.5 still let gravity fold the 15 Florentine families (0.50x
# igraph's stress placed, 1.01x after 480 steps), 0.2 kept 0.61x and 0.1 kept 0.53x.
TRAVEL_EDGES = 0.1


class CudaUnavailableError(RuntimeError):
    """backend="cuda" was asked for on a machine where numba.cuda finds no GPU."""


def cuda_available() -> bool:
    """True when numba.cuda sees a usable GPU (or the simulator is enabled)."""
    try:
        from numba import cuda
    except Exception:  # noqa: BLE001 - numba-cuda missing or broken: no GPU path
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def make_backend(backend: str) -> Backend:
    """Backend for "auto" (CUDA if available, else CPU), "cpu" or "cuda"."""
    if backend not in ("auto", "cpu", "cuda"):
        raise ValueError(f"backend must be 'auto', 'cpu' or 'cuda', got {backend!r}")
    if backend == "cuda" or (backend == "auto" and cuda_available()):
        if not cuda_available():
            raise CudaUnavailableError(
                "backend='cuda' but numba.cuda.is_available() is False: no CUDA GPU/driver "
                "(use backend='auto' or 'cpu', or set NUMBA_ENABLE_CUDASIM=1 for the simulator)"
            )
        from gpu.cuda import CudaBackend

        return CudaBackend()
    from gpu.cpu import CpuBackend

    return CpuBackend()


def _mix64(v: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a well-spread 64-bit hash, so nearby ids land far apart."""
    v = (v + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    v = (v ^ (v >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    v = (v ^ (v >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return v ^ (v >> np.uint64(31))


def spawn_positions(ids: np.ndarray, radius: float) -> np.ndarray:
    """Deterministic initial positions: uniform in a ball of ``radius``, seeded by each id.

    The same id always starts at the same place for the same radius, so a restarted layout
    looks the same, and no two ids coincide (up to hash collisions).
    """
    with np.errstate(over="ignore"):
        h1 = _mix64(ids.astype(np.int64).view(np.uint64))
        h2 = _mix64(h1)
        h3 = _mix64(h2)
    scale = 1.0 / float(1 << 53)
    u1 = (h1 >> np.uint64(11)).astype(np.float64) * scale
    u2 = (h2 >> np.uint64(11)).astype(np.float64) * scale
    u3 = (h3 >> np.uint64(11)).astype(np.float64) * scale
    r = radius * np.cbrt(u1)
    cz = 2.0 * u2 - 1.0
    rho = np.sqrt(np.maximum(0.0, 1.0 - cz * cz))
    phi = 2.0 * np.pi * u3
    return np.stack([r * rho * np.cos(phi), r * rho * np.sin(phi), r * cz], axis=1).astype(
        np.float32
    )


class LayoutEngine:
    """3D force-directed layout of a changing graph, on CUDA when there is a GPU, else CPU."""

    def __init__(self, params: SimParams | None = None, backend: str = "auto") -> None:
        self._params = params if params is not None else SimParams()
        if not isinstance(self._params, SimParams):
            raise TypeError("params must be a SimParams")
        self._backend: Backend = make_backend(backend)
        self._ids = np.zeros(0, dtype=np.int64)
        self._index: dict[int, int] = {}
        self._pins: dict[int, tuple[float, float, float]] = {}
        self._iteration = 0
        self._offsets = np.zeros(1, dtype=np.int32)  # the CSR adjacency, for neighbourhoods
        self._columns = np.zeros(0, dtype=np.int32)
        self._awake: np.ndarray | None = None  # None: every node moves
        self._placed = False

    # -- read-only views -------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self._backend.name

    @property
    def backend(self) -> Backend:
        return self._backend

    @property
    def params(self) -> SimParams:
        return self._params

    @property
    def node_ids(self) -> np.ndarray:
        return self._ids.copy()

    @property
    def node_count(self) -> int:
        return int(self._ids.shape[0])

    @property
    def iteration(self) -> int:
        return self._iteration

    @property
    def capacity(self) -> int:
        """Node slots allocated in the backend's buffers (doubles as the graph grows)."""
        return self._backend.capacity

    @property
    def uses_grid(self) -> bool:
        """Whether the next step uses the cell-list grid rather than exact all-pairs."""
        return self.node_count >= self._params.grid_threshold

    def positions(self) -> np.ndarray:
        return self._backend.state()[0]

    def velocities(self) -> np.ndarray:
        return self._backend.state()[1]

    def nbytes(self) -> int:
        """Bytes held by the backend's buffers (host or device)."""
        return self._backend.nbytes()

    # -- changes ---------------------------------------------------------------------
    def set_params(self, params: SimParams) -> None:
        if not isinstance(params, SimParams):
            raise TypeError("params must be a SimParams")
        self._params = params

    def set_graph(
        self,
        node_ids: np.ndarray,
        src: np.ndarray,
        dst: np.ndarray,
        weights: np.ndarray | None = None,
        start: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Replace the graph, keeping the state of ids already present.

        Surviving ids keep position, velocity and pin; new ids start at ``start``'s position
        when it lists them (``(ids, (k, 3) positions)``: a layout restored from disk), else at
        a position seeded by the id; ids not listed are dropped. Resets ``iteration`` (warm-up
        starts again so new nodes settle gently). Self-loops are ignored; parallel edges add up.

        When more than half of the nodes have no position (a new graph, or one that replaces
        most of the last), the whole graph is placed instead (:meth:`placed`): its steps then
        begin cool, at ``placed_temperature``, with no warm-up.
        """
        ids = np.asarray(node_ids)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError("node_ids must be a 1-D integer array")
        ids = ids.astype(np.int64, copy=True)
        src_a = np.asarray(src).astype(np.int64, copy=False).ravel()
        dst_a = np.asarray(dst).astype(np.int64, copy=False).ravel()
        if src_a.shape != dst_a.shape:
            raise ValueError(f"src and dst differ in length ({src_a.size} vs {dst_a.size})")
        if weights is None:
            w = np.ones(src_a.size, dtype=np.float32)
        else:
            w = np.asarray(weights, dtype=np.float32).ravel()
            if w.shape != src_a.shape:
                raise ValueError(f"weights has {w.size} entries for {src_a.size} edges")
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError("weights must be finite and >= 0")
        n = ids.size
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        if n > 1 and np.any(sorted_ids[1:] == sorted_ids[:-1]):
            dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]][0]
            raise ValueError(f"node_ids contains id {int(dup)} more than once")

        def to_index(a: np.ndarray, what: str) -> np.ndarray:
            if n == 0:
                if a.size:
                    raise ValueError(f"edge {what} names unknown node id {int(a[0])}")
                return a.astype(np.int32)
            pos = np.minimum(np.searchsorted(sorted_ids, a), n - 1)
            bad = sorted_ids[pos] != a
            if np.any(bad):
                raise ValueError(f"edge {what} names unknown node id {int(a[bad][0])}")
            return order[pos].astype(np.int32)

        si = to_index(src_a, "src")
        di = to_index(dst_a, "dst")

        # Carry over the state of surviving ids.
        pos_new = spawn_positions(ids, self._params.spawn_radius * max(1.0, float(n)) ** (1 / 3))
        vel_new = np.zeros((n, 3), dtype=np.float32)
        known = np.zeros(n, dtype=bool)
        if start is not None and n and len(start[0]):
            known_ids = np.asarray(start[0], dtype=np.int64)
            known_pos = np.asarray(start[1], dtype=np.float32).reshape(-1, 3)
            finite = np.all(np.isfinite(known_pos), axis=1)  # a damaged file moves nothing
            known_ids, known_pos = known_ids[finite], known_pos[finite]
            if known_ids.size:
                k_order = np.argsort(known_ids, kind="stable")
                k_sorted = known_ids[k_order]
                at = np.minimum(np.searchsorted(k_sorted, ids), k_sorted.size - 1)
                hit = k_sorted[at] == ids
                pos_new[hit] = known_pos[k_order[at[hit]]]
                known |= hit
        if self._ids.size and n:
            old_pos, old_vel = self._backend.state()
            old_order = np.argsort(self._ids, kind="stable")
            old_sorted = self._ids[old_order]
            at = np.minimum(np.searchsorted(old_sorted, ids), old_sorted.size - 1)
            kept = old_sorted[at] == ids
            pos_new[kept] = old_pos[old_order[at[kept]]]
            vel_new[kept] = old_vel[old_order[at[kept]]]
            known |= kept
        place = (3 <= n <= self._params.place_max_nodes and known.sum() * 2 < n
                 and bool(np.any(si != di))  # without an edge there is nothing to place by
                 and stress.worth_placing(n, si, di))
        unit = None
        if place:
            unit = stress.place(n, si, di)
            pos_new = unit.copy()
            vel_new[:] = 0.0
        self._index = {int(v): k for k, v in enumerate(ids.tolist())}
        self._pins = {i: p for i, p in self._pins.items() if i in self._index}
        pinned = np.zeros(n, dtype=np.uint8)
        for node_id, p in self._pins.items():
            k = self._index[node_id]
            pinned[k] = 1
            pos_new[k] = p
            vel_new[k] = 0.0

        # Symmetric CSR adjacency: each node gathers its own spring forces (no atomics).
        keep = si != di
        rows = np.concatenate([si[keep], di[keep]])
        cols = np.concatenate([di[keep], si[keep]])
        ww = np.concatenate([w[keep], w[keep]])
        by_row = np.argsort(rows, kind="stable")
        offsets = np.zeros(n + 1, dtype=np.int32)
        if n:
            np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
        columns = cols[by_row].astype(np.int32)
        self._backend.load(pos_new, vel_new, pinned, offsets, columns, ww[by_row].astype(np.float32))
        self._ids = ids
        self._offsets, self._columns = offsets, columns
        self._awake = None
        self._iteration = 0
        if unit is not None:
            self._scale_to_balance(unit, pos_new, vel_new, pinned, offsets, columns, ww[by_row])
            self._iteration = self._placed_iteration(si[keep], di[keep])
        self._placed = place

    def _placed_iteration(self, src: np.ndarray, dst: np.ndarray) -> int:
        """Where a placed graph's steps begin: at ``placed_temperature``, or cooler where that
        would let a node travel more than :data:`TRAVEL_EDGES` mean edge lengths in all (the
        velocity limit summed over the cooling, T vmax dt / (1 - cooling_rate)): at 0.03 the
        15 Florentine families went from 0.51x igraph's stress placed to 1.33x after 480
        steps, gravity pulling the small graph into a ball."""
        p = self._params
        temperature = p.placed_temperature
        if src.size and p.cooling_rate < 1.0:
            pos = self._backend.state()[0]
            edge = float(np.linalg.norm(pos[src] - pos[dst], axis=1).mean())
            travel = p.max_velocity * p.dt / (1.0 - p.cooling_rate)  # per unit of temperature
            temperature = min(temperature, TRAVEL_EDGES * edge / travel)
        return iteration_at(temperature, p.warmup_iterations, p.cooling_rate)

    @property
    def placed(self) -> bool:
        """Whether the last ``set_graph`` placed the graph by stress descent."""
        return self._placed

    def _scale_to_balance(self, unit: np.ndarray, at: np.ndarray, vel: np.ndarray,
                          pinned: np.ndarray, offsets: np.ndarray, columns: np.ndarray,
                          weights: np.ndarray) -> None:
        """Load ``unit`` (positions in hops) scaled to where the force model balances: the
        scale s at which the virial sum F(s x).x is zero, the stationary point of the model's
        energy along the placement's own shape (log bisection, 10 force sums). Gravity is
        left out: it would fold a large flat grid. Too small a scale and the repulsion
        buckles a grid out of its plane; too large costs only a slower settle. The scale is
        the placement's alone: pins are let go while it is found (a pin far away would tug
        the whole shape smaller) and put back at the end. Where the springs never win
        (mostly isolated nodes) the virial has no zero: the graph gets the extent new nodes
        spawn in instead of being pushed to the walls."""
        p = self._params
        local = dataclasses.replace(p, center_gravity_k=0.0)
        w = weights.astype(np.float32)
        reach = float(np.abs(unit).max()) if unit.size else 0.0
        free = pinned == 0
        if reach <= 0.0:
            self._backend.load(at, vel, pinned, offsets, columns, w)
            return
        loose = np.zeros_like(pinned)
        lo, hi = np.log(p.min_distance * 4), np.log(p.bounds / reach)
        balanced = False
        for _ in range(10 if hi > lo else 0):
            mid = 0.5 * (lo + hi)
            self._backend.load(unit * np.float32(np.exp(mid)), vel, loose, offsets, columns, w)
            forces = self._backend.forces(local, "grid" if self.uses_grid else "exact")
            if float(np.sum(forces.astype(np.float64) * unit)) > 0:  # pushed out: too small
                lo = mid
            else:
                hi, balanced = mid, True
        # Never denser than new nodes spawn (a ball near the size where gravity balances the
        # repulsion; rms radii compared). A 20,000-node random graph, before gpu.stress packed
        # its stray components, found no balance below the bounds, was fitted into the spawn
        # ball by its farthest (isolated) node, and came out at a fifth of the ball's radius:
        # 125x the density, each grid step 50x as long.
        spread = float(np.sqrt(np.mean(np.sum(np.square(unit - unit.mean(axis=0)), axis=1))))
        ball = np.sqrt(3 / 5) * p.spawn_radius * max(1.0, float(self.node_count)) ** (1 / 3)
        floor = float(np.log(ball / spread))
        top = float(np.log(p.bounds / reach))  # the farthest node inside the walls, always
        log_s = min(max(0.5 * (lo + hi), floor) if balanced else floor, top)
        final = at.copy()
        final[free] = unit[free] * np.float32(np.exp(log_s))
        self._backend.load(final, vel, pinned, offsets, columns, w)

    def _slot(self, node_id: int) -> int:
        try:
            return self._index[int(node_id)]
        except KeyError:
            raise KeyError(f"unknown node id {node_id}") from None

    @property
    def pins(self) -> dict[int, tuple[float, float, float]]:
        """The pinned ids and where they are held (a copy)."""
        return dict(self._pins)

    def pin(self, node_id: int, position: tuple[float, float, float]) -> None:
        """Hold ``node_id`` at ``position`` (velocity 0) until ``unpin``."""
        p = tuple(float(v) for v in position)
        if len(p) != 3 or not all(np.isfinite(p)):
            raise ValueError(f"pin position must be 3 finite numbers, got {position!r}")
        k = self._slot(node_id)
        self._pins[int(node_id)] = (p[0], p[1], p[2])
        self._backend.set_node(k, (p[0], p[1], p[2]), True)

    def unpin(self, node_id: int) -> None:
        """Let ``node_id`` move again, from where it is, at rest."""
        k = self._slot(node_id)
        p = self._pins.pop(int(node_id), None)
        if p is not None:
            self._backend.set_node(k, p, False)

    # -- local motion ----------------------------------------------------------------
    def indices(self, node_ids: np.ndarray) -> np.ndarray:
        """The slots of the ``node_ids`` the engine knows (unknown ones left out)."""
        ids = np.asarray(node_ids, dtype=np.int64).ravel()
        if not ids.size or not self._ids.size:
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(self._ids, kind="stable")
        at = np.minimum(np.searchsorted(self._ids[order], ids), self._ids.size - 1)
        hit = self._ids[order][at] == ids
        return order[at[hit]].astype(np.int64)

    def neighbourhood(self, slots: np.ndarray, hops: int) -> np.ndarray:
        """A mask of the nodes within ``hops`` edges of ``slots`` (those included)."""
        mask = np.zeros(self.node_count, dtype=bool)
        frontier = np.unique(np.asarray(slots, dtype=np.int64))
        mask[frontier] = True
        off, cols = self._offsets, self._columns
        for _ in range(hops):
            if not frontier.size:
                break
            starts, lengths = off[frontier], off[frontier + 1] - off[frontier]
            total = int(lengths.sum())
            if not total:
                break
            shift = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
            reached = np.unique(cols[shift + np.arange(total)])
            frontier = reached[~mask[reached]]
            mask[frontier] = True
        return mask

    @property
    def awake(self) -> np.ndarray | None:
        """The mask of nodes that move (None: all of them)."""
        return None if self._awake is None else self._awake.copy()

    def hold(self, awake: np.ndarray | None) -> None:
        """Let only the nodes in ``awake`` move (None: all); the others are held where they
        are (:data:`ASLEEP`) until the next ``hold`` or ``set_graph``. User pins stay."""
        if awake is not None and awake.shape != (self.node_count,):
            raise ValueError(f"awake must be a mask of {self.node_count} nodes")
        if awake is not None and awake.all():
            awake = None
        self._awake = None if awake is None else awake.astype(bool, copy=True)
        flags = np.zeros(self.node_count, dtype=np.uint8)
        if self._awake is not None:
            flags[~self._awake] = ASLEEP
        for node_id in self._pins:
            flags[self._index[node_id]] = PINNED
        self._backend.set_frozen(flags)

    def resume(self, iteration: int) -> None:
        """Carry on from step ``iteration`` (its warm-up and temperature): after a ``set_graph``
        that changed no node and no edge (labels, attributes), which must not heat anything."""
        self._iteration = max(0, int(iteration))

    def reheat(self) -> None:
        """Full temperature again (the warm-up is not repeated): what a drag or a local change
        needs to move the nodes it wakes, once the layout has cooled."""
        self._iteration = min(self._iteration, int(self._params.warmup_iterations))

    def halt(self) -> None:
        """Every velocity to zero (the layout has come to rest)."""
        if self.node_count:
            self._backend.halt()

    def step(self, n: int = 1) -> float:
        """Advance ``n`` steps in one backend call; return the kinetic energy after them."""
        if n < 0:
            raise ValueError(f"step count must be >= 0, got {n}")
        if n == 0 or self.node_count == 0:
            return 0.0
        ke = self._backend.step(n, self._iteration, self._params, self.uses_grid)
        self._iteration += n
        return ke

    def forces(self, mode: str | None = None) -> np.ndarray:
        """Net force per node at the current positions, (n, 3) float32, without stepping.

        ``mode`` as in the backends ("exact", "exact_cutoff", "grid", "grid_near"); by default
        the one ``step`` would use. For tests and diagnostics.
        """
        if mode is None:
            mode = "grid" if self.uses_grid else "exact"
        if self.node_count == 0:
            return np.zeros((0, 3), dtype=np.float32)
        return self._backend.forces(self._params, mode)
