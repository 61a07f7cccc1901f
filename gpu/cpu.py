"""CPU backend: Numba ``@njit(parallel=True, fastmath=True, cache=True)`` kernels.

Layout is float32 structure-of-arrays with float32 accumulators: on the 2-core dev machine
that ran the all-pairs sum at 3.4-4.3 G pairs/s against 0.25 G pairs/s for an (N, 3) float64
array (the loop vectorises). ``run_steps`` loops over the steps inside compiled code, so a
call for n steps crosses from Python once and the thread pool stays awake across the steps;
below PARALLEL_THRESHOLD_N nodes (0 by default: see its measurement) it runs on one thread.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from gpu import physics
from gpu.buffers import BufferSet
from gpu.grid import build_grid
from gpu.params import PARALLEL_THRESHOLD_N, SimParams, schedule

_pair_push = njit(fastmath=True, cache=True)(physics.pair_push)
_spring_node = njit(fastmath=True, cache=True)(physics.spring_node)
_far_field_node = njit(fastmath=True, cache=True)(physics.far_field_node)
_integrate_node = njit(fastmath=True, cache=True)(physics.integrate_node)
_cell_of = njit(fastmath=True, cache=True)(physics.cell_of)
_schedule = njit(cache=True)(schedule)

# "No cutoff" without an infinity: fastmath lets LLVM assume no infinities.
NO_CUTOFF2 = np.float32(3.0e38)


@njit(parallel=True, fastmath=True, cache=True)
def forces_exact(n, x, y, z, off, nbr, w, fx, fy, fz, k, md, cut2, spring_k, rest, grav):
    """All-pairs softened inverse-square repulsion k*d/(r^2+md^2)^1.5 (pairs beyond sqrt(cut2)
    skipped), springs and centre gravity, into fx/fy/fz. This softening needs one reciprocal
    square root and no division per pair (measured 15% faster than k/((r^2+md^2)*max(r,md)));
    coincident pairs are counted in float32 to stay in the float32 vector lanes. The first j
    loop has no branch so it vectorises; the rare coincident pairs get a second, branchy pass
    only when the first one saw one."""
    md2 = md * md
    coincident_mag = k / (md2 + md2)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for i in prange(n):
        xi = x[i]
        yi = y[i]
        zi = z[i]
        ax = zero
        ay = zero
        az = zero
        close = zero
        for j in range(n):
            dx = xi - x[j]
            dy = yi - y[j]
            dz = zi - z[j]
            r2 = dx * dx + dy * dy + dz * dz
            rinv = one / math.sqrt(r2 + md2)
            inv = k * rinv * rinv * rinv
            inv = inv if r2 < cut2 else zero
            ax += dx * inv
            ay += dy * inv
            az += dz * inv
            close += one if r2 < md2 else zero
        if close > one + one / 2:  # i itself is always one
            for j in range(n):
                dx = xi - x[j]
                dy = yi - y[j]
                dz = zi - z[j]
                r2 = dx * dx + dy * dy + dz * dz
                if j != i and r2 < md2:
                    px, py, pz = _pair_push(i, j, math.sqrt(r2), md, coincident_mag)
                    ax += np.float32(px)
                    ay += np.float32(py)
                    az += np.float32(pz)
        sx, sy, sz = _spring_node(i, x, y, z, off, nbr, w, spring_k, rest)
        fx[i] = ax + sx - grav * xi
        fy[i] = ay + sy - grav * yi
        fz[i] = az + sz - grav * zi


@njit(parallel=True, fastmath=True, cache=True)
def forces_grid(
    n, x, y, z, off, nbr, w, fx, fy, fz, k, md, cut2, spring_k, rest, grav,
    sx, sy, sz, perm, cell_start, inv_h, gdx, gdy, gdz, ox, oy, oz,
    ffx, ffy, ffz, far,
):
    """Cell-list repulsion within the cutoff plus the far field of the node's cell (when
    ``far``, from ``far_field_cells``), springs and gravity. Iterates in cell order (slot s),
    so neighbouring threads read neighbouring cells; forces land at the node's own index."""
    md2 = md * md
    coincident_mag = k / (md2 + md2)
    zero = np.float32(0.0)
    one = np.float32(1.0)
    for s in prange(n):
        i = perm[s]
        xi = sx[s]
        yi = sy[s]
        zi = sz[s]
        cx, cy, cz = _cell_of(xi, yi, zi, ox, oy, oz, inv_h, gdx, gdy, gdz)
        ax = zero
        ay = zero
        az = zero
        close = zero
        for qz in range(max(cz - 1, 0), min(cz + 2, gdz)):
            for qy in range(max(cy - 1, 0), min(cy + 2, gdy)):
                row = gdx * (qy + gdy * qz)
                # Cells qx-1..qx+1 of one row are contiguous in sorted order: one loop.
                lo = cell_start[row + max(cx - 1, 0)]
                hi = cell_start[row + min(cx + 2, gdx)]
                for t in range(lo, hi):
                    dx = xi - sx[t]
                    dy = yi - sy[t]
                    dz = zi - sz[t]
                    r2 = dx * dx + dy * dy + dz * dz
                    rinv = one / math.sqrt(r2 + md2)
                    inv = k * rinv * rinv * rinv
                    inv = inv if r2 < cut2 else zero
                    ax += dx * inv
                    ay += dy * inv
                    az += dz * inv
                    close += one if r2 < md2 else zero
        if close > one + one / 2:
            for qz in range(max(cz - 1, 0), min(cz + 2, gdz)):
                for qy in range(max(cy - 1, 0), min(cy + 2, gdy)):
                    row = gdx * (qy + gdy * qz)
                    lo = cell_start[row + max(cx - 1, 0)]
                    hi = cell_start[row + min(cx + 2, gdx)]
                    for t in range(lo, hi):
                        j = perm[t]
                        dx = xi - sx[t]
                        dy = yi - sy[t]
                        dz = zi - sz[t]
                        r2 = dx * dx + dy * dy + dz * dz
                        if j != i and r2 < md2:
                            px, py, pz = _pair_push(i, j, math.sqrt(r2), md, coincident_mag)
                            ax += np.float32(px)
                            ay += np.float32(py)
                            az += np.float32(pz)
        if far:
            c = cx + gdx * (cy + gdy * cz)
            ax += ffx[c]
            ay += ffy[c]
            az += ffz[c]
        px, py, pz = _spring_node(i, x, y, z, off, nbr, w, spring_k, rest)
        fx[i] = ax + px - grav * xi
        fy[i] = ay + py - grav * yi
        fz[i] = az + pz - grav * zi


@njit(parallel=True, fastmath=True, cache=True)
def far_field_cells(
    cell_start, inv_h, gdx, gdy, gdz, ox, oy, oz, res, cs, mass, comx, comy, comz,
    k, md, cut2, ffx, ffy, ffz,
):
    """Far field at the centre of every non-empty grid cell, shared by the cell's nodes.

    Evaluating it once per cell rather than once per node makes it ~nodes-per-cell times
    cheaper (measured: per node it cost more than the near field at N=100k); the error is
    small because the coarse cells it sums are at least a cutoff away.
    """
    half = np.float32(0.5)
    h = np.float32(1.0) / inv_h
    for c in prange(gdx * gdy * gdz):
        if cell_start[c + 1] > cell_start[c]:
            px = ox + (np.float32(c % gdx) + half) * h
            py = oy + (np.float32((c // gdx) % gdy) + half) * h
            pz = oz + (np.float32(c // (gdx * gdy)) + half) * h
            gx, gy, gz = _far_field_node(
                px, py, pz, res, ox, oy, oz, cs, mass, comx, comy, comz, k, md * md, cut2
            )
            ffx[c] = gx
            ffy[c] = gy
            ffz[c] = gz


@njit(parallel=True, fastmath=True, cache=True)
def integrate(
    n, x, y, z, vx, vy, vz, fx, fy, fz, pinned, ramp, max_force, dt, damp, vmax, bounds
):
    """One explicit step for every node; returns the total kinetic energy."""
    ke = 0.0
    for i in prange(n):
        ke += _integrate_node(
            i, x, y, z, vx, vy, vz, fx, fy, fz, pinned, ramp, max_force, dt, damp, vmax, bounds
        )
    return ke


@njit(fastmath=True, cache=True)
def run_steps(
    n_steps, it0, n, x, y, z, vx, vy, vz, fx, fy, fz, pinned, off, nbr, w, p, use_grid,
    max_cells, res, cell_start, cursor, sx, sy, sz, perm, mass, comx, comy, comz,
    ffx, ffy, ffz,
):
    """Run ``n_steps`` steps starting at iteration ``it0``; return the final kinetic energy.

    ``p`` holds the SimParams scalars in the order of ``CpuBackend._param_vector``.
    """
    f32 = np.float32
    dt = f32(p[0])
    k = f32(p[1])
    spring_k = f32(p[2])
    rest = f32(p[3])
    grav = f32(p[4])
    max_force = f32(p[7])
    md = f32(p[8])
    cut = f32(p[9])
    cell = p[10]
    bounds = f32(p[11])
    ke = 0.0
    for s in range(n_steps):
        ramp, damp, vmax = _schedule(it0 + s, int(p[12]), p[13], p[5], p[6], p[14], p[15])
        if use_grid:
            inv_h, gdx, gdy, gdz, ox, oy, oz, cs = build_grid(
                n, x, y, z, max(cell, p[9]), max_cells, res,
                cell_start, cursor, sx, sy, sz, perm, mass, comx, comy, comz,
            )
            far_field_cells(
                cell_start, inv_h, gdx, gdy, gdz, ox, oy, oz, res, cs, mass, comx, comy, comz,
                k, md, cut * cut, ffx, ffy, ffz,
            )
            forces_grid(
                n, x, y, z, off, nbr, w, fx, fy, fz, k, md, cut * cut, spring_k, rest, grav,
                sx, sy, sz, perm, cell_start, inv_h, gdx, gdy, gdz, ox, oy, oz,
                ffx, ffy, ffz, True,
            )
        else:
            forces_exact(
                n, x, y, z, off, nbr, w, fx, fy, fz, k, md, NO_CUTOFF2, spring_k, rest, grav
            )
        ke = integrate(
            n, x, y, z, vx, vy, vz, fx, fy, fz, pinned,
            f32(ramp), max_force, dt, f32(damp), f32(vmax), bounds,
        )
    return ke


class CpuBackend:
    """Holds the simulation state in host buffers and steps it with the kernels above."""

    name = "cpu"

    def __init__(self) -> None:
        self.buffers = BufferSet()
        self.n = 0
        self.n_entries = 0
        self._ensure(0, 0)

    @property
    def capacity(self) -> int:
        return int(self.buffers["x"].shape[0])

    def _ensure(self, n: int, entries: int) -> None:
        b = self.buffers
        for name in ("x", "y", "z", "vx", "vy", "vz", "fx", "fy", "fz", "sx", "sy", "sz"):
            b.ensure(name, n, np.float32)
        b.ensure("pinned", n, np.uint8)
        b.ensure("perm", n, np.int32)
        b.ensure("off", n + 1, np.int32)
        # One grid cell per node at most (the cell grows past that): bounded memory.
        b.ensure("cell_start", n + 1, np.int32)
        b.ensure("cursor", n + 1, np.int32)
        for name in ("ffx", "ffy", "ffz"):
            b.ensure(name, n + 1, np.float32)
        b.ensure("nbr", entries, np.int32)
        b.ensure("w", entries, np.float32)

    def _ensure_coarse(self, res: int) -> None:
        for name in ("mass", "comx", "comy", "comz"):
            self.buffers.ensure(name, res**3, np.float32)

    def load(
        self,
        pos: np.ndarray, vel: np.ndarray, pinned: np.ndarray,
        offsets: np.ndarray, neighbours: np.ndarray, weights: np.ndarray,
    ) -> None:
        """Replace the whole state (after a graph change). Arrays are (n, 3) / CSR."""
        n = pos.shape[0]
        self._ensure(n, neighbours.shape[0])
        b = self.buffers
        for d, name in enumerate(("x", "y", "z")):
            b[name][:n] = pos[:, d]
            b["v" + name][:n] = vel[:, d]
        b["pinned"][:n] = pinned
        b["off"][: n + 1] = offsets
        b["nbr"][: neighbours.shape[0]] = neighbours
        b["w"][: weights.shape[0]] = weights
        self.n = n
        self.n_entries = neighbours.shape[0]

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of positions and velocities as (n, 3) float32."""
        b, n = self.buffers, self.n
        pos = np.stack([b["x"][:n], b["y"][:n], b["z"][:n]], axis=1)
        vel = np.stack([b["vx"][:n], b["vy"][:n], b["vz"][:n]], axis=1)
        return pos, vel

    def set_node(self, i: int, pos: tuple[float, float, float], pinned: bool) -> None:
        b = self.buffers
        for d, name in enumerate(("x", "y", "z")):
            b[name][i] = pos[d]
            b["v" + name][i] = 0.0
        b["pinned"][i] = 1 if pinned else 0

    @staticmethod
    def _param_vector(p: SimParams) -> np.ndarray:
        return np.array(
            [
                p.dt, p.repel_k, p.spring_k, p.rest_length, p.center_gravity_k, p.damping,
                p.max_velocity, p.max_force, p.min_distance, p.repulsion_cutoff,
                p.grid_cell_size, p.bounds, p.warmup_iterations, p.warmup_extra_damping,
                p.cooling_rate, p.min_temperature,
            ],
            dtype=np.float64,
        )

    def _args(self) -> tuple:
        b, n = self.buffers, self.n
        return (
            n, b["x"], b["y"], b["z"], b["vx"], b["vy"], b["vz"], b["fx"], b["fy"], b["fz"],
            b["pinned"], b["off"], b["nbr"], b["w"],
        )

    def step(self, n_steps: int, iteration: int, params: SimParams, use_grid: bool) -> float:
        """Run ``n_steps`` steps in one compiled call; return the kinetic energy after them."""
        if self.n == 0 or n_steps <= 0:
            return 0.0
        self._ensure_coarse(params.far_field_resolution)
        b = self.buffers
        threads = numba.get_num_threads()
        if self.n < PARALLEL_THRESHOLD_N:
            numba.set_num_threads(1)
        try:
            ke = run_steps(  # type: ignore[call-arg]  # the stub's Dispatcher.__call__ is too narrow
                n_steps, iteration, *self._args(), self._param_vector(params), use_grid,
                b["cell_start"].shape[0] - 1, params.far_field_resolution, b["cell_start"], b["cursor"],
                b["sx"], b["sy"], b["sz"], b["perm"], b["mass"], b["comx"], b["comy"], b["comz"],
                b["ffx"], b["ffy"], b["ffz"],
            )
        finally:
            numba.set_num_threads(threads)
        return float(ke)

    def forces(self, params: SimParams, mode: str) -> np.ndarray:
        """Net force per node without stepping, for tests and diagnostics.

        ``mode``: "exact" (all pairs), "exact_cutoff" (all pairs within the cutoff), "grid"
        (cell list + far field) or "grid_near" (cell list only).
        """
        self._ensure_coarse(params.far_field_resolution)
        b = self.buffers
        n, x, y, z, _vx, _vy, _vz, fx, fy, fz, _pin, off, nbr, w = self._args()
        f32 = np.float32
        common = (
            f32(params.repel_k), f32(params.min_distance),
        )
        tail = (
            f32(params.spring_k), f32(params.rest_length), f32(params.center_gravity_k),
        )
        cut2 = f32(params.repulsion_cutoff) ** 2
        if mode in ("exact", "exact_cutoff"):
            forces_exact(
                n, x, y, z, off, nbr, w, fx, fy, fz, *common,
                NO_CUTOFF2 if mode == "exact" else cut2, *tail,
            )
        elif mode in ("grid", "grid_near"):
            res = params.far_field_resolution
            geo = build_grid(
                n, x, y, z, max(params.grid_cell_size, params.repulsion_cutoff),
                b["cell_start"].shape[0] - 1,
                res, b["cell_start"], b["cursor"], b["sx"], b["sy"], b["sz"], b["perm"],
                b["mass"], b["comx"], b["comy"], b["comz"],
            )
            # Back in Python the float32 geometry came back as float64: cast it again so the
            # cells computed here match the ones build_grid assigned (as in run_steps).
            inv_h, ox, oy, oz, cs = (f32(v) for v in (geo[0], *geo[4:]))
            gdx, gdy, gdz = geo[1:4]
            far_field_cells(
                b["cell_start"], inv_h, gdx, gdy, gdz, ox, oy, oz, res, cs,
                b["mass"], b["comx"], b["comy"], b["comz"], *common, cut2,
                b["ffx"], b["ffy"], b["ffz"],
            )
            forces_grid(
                n, x, y, z, off, nbr, w, fx, fy, fz, *common, cut2, *tail,
                b["sx"], b["sy"], b["sz"], b["perm"], b["cell_start"], inv_h, gdx, gdy, gdz,
                ox, oy, oz, b["ffx"], b["ffy"], b["ffz"], mode == "grid",
            )
        else:
            raise ValueError(f"unknown force mode {mode!r}")
        return np.stack([fx[:n], fy[:n], fz[:n]], axis=1).copy()

    def nbytes(self) -> int:
        return self.buffers.nbytes()
