"""CPU backend: Numba ``@njit(parallel=True, fastmath=True, cache=True, nogil=True)`` kernels.

``nogil``: a step over a million nodes takes seconds; without it the GIL was held that long
and the daemon's event loop (health, WebSockets) stood still behind the layout.

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
from gpu.buffers import BufferSet, cell_budget
from gpu.grid import build_grid
from gpu.params import PARALLEL_THRESHOLD_N, SimParams, schedule

__all__ = [
    "BUILD_CHUNKS",
    "GRID_STATE_LEN",
    "NO_CUTOFF2",
    "ROW_COLS",
    "ROW_NODES",
    "ROW_PAD",
    "CpuBackend",
    "coincident_sums",
    "far_field_cells",
    "forces_exact",
    "forces_grid",
    "gather_sorted",
    "integrate",
    "run_steps",
    "springs_gravity",
]


_pair_push = njit(fastmath=True, cache=True)(physics.pair_push)
_spring_node = njit(fastmath=True, cache=True, inline="always")(physics.spring_node)
# Inlined in Numba IR, so the loops that call them stay in the parallel kernel's body, where
# LLVM vectorises them: compiled as separate functions the pair loop stayed scalar (measured
# 2.3-3.0 ns/pair against 0.4 ns/pair inlined, one thread).
_pair_sums = njit(fastmath=True, cache=True, inline="always")(physics.pair_sums)
_far_sums = njit(fastmath=True, cache=True, inline="always")(physics.far_sums)
_integrate_node = njit(fastmath=True, cache=True, inline="always")(physics.integrate_node)
_schedule = njit(cache=True)(schedule)

# "No cutoff" without an infinity: fastmath lets LLVM assume no infinities.
NO_CUTOFF2 = np.float32(3.0e38)

# Positions per thread that forces_grid copies the 9 rows of cells around a row into (x, y, z:
# 96 KiB; the ~100 nodes of the neighbourhood in use stay in L1). A row of the bench graphs
# needs up to ~1,300 at N=100k and ~2,800 at N=1M; a row needing more is summed in place.
ROW_NODES = 8192
# Grid cells per axis (x) that the per-thread column index of forces_grid holds.
ROW_COLS = 4096
# Lanes the near-field block loop is padded to (a multiple of the vector width).
ROW_PAD = 16
# Node chunks (each with its own histogram of n + 1 int32) that build_grid sorts in parallel:
# at most this many, to bound the memory on many-core machines.
BUILD_CHUNKS = 4


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def forces_exact(n, x, y, z, off, nbr, w, fx, fy, fz, k, md, cut2, spring_k, rest, grav):
    """All-pairs softened inverse-square repulsion k*d/(r^2+md^2)^1.5 (pairs beyond sqrt(cut2)
    skipped), springs and centre gravity, into fx/fy/fz. This softening needs one reciprocal
    square root and no division per pair (measured 15% faster than k/((r^2+md^2)*max(r,md)));
    coincident pairs are counted in float32 to stay in the float32 vector lanes. The first j
    loop has no branch so it vectorises; the rare coincident pairs get a second, branchy pass
    only when the first one saw one."""
    md2 = md * md
    coincident_mag = k / (md2 + md2)
    one = np.float32(1.0)
    for i in prange(n):
        xi = x[i]
        yi = y[i]
        zi = z[i]
        ax, ay, az, close = _pair_sums(xi, yi, zi, x, y, z, 0, n, k, md2, cut2)
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


@njit(fastmath=True, cache=True, nogil=True)
def coincident_sums(i, xi, yi, zi, sx, sy, sz, perm, cell_start, cx, cy, cz, gdx, gdy, gdz, md, mag):
    """Push from the nodes of the 27 cells around (cx, cy, cz) closer than ``md`` to node ``i``
    (rare, so a plain branchy loop over the sorted rows)."""
    md2 = md * md
    ax = xi - xi
    ay = ax
    az = ax
    for qz in range(max(cz - 1, 0), min(cz + 2, gdz)):
        for qy in range(max(cy - 1, 0), min(cy + 2, gdy)):
            row = gdx * (qy + gdy * qz)
            for t in range(cell_start[row + max(cx - 1, 0)], cell_start[row + min(cx + 2, gdx)]):
                j = perm[t]
                dx = xi - sx[t]
                dy = yi - sy[t]
                dz = zi - sz[t]
                r2 = dx * dx + dy * dy + dz * dz
                if j != i and r2 < md2:
                    px, py, pz = _pair_push(i, j, math.sqrt(r2), md, mag)
                    ax += np.float32(px)
                    ay += np.float32(py)
                    az += np.float32(pz)
    return ax, ay, az


@njit(fastmath=True, cache=True, inline="always", nogil=True)
def _block_sums(xi, yi, zi, px, py, pz, m, m_pad, k, soft2, cut2):
    """``physics.pair_sums`` over ``p[0:m]``, run over ``m_pad`` (a multiple of ROW_PAD) lanes
    with lanes ``t >= m`` masked to zero: the trip count is a whole number of vectors, so no
    scalar remainder loop runs (it cost as much as the vector part for ~100-node blocks)."""
    one = np.float32(1.0)
    zero = np.float32(0.0)
    ax = zero
    ay = zero
    az = zero
    close = zero
    # The lane number counted in float32: against ``t < m`` (int64 lanes, compared in zmm
    # registers) the loop ran ~10 % faster at N=100k, with the same sums.
    lane = zero
    mf = np.float32(m)
    for t in range(m_pad):
        dx = xi - px[t]
        dy = yi - py[t]
        dz = zi - pz[t]
        r2 = dx * dx + dy * dy + dz * dz
        rinv = one / math.sqrt(r2 + soft2)
        inv = k * rinv * rinv * rinv
        ok = lane < mf
        lane += one
        inv = inv if (r2 < cut2) & ok else zero
        ax += dx * inv
        ay += dy * inv
        az += dz * inv
        close += one if (r2 < soft2) & ok else zero
    return ax, ay, az, close


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def forces_grid(
    n, fx, fy, fz, k, md, cut2, sx, sy, sz, perm, cell_start, gdx, gdy, gdz,
    ffx, ffy, ffz, far, buf, cols,
):
    """Near field (pairs in the 27 cells around a node's cell, closer than sqrt(cut2)) plus
    the far field of the node's cell (when ``far``) into fx/fy/fz at the node's own index.
    Springs and gravity are added by ``springs_gravity``.

    One x-row of cells (fixed cy, cz) at a time, rows shared out between threads. The sorted
    positions of the 9 rows around it are copied into this thread's ``buf`` column by column
    (cx-major: the 9 cells at x = cx, then x = cx + 1, ...), so the 27-cell neighbourhood of
    cell cx is one contiguous range, ``cols[cx - 1]`` to ``cols[cx + 2]``, and each node
    is copied 9 times per step instead of 27 (one copy per neighbourhood). Each node of the
    row's cells then sums over its range in one branch-free vectorised loop (``_block_sums``).
    The ranges are handed over as slices starting at 0: with a variable start index LLVM's
    vectorised loop ran at 1.8 ns/pair, from 0 at 0.5 ns/pair. A row whose neighbourhood
    outgrows ``buf`` (or a grid wider than ``cols``) sums the 9 runs of 3 contiguous cells of
    each neighbourhood in place instead.
    """
    md2 = md * md
    coincident_mag = k / (md2 + md2)
    half = np.float32(1.5)
    zero = np.float32(0.0)
    cap = buf.shape[2] - ROW_PAD - 4
    for row in prange(gdy * gdz):
        r0 = gdx * row
        if cell_start[r0] == cell_start[r0 + gdx]:
            continue
        tid = numba.get_thread_id()
        bx = buf[tid, 0]
        by = buf[tid, 1]
        bz = buf[tid, 2]
        col = cols[tid]
        cy = row % gdy
        cz = row // gdy
        zlo = max(cz - 1, 0)
        zhi = min(cz + 2, gdz)
        ylo = max(cy - 1, 0)
        yhi = min(cy + 2, gdy)
        m = 0
        for qz in range(zlo, zhi):
            for qy in range(ylo, yhi):
                r = gdx * (qy + gdy * qz)
                m += cell_start[r + gdx] - cell_start[r]
        buffered = m <= cap and gdx < col.shape[0]
        if buffered:
            m = 0
            for cx in range(gdx):
                col[cx] = m
                for qz in range(zlo, zhi):
                    for qy in range(ylo, yhi):
                        c = cx + gdx * (qy + gdy * qz)
                        t0 = cell_start[c]
                        cnt = cell_start[c + 1] - t0
                        # Whole chunks of 4 (sx has 4 slots of slack; the lanes past cnt are
                        # overwritten by the next cell or the zeroed padding below).
                        for u0 in range(0, cnt, 4):
                            for u in range(u0, u0 + 4):
                                bx[m + u] = sx[t0 + u]
                                by[m + u] = sy[t0 + u]
                                bz[m + u] = sz[t0 + u]
                        m += cnt
            col[gdx] = m
            for t in range(m, m + ROW_PAD):  # finite values in the masked lanes
                bx[t] = zero
                by[t] = zero
                bz[t] = zero
        for cx in range(gdx):
            c = cx + r0
            if cell_start[c] == cell_start[c + 1]:
                continue
            lo = 0
            cnt = 0
            cnt_pad = 0
            if buffered:
                lo = col[max(cx - 1, 0)]
                cnt = col[min(cx + 2, gdx)] - lo
                cnt_pad = (cnt + ROW_PAD - 1) // ROW_PAD * ROW_PAD
            for s in range(cell_start[c], cell_start[c + 1]):
                i = perm[s]
                xi = sx[s]
                yi = sy[s]
                zi = sz[s]
                if buffered:
                    ax, ay, az, close = _block_sums(
                        xi, yi, zi, bx[lo:lo + cnt_pad], by[lo:lo + cnt_pad],
                        bz[lo:lo + cnt_pad], cnt, cnt_pad, k, md2, cut2,
                    )
                else:
                    ax = zero
                    ay = zero
                    az = zero
                    close = zero
                    for qz in range(zlo, zhi):
                        for qy in range(ylo, yhi):
                            r = gdx * (qy + gdy * qz)
                            a = cell_start[r + max(cx - 1, 0)]
                            b = cell_start[r + min(cx + 2, gdx)]
                            gx, gy, gz, gc = _pair_sums(
                                xi, yi, zi, sx[a:b], sy[a:b], sz[a:b], 0, b - a, k, md2, cut2,
                            )
                            ax += gx
                            ay += gy
                            az += gz
                            close += gc
                if close > half:  # the node itself is always one
                    gx, gy, gz = coincident_sums(
                        i, xi, yi, zi, sx, sy, sz, perm, cell_start, cx, cy, cz,
                        gdx, gdy, gdz, md, coincident_mag,
                    )
                    ax += gx
                    ay += gy
                    az += gz
                if far:
                    ax += ffx[c]
                    ay += ffy[c]
                    az += ffz[c]
                fx[i] = ax
                fy[i] = ay
                fz[i] = az


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def springs_gravity(n, x, y, z, off, nbr, w, fx, fy, fz, spring_k, rest, grav):
    """Add springs and centre gravity to fx/fy/fz, in node order: the CSR rows are read
    sequentially and only the neighbours' positions are gathered (inside the sorted-order
    near-field loop the same sum cost 6 ms at N=100k, here 2.5 ms)."""
    for i in prange(n):
        px, py, pz = _spring_node(i, x, y, z, off, nbr, w, spring_k, rest)
        fx[i] += px - grav * x[i]
        fy[i] += py - grav * y[i]
        fz[i] += pz - grav * z[i]


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def far_field_cells(
    cell_start, inv_h, gdx, gdy, gdz, ox, oy, oz, kf, nq, qx, qy, qz, mass, comx, comy, comz,
    k, md, ffx, ffy, ffz,
):
    """Far field at the centre of every non-empty grid cell, shared by the cell's nodes.

    Once per cell rather than per node makes it ~nodes-per-cell times cheaper (per node it cost
    more than the near field at N=100k); the sum runs over the coarse cells in index order, as
    in the CUDA kernel.
    """
    half = np.float32(0.5)
    h = np.float32(1.0) / inv_h
    for c in prange(gdx * gdy * gdz):
        if cell_start[c + 1] > cell_start[c]:
            cx = c % gdx
            cy = (c // gdx) % gdy
            cz = c // (gdx * gdy)
            gx, gy, gz = _far_sums(
                ox + (np.float32(cx) + half) * h, oy + (np.float32(cy) + half) * h,
                oz + (np.float32(cz) + half) * h, cx, cy, cz, kf, nq, qx, qy, qz,
                mass, comx, comy, comz, k, md * md,
            )
            ffx[c] = gx
            ffy[c] = gy
            ffz[c] = gz


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
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


@njit(parallel=True, fastmath=True, cache=True, nogil=True)
def gather_sorted(n, x, y, z, perm, sx, sy, sz):
    """Refresh the sorted copies from the current positions, keeping the cell order: what a
    step that keeps the grid (``SimParams.grid_skin``) does instead of the sort."""
    for s in prange(n):
        i = perm[s]
        sx[s] = x[i]
        sy[s] = y[i]
        sz[s] = z[i]


# grid_state (float64): [moved, inv_h, gdx, gdy, gdz, ox, oy, oz, kf, nq, cell]. ``moved`` is
# the most any node can have moved since the grid was built (sum of vmax * dt), STALE_GRID
# when there is no grid to keep; ``cell`` the cell size it was built for.
GRID_STATE_LEN = 11
STALE_GRID = 1.0e300


@njit(fastmath=True, cache=True, nogil=True)
def run_steps(
    n_steps, it0, n, x, y, z, vx, vy, vz, fx, fy, fz, pinned, off, nbr, w, p, use_grid,
    max_cells, res, cell_start, hist, keys, bbox, sx, sy, sz, perm, mass, comx, comy, comz,
    qx, qy, qz, ffx, ffy, ffz, buf, cols, gs,
):
    """Run ``n_steps`` steps starting at iteration ``it0``; return the final kinetic energy.

    ``p`` holds the SimParams scalars in the order of ``CpuBackend._param_vector``; ``gs`` the
    grid kept between steps (GRID_STATE_LEN, updated in place).
    """
    f32 = np.float32
    dt = f32(p[0])
    k = f32(p[1])
    spring_k = f32(p[2])
    rest = f32(p[3])
    grav = f32(p[4])
    max_force = f32(p[7])
    md = f32(p[8])
    cell = max(p[10], p[9])
    bounds = f32(p[11])
    skin = p[16]
    ke = 0.0
    for s in range(n_steps):
        ramp, damp, vmax = _schedule(it0 + s, int(p[12]), p[13], p[5], p[6], p[14], p[15])
        if use_grid:
            if gs[0] > skin * cell or gs[10] != cell:
                inv_h, gdx, gdy, gdz, ox, oy, oz, kf, nq = build_grid(
                    n, x, y, z, cell, max_cells, res,
                    cell_start, hist, keys, bbox, sx, sy, sz, perm, mass, comx, comy, comz,
                    qx, qy, qz,
                )
                gs[0] = 0.0
                gs[1] = inv_h
                gs[2] = gdx
                gs[3] = gdy
                gs[4] = gdz
                gs[5] = ox
                gs[6] = oy
                gs[7] = oz
                gs[8] = kf
                gs[9] = nq
                gs[10] = cell
                far_field_cells(
                    cell_start, f32(gs[1]), int(gs[2]), int(gs[3]), int(gs[4]), f32(gs[5]),
                    f32(gs[6]), f32(gs[7]), int(gs[8]), int(gs[9]), qx, qy, qz,
                    mass, comx, comy, comz, k, md, ffx, ffy, ffz,
                )
            else:
                gather_sorted(n, x, y, z, perm, sx, sy, sz)
            forces_grid(
                n, fx, fy, fz, k, md, NO_CUTOFF2, sx, sy, sz, perm, cell_start,
                int(gs[2]), int(gs[3]), int(gs[4]), ffx, ffy, ffz, True, buf, cols,
            )
            springs_gravity(n, x, y, z, off, nbr, w, fx, fy, fz, spring_k, rest, grav)
        else:
            forces_exact(
                n, x, y, z, off, nbr, w, fx, fy, fz, k, md, NO_CUTOFF2, spring_k, rest, grav
            )
        ke = integrate(
            n, x, y, z, vx, vy, vz, fx, fy, fz, pinned,
            f32(ramp), max_force, dt, f32(damp), f32(vmax), bounds,
        )
        if gs[0] < STALE_GRID:
            gs[0] += f32(vmax) * dt
    return ke


class CpuBackend:
    """Holds the simulation state in host buffers and steps it with the kernels above."""

    name = "cpu"

    def __init__(self) -> None:
        threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # set at import
        self.chunks = min(threads, BUILD_CHUNKS)
        self.bbox = np.zeros((self.chunks, 6), np.float32)
        self.buffers = BufferSet()
        self.n = 0
        self.n_entries = 0
        self._ensure(0, 0)
        # One block per thread that a parallel loop may run on (numba.get_thread_id()).
        self.row_buf = np.zeros((threads, 3, ROW_NODES + ROW_PAD + 4), np.float32)
        self.row_cols = np.zeros((threads, ROW_COLS + 1), np.int32)
        # The grid that run_steps keeps across steps (see SimParams.grid_skin).
        self.grid_state = np.zeros(GRID_STATE_LEN, np.float64)
        self.grid_state[0] = STALE_GRID

    @property
    def capacity(self) -> int:
        return int(self.buffers["x"].shape[0])

    def _ensure(self, n: int, entries: int) -> None:
        b = self.buffers
        for name in ("x", "y", "z", "vx", "vy", "vz", "fx", "fy", "fz"):
            b.ensure(name, n, np.float32)
        for name in ("sx", "sy", "sz"):  # + slack: forces_grid copies whole chunks of 4
            b.ensure(name, n + 4, np.float32)
        b.ensure("pinned", n, np.uint8)
        b.ensure("perm", n, np.int32)
        b.ensure("off", n + 1, np.int32)
        # Offsets of at most cell_budget(capacity) cells, + 1.
        b.ensure("cell_start", cell_budget(self.capacity) + 1, np.int32)
        b.ensure("keys", n, np.int32)
        # One cell histogram per build_grid chunk, as rows of cell_start's length.
        b.ensure("hist", self.chunks * b["cell_start"].shape[0], np.int32)
        for name in ("ffx", "ffy", "ffz"):  # one far-field value per cell
            b.ensure(name, cell_budget(self.capacity), np.float32)
        b.ensure("nbr", entries, np.int32)
        b.ensure("w", entries, np.float32)

    def _sort_bufs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """build_grid's per-chunk histograms (a view of the "hist" buffer), keys and bounds."""
        b = self.buffers
        row = b["cell_start"].shape[0]
        return b["hist"][: self.chunks * row].reshape(self.chunks, row), b["keys"], self.bbox

    def _ensure_coarse(self, res: int) -> None:
        for name in ("mass", "comx", "comy", "comz"):
            self.buffers.ensure(name, res**3, np.float32)
        for name in ("qx", "qy", "qz"):
            self.buffers.ensure(name, res**3, np.int32)

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
        self.grid_state[0] = STALE_GRID

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of positions and velocities as (n, 3) float32."""
        b, n = self.buffers, self.n
        pos = np.stack([b["x"][:n], b["y"][:n], b["z"][:n]], axis=1)
        vel = np.stack([b["vx"][:n], b["vy"][:n], b["vz"][:n]], axis=1)
        return pos, vel

    def set_frozen(self, flags: np.ndarray) -> None:
        """Every node's hold at once: 0 moves, anything else stays where it is (velocity 0)."""
        self.buffers["pinned"][: self.n] = flags
        self.buffers["vx"][: self.n][flags != 0] = 0.0
        self.buffers["vy"][: self.n][flags != 0] = 0.0
        self.buffers["vz"][: self.n][flags != 0] = 0.0

    def halt(self) -> None:
        """Every velocity to zero: the layout at rest shows nothing still moving."""
        for name in ("vx", "vy", "vz"):
            self.buffers[name][: self.n] = 0.0

    def set_node(self, i: int, pos: tuple[float, float, float], pinned: bool) -> None:
        b = self.buffers
        for d, name in enumerate(("x", "y", "z")):
            b[name][i] = pos[d]
            b["v" + name][i] = 0.0
        b["pinned"][i] = 1 if pinned else 0
        self.grid_state[0] = STALE_GRID  # a moved node may be far from its cell

    @staticmethod
    def _param_vector(p: SimParams) -> np.ndarray:
        return np.array(
            [
                p.dt, p.repel_k, p.spring_k, p.rest_length, p.center_gravity_k, p.damping,
                p.max_velocity, p.max_force, p.min_distance, p.repulsion_cutoff,
                p.grid_cell_size, p.bounds, p.warmup_iterations, p.warmup_extra_damping,
                p.cooling_rate, p.min_temperature, p.grid_skin,
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
                cell_budget(self.capacity), params.far_field_resolution, b["cell_start"], *self._sort_bufs(),
                b["sx"], b["sy"], b["sz"], b["perm"], b["mass"], b["comx"], b["comy"], b["comz"],
                b["qx"], b["qy"], b["qz"], b["ffx"], b["ffy"], b["ffz"], self.row_buf, self.row_cols,
                self.grid_state,
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
            self.grid_state[0] = STALE_GRID  # the sort below replaces the kept one
            res = params.far_field_resolution
            geo = build_grid(
                n, x, y, z, max(params.grid_cell_size, params.repulsion_cutoff),
                cell_budget(self.capacity),
                res, b["cell_start"], *self._sort_bufs(), b["sx"], b["sy"], b["sz"], b["perm"],
                b["mass"], b["comx"], b["comy"], b["comz"], b["qx"], b["qy"], b["qz"],
            )
            # Back in Python the float32 geometry came back as float64: cast it again so the
            # cell centres computed here match the ones run_steps uses.
            inv_h, ox, oy, oz = (f32(v) for v in (geo[0], *geo[4:7]))
            gdx, gdy, gdz = geo[1:4]
            kf, nq = geo[7:9]
            far_field_cells(
                b["cell_start"], inv_h, gdx, gdy, gdz, ox, oy, oz, kf, nq,
                b["qx"], b["qy"], b["qz"], b["mass"], b["comx"], b["comy"], b["comz"], *common,
                b["ffx"], b["ffy"], b["ffz"],
            )
            forces_grid(
                n, fx, fy, fz, *common, NO_CUTOFF2 if mode == "grid" else cut2,
                b["sx"], b["sy"], b["sz"], b["perm"], b["cell_start"], gdx, gdy, gdz,
                b["ffx"], b["ffy"], b["ffz"], mode == "grid", self.row_buf, self.row_cols,
            )
            springs_gravity(n, x, y, z, off, nbr, w, fx, fy, fz, *tail)
        else:
            raise ValueError(f"unknown force mode {mode!r}")
        return np.stack([fx[:n], fy[:n], fz[:n]], axis=1).copy()

    def nbytes(self) -> int:
        return self.buffers.nbytes() + self.row_buf.nbytes + self.row_cols.nbytes
