"""CUDA backend: numba.cuda kernels running the same per-node rules as the CPU backend.

Import only when a GPU (or ``NUMBA_ENABLE_CUDASIM=1``, the simulator) is wanted; the engine
does that lazily. Kernels use grid-stride loops and a launch size taken from the device and
the compiled kernel (see ``gpu.launch``). The grid is built on the device: bounding box by
atomic min/max, cell counts by atomic add, a two-level prefix sum, then an atomic scatter;
the order of nodes inside a cell therefore varies from run to run, which changes sums only
in the last float32 bits.
"""

# Kernel bodies are device code: the host-side numba.cuda stubs (cuda.grid, atomics, 3-arg
# min) do not describe them, so mypy's call checks are off for this module.
# mypy: disable-error-code="call-arg, var-annotated"

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from gpu import physics
from gpu.buffers import cell_budget, grown_capacity
from gpu.launch import Launcher
from gpu.params import SimParams, schedule

__all__ = [
    "NO_CUTOFF2",
    "CudaBackend",
    "k_bbox",
    "k_bbox_reset",
    "k_far_cells",
    "k_forces_exact",
    "k_forces_grid",
    "k_grid_count",
    "k_grid_reset",
    "k_grid_scatter",
    "k_integrate",
    "k_scan_apply",
    "k_scan_chunks",
    "k_scan_partials",
    "k_zero_f64",
]


_dev = cuda.jit(device=True)
_pair_push = _dev(physics.pair_push)
_spring_node = _dev(physics.spring_node)
_pair_sums = _dev(physics.pair_sums)
_far_sums = _dev(physics.far_sums)
_integrate_node = _dev(physics.integrate_node)
_cell_of = _dev(physics.cell_of)

NO_CUTOFF2 = np.float32(3.0e38)
_BIG = np.float32(3.0e38)


@cuda.jit
def k_forces_exact(n, x, y, z, off, nbr, w, fx, fy, fz, k, md, cut2, spring_k, rest, grav):
    """All-pairs repulsion + springs + gravity, one node per thread (same sum order as CPU)."""
    md2 = md * md
    coincident_mag = k / (md2 + md2)
    one = np.float32(1.0)
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        xi = x[i]
        yi = y[i]
        zi = z[i]
        ax, ay, az, close = _pair_sums(xi, yi, zi, x, y, z, 0, n, k, md2, cut2)
        if close > one + one / 2:
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


@cuda.jit
def k_bbox_reset(bbox):
    """bbox = (+big, +big, +big, -big, -big, -big) before the atomic min/max pass."""
    t = cuda.grid(1)
    if t < 3:
        bbox[t] = _BIG
        bbox[t + 3] = -_BIG


@cuda.jit
def k_bbox(n, x, y, z, bbox):
    """Bounding box: per-thread min/max over a grid-stride range, then one atomic per value."""
    lx = _BIG
    ly = _BIG
    lz = _BIG
    hx = -_BIG
    hy = -_BIG
    hz = -_BIG
    found = False
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        found = True
        lx = min(lx, x[i])
        ly = min(ly, y[i])
        lz = min(lz, z[i])
        hx = max(hx, x[i])
        hy = max(hy, y[i])
        hz = max(hz, z[i])
    if found:
        cuda.atomic.min(bbox, 0, lx)
        cuda.atomic.min(bbox, 1, ly)
        cuda.atomic.min(bbox, 2, lz)
        cuda.atomic.max(bbox, 3, hx)
        cuda.atomic.max(bbox, 4, hy)
        cuda.atomic.max(bbox, 5, hz)


@cuda.jit
def k_grid_reset(ncell, counts, nq, mass, comx, comy, comz, kf, rx, ry, qx, qy, qz):
    """Zero the cell counts and the coarse far-field sums; first fine cell of each coarse one."""
    for c in range(cuda.grid(1), ncell + 1, cuda.gridsize(1)):
        counts[c] = 0
    for c in range(cuda.grid(1), nq, cuda.gridsize(1)):
        mass[c] = 0
        comx[c] = 0
        comy[c] = 0
        comz[c] = 0
        qx[c] = (c % rx) * kf
        qy[c] = ((c // rx) % ry) * kf
        qz[c] = (c // (rx * ry)) * kf


@cuda.jit
def k_grid_count(
    n, x, y, z, ox, oy, oz, inv_h, gdx, gdy, gdz, keys, counts,
    kf, rx, ry, mass, comx, comy, comz,
):
    """Cell of each node (kept in ``keys``), nodes per cell, coarse mass and position sums."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        cx, cy, cz = _cell_of(x[i], y[i], z[i], ox, oy, oz, inv_h, gdx, gdy, gdz)
        c = cx + gdx * (cy + gdy * cz)
        keys[i] = c
        cuda.atomic.add(counts, c, 1)
        q = cx // kf + rx * (cy // kf + ry * (cz // kf))
        cuda.atomic.add(mass, q, 1)
        cuda.atomic.add(comx, q, x[i])
        cuda.atomic.add(comy, q, y[i])
        cuda.atomic.add(comz, q, z[i])


@cuda.jit
def k_scan_chunks(ncell, counts, chunk, partial):
    """Prefix sum, level 1: the total of each chunk of ``chunk`` cells."""
    nparts = (ncell + chunk - 1) // chunk
    for t in range(cuda.grid(1), nparts, cuda.gridsize(1)):
        s = 0
        for c in range(t * chunk, min((t + 1) * chunk, ncell)):
            s += counts[c]
        partial[t] = s


@cuda.jit
def k_scan_partials(nparts, partial, cell_start, ncell):
    """Prefix sum, level 2: one thread scans the ~sqrt(cells) chunk totals."""
    if cuda.grid(1) == 0:
        s = 0
        for t in range(nparts):
            v = partial[t]
            partial[t] = s
            s += v
        cell_start[ncell] = s


@cuda.jit
def k_scan_apply(ncell, counts, chunk, partial, cell_start, cursor):
    """Prefix sum, level 3: each chunk writes its cells' starts (and the scatter cursors)."""
    nparts = (ncell + chunk - 1) // chunk
    for t in range(cuda.grid(1), nparts, cuda.gridsize(1)):
        s = partial[t]
        for c in range(t * chunk, min((t + 1) * chunk, ncell)):
            cell_start[c] = s
            cursor[c] = s
            s += counts[c]


@cuda.jit
def k_grid_scatter(n, x, y, z, keys, cursor, sx, sy, sz, perm, nq, mass, comx, comy, comz):
    """Place each node in its cell's range of the sorted arrays; finish the centres of mass."""
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        slot = cuda.atomic.add(cursor, keys[i], 1)
        sx[slot] = x[i]
        sy[slot] = y[i]
        sz[slot] = z[i]
        perm[slot] = i
    for c in range(cuda.grid(1), nq, cuda.gridsize(1)):
        m = mass[c]
        if m > 0:
            comx[c] = comx[c] / m
            comy[c] = comy[c] / m
            comz[c] = comz[c] / m


@cuda.jit
def k_forces_grid(
    n, x, y, z, off, nbr, w, fx, fy, fz, k, md, cut2, spring_k, rest, grav,
    sx, sy, sz, perm, keys, cell_start, gdx, gdy, gdz, ffx, ffy, ffz, far,
):
    """Near field (pairs in the 27 cells around the node's, closer than sqrt(cut2)) + the
    cell's far field + springs + gravity, one sorted slot per thread (as gpu.cpu.forces_grid,
    which sums the same 9 runs of cells in the same order)."""
    md2 = md * md
    coincident_mag = k / (md2 + md2)
    half = np.float32(1.5)
    for s in range(cuda.grid(1), n, cuda.gridsize(1)):
        i = perm[s]
        xi = sx[s]
        yi = sy[s]
        zi = sz[s]
        # The cell the node was sorted into, not the one it is in now: a kept grid
        # (SimParams.grid_skin) still splits every pair once between near and far field.
        c = keys[i]
        cx = c % gdx
        cy = (c // gdx) % gdy
        cz = c // (gdx * gdy)
        ax = xi - xi  # a float32 zero
        ay = ax
        az = ax
        close = ax
        for qz in range(max(cz - 1, 0), min(cz + 2, gdz)):
            for qy in range(max(cy - 1, 0), min(cy + 2, gdy)):
                row = gdx * (qy + gdy * qz)
                gx, gy, gz, gc = _pair_sums(
                    xi, yi, zi, sx, sy, sz, cell_start[row + max(cx - 1, 0)],
                    cell_start[row + min(cx + 2, gdx)], k, md2, cut2,
                )
                ax += gx
                ay += gy
                az += gz
                close += gc
        if close > half:  # the node itself is always one
            for qz in range(max(cz - 1, 0), min(cz + 2, gdz)):
                for qy in range(max(cy - 1, 0), min(cy + 2, gdy)):
                    row = gdx * (qy + gdy * qz)
                    lo = cell_start[row + max(cx - 1, 0)]
                    for t in range(lo, cell_start[row + min(cx + 2, gdx)]):
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
            ax += ffx[c]
            ay += ffy[c]
            az += ffz[c]
        px, py, pz = _spring_node(i, x, y, z, off, nbr, w, spring_k, rest)
        fx[i] = ax + px - grav * xi
        fy[i] = ay + py - grav * yi
        fz[i] = az + pz - grav * zi


@cuda.jit
def k_gather_sorted(n, x, y, z, perm, sx, sy, sz):
    """Refresh the sorted copies from the current positions in the kept cell order."""
    for s in range(cuda.grid(1), n, cuda.gridsize(1)):
        i = perm[s]
        sx[s] = x[i]
        sy[s] = y[i]
        sz[s] = z[i]


@cuda.jit
def k_far_cells(
    ncell, cell_start, inv_h, gdx, gdy, gdz, ox, oy, oz, kf, nq, qx, qy, qz,
    mass, comx, comy, comz, k, md, ffx, ffy, ffz,
):
    """Far field at the centre of each non-empty cell (as gpu.cpu.far_field_cells)."""
    half = np.float32(0.5)
    h = np.float32(1.0) / inv_h
    for c in range(cuda.grid(1), ncell, cuda.gridsize(1)):
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


@cuda.jit
def k_integrate(
    n, x, y, z, vx, vy, vz, fx, fy, fz, pinned, ramp, max_force, dt, damp, vmax, bounds, ke
):
    """One step per node; kinetic energy summed into ke[0] (one atomic per thread)."""
    acc = 0.0
    for i in range(cuda.grid(1), n, cuda.gridsize(1)):
        acc += _integrate_node(
            i, x, y, z, vx, vy, vz, fx, fy, fz, pinned, ramp, max_force, dt, damp, vmax, bounds
        )
    if acc != 0.0:
        cuda.atomic.add(ke, 0, acc)


@cuda.jit
def k_zero_f64(a):
    if cuda.grid(1) < a.shape[0]:
        a[cuda.grid(1)] = 0.0


class CudaBackend:
    """Device-resident state; host copies only on load, state() and the per-step bbox."""

    name = "cuda"

    def __init__(self, sync_each_launch: bool = False) -> None:
        self.launcher = Launcher(sync_each_launch=sync_each_launch)
        self.n = 0
        self._cap = 0
        self._ecap = 0
        self._res = 0
        self.d: dict[str, object] = {}
        self._bbox_host = cuda.pinned_array(6, dtype=np.float32)
        self._ke_host = cuda.pinned_array(1, dtype=np.float64)
        self.d["bbox"] = cuda.device_array(6, dtype=np.float32)
        self.d["ke"] = cuda.device_array(1, dtype=np.float64)
        # The grid the steps keep (SimParams.grid_skin): its geometry, the cell size it was
        # built for, and the most any node can have moved since (sum of vmax * dt).
        self._grid: tuple | None = None
        self._grid_cell = 0.0
        self._moved = 0.0
        self._alloc_nodes(0)
        self._alloc_edges(0)

    @property
    def capacity(self) -> int:
        return self._cap

    def _alloc_nodes(self, n: int) -> None:
        """(Re)allocate per-node device buffers at a doubled capacity when n outgrows them."""
        if self._cap >= n and self._cap:
            return
        cap = grown_capacity(self._cap, n)
        for name in ("x", "y", "z", "vx", "vy", "vz", "fx", "fy", "fz", "sx", "sy", "sz"):
            self.d[name] = cuda.device_array(cap, dtype=np.float32)
        self.d["pinned"] = cuda.device_array(cap, dtype=np.uint8)
        for name in ("perm", "keys"):
            self.d[name] = cuda.device_array(cap, dtype=np.int32)
        for name in ("off", "cell_start", "counts", "cursor", "partial"):
            self.d[name] = cuda.device_array(cap + 1, dtype=np.int32)
        for name in ("ffx", "ffy", "ffz"):
            self.d[name] = cuda.device_array(cap + 1, dtype=np.float32)
        self._cap = cap

    def _alloc_edges(self, entries: int) -> None:
        if self._ecap >= entries and self._ecap:
            return
        cap = grown_capacity(self._ecap, entries)
        self.d["nbr"] = cuda.device_array(cap, dtype=np.int32)
        self.d["w"] = cuda.device_array(cap, dtype=np.float32)
        self._ecap = cap

    def _alloc_coarse(self, res: int) -> None:
        if self._res == res:
            return
        for name in ("mass", "comx", "comy", "comz"):
            self.d[name] = cuda.device_array(res**3, dtype=np.float32)
        for name in ("qx", "qy", "qz"):
            self.d[name] = cuda.device_array(res**3, dtype=np.int32)
        self._res = res

    def _upload(self, name: str, host: np.ndarray) -> None:
        arr = self.d[name]
        if host.shape[0]:
            arr[: host.shape[0]].copy_to_device(np.ascontiguousarray(host))  # type: ignore[index]

    def load(
        self,
        pos: np.ndarray, vel: np.ndarray, pinned: np.ndarray,
        offsets: np.ndarray, neighbours: np.ndarray, weights: np.ndarray,
    ) -> None:
        n = pos.shape[0]
        self._alloc_nodes(n)
        self._alloc_edges(neighbours.shape[0])
        for k, name in enumerate(("x", "y", "z")):
            self._upload(name, pos[:, k].astype(np.float32))
            self._upload("v" + name, vel[:, k].astype(np.float32))
        self._upload("pinned", pinned.astype(np.uint8))
        self._upload("off", offsets.astype(np.int32))
        self._upload("nbr", neighbours.astype(np.int32))
        self._upload("w", weights.astype(np.float32))
        self.n = n
        self._grid = None
        self.launcher.sync("load")

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        out = np.empty((6, n), dtype=np.float32)
        if n:
            for k, name in enumerate(("x", "y", "z", "vx", "vy", "vz")):
                self.launcher.copy_to_host(self.d[name], n, out[k])
        return np.ascontiguousarray(out[:3].T), np.ascontiguousarray(out[3:].T)

    def set_frozen(self, flags: np.ndarray) -> None:
        """Every node's hold at once: 0 moves, anything else stays where it is (the kernel
        zeroes a held node's velocity at its next step)."""
        self._upload("pinned", flags.astype(np.uint8))
        self.launcher.sync("set_frozen")

    def halt(self) -> None:
        """Every velocity to zero: the layout at rest shows nothing still moving."""
        zeros = np.zeros(self.n, dtype=np.float32)
        for name in ("vx", "vy", "vz"):
            self._upload(name, zeros)
        self.launcher.sync("halt")

    def set_node(self, i: int, pos: tuple[float, float, float], pinned: bool) -> None:
        for k, name in enumerate(("x", "y", "z")):
            self.d[name][i : i + 1].copy_to_device(np.array([pos[k]], dtype=np.float32))  # type: ignore[index]
            self.d["v" + name][i : i + 1].copy_to_device(np.zeros(1, dtype=np.float32))  # type: ignore[index]
        self.d["pinned"][i : i + 1].copy_to_device(np.array([1 if pinned else 0], dtype=np.uint8))  # type: ignore[index]
        self._grid = None  # a moved node may be far from its cell

    def _node_args(self) -> tuple:
        d = self.d
        return (
            self.n, d["x"], d["y"], d["z"], d["off"], d["nbr"], d["w"], d["fx"], d["fy"], d["fz"],
        )

    def _forces(self, p: SimParams, mode: str, keep: bool = False) -> None:
        """Forces into fx/fy/fz. ``keep``: a step's, which may reuse the grid of the steps
        before it (SimParams.grid_skin, decided as gpu.cpu.run_steps decides it)."""
        f32 = np.float32
        k, md = f32(p.repel_k), f32(p.min_distance)
        tail = (f32(p.spring_k), f32(p.rest_length), f32(p.center_gravity_k))
        cut2 = f32(p.repulsion_cutoff) ** 2
        if mode in ("exact", "exact_cutoff"):
            c2 = NO_CUTOFF2 if mode == "exact" else cut2
            self.launcher.launch(
                "k_forces_exact", k_forces_exact, self.n, *self._node_args(), k, md, c2, *tail
            )
            return
        if mode not in ("grid", "grid_near"):
            raise ValueError(f"unknown force mode {mode!r}")
        d = self.d
        cell = max(p.grid_cell_size, p.repulsion_cutoff)
        if keep and self._grid is not None and self._moved <= p.grid_skin * cell \
                and self._grid_cell == cell:
            geo = self._grid
            self.launcher.launch(
                "k_gather_sorted", k_gather_sorted, self.n, self.n, d["x"], d["y"], d["z"],
                d["perm"], d["sx"], d["sy"], d["sz"],
            )
        else:
            geo = self._build_grid(p)
            inv_h, gdx, gdy, gdz, ox, oy, oz, kf, nq = geo
            ncell = gdx * gdy * gdz
            self.launcher.launch(
                "k_far_cells", k_far_cells, ncell, ncell, d["cell_start"], inv_h, gdx, gdy, gdz,
                ox, oy, oz, kf, nq, d["qx"], d["qy"], d["qz"], d["mass"], d["comx"], d["comy"],
                d["comz"], k, md, d["ffx"], d["ffy"], d["ffz"],
            )
            self._grid, self._grid_cell = (geo, cell) if keep else (None, 0.0)
            self._moved = 0.0
        _inv_h, gdx, gdy, gdz = geo[:4]
        # "grid" sums every pair in the 27 cells (the far field covers the rest); "grid_near"
        # only those within the cutoff, to check the cell list against "exact_cutoff".
        self.launcher.launch(
            "k_forces_grid", k_forces_grid, self.n, *self._node_args(), k, md,
            NO_CUTOFF2 if mode == "grid" else cut2, *tail,
            d["sx"], d["sy"], d["sz"], d["perm"], d["keys"], d["cell_start"], gdx, gdy, gdz,
            d["ffx"], d["ffy"], d["ffz"], mode == "grid",
        )

    def _build_grid(self, p: SimParams) -> tuple:
        """Counting sort of the nodes into cells on the device; returns the grid geometry."""
        d, L, n = self.d, self.launcher, self.n
        self._alloc_coarse(p.far_field_resolution)
        res = self._res
        L.launch("k_bbox_reset", k_bbox_reset, 3, d["bbox"])
        L.launch("k_bbox", k_bbox, n, n, d["x"], d["y"], d["z"], d["bbox"])
        L.copy_to_host(d["bbox"], 6, self._bbox_host)
        lo_x, lo_y, lo_z, hi_x, hi_y, hi_z = (float(v) for v in self._bbox_host)
        h, gdx, gdy, gdz = physics.grid_shape(
            lo_x, lo_y, lo_z, hi_x, hi_y, hi_z,
            max(p.grid_cell_size, p.repulsion_cutoff), cell_budget(self._cap),
        )
        ncell = gdx * gdy * gdz
        f32 = np.float32
        inv_h = f32(1.0 / h)
        kf = (max(gdx, gdy, gdz) + res - 1) // res
        rx, ry, rz = ((g + kf - 1) // kf for g in (gdx, gdy, gdz))
        nq = rx * ry * rz
        ox, oy, oz = f32(lo_x), f32(lo_y), f32(lo_z)
        L.launch(
            "k_grid_reset", k_grid_reset, max(ncell + 1, nq), ncell, d["counts"], nq,
            d["mass"], d["comx"], d["comy"], d["comz"], kf, rx, ry, d["qx"], d["qy"], d["qz"],
        )
        L.launch(
            "k_grid_count", k_grid_count, n, n, d["x"], d["y"], d["z"], ox, oy, oz, inv_h,
            gdx, gdy, gdz, d["keys"], d["counts"], kf, rx, ry,
            d["mass"], d["comx"], d["comy"], d["comz"],
        )
        chunk = max(1, math.isqrt(ncell))
        nparts = (ncell + chunk - 1) // chunk
        L.launch("k_scan_chunks", k_scan_chunks, nparts, ncell, d["counts"], chunk, d["partial"])
        L.launch("k_scan_partials", k_scan_partials, 1, nparts, d["partial"], d["cell_start"], ncell)
        L.launch(
            "k_scan_apply", k_scan_apply, nparts,
            ncell, d["counts"], chunk, d["partial"], d["cell_start"], d["cursor"],
        )
        L.launch(
            "k_grid_scatter", k_grid_scatter, max(n, nq), n, d["x"], d["y"], d["z"], d["keys"],
            d["cursor"], d["sx"], d["sy"], d["sz"], d["perm"], nq,
            d["mass"], d["comx"], d["comy"], d["comz"],
        )
        return inv_h, gdx, gdy, gdz, ox, oy, oz, kf, nq

    def step(self, n_steps: int, iteration: int, params: SimParams, use_grid: bool) -> float:
        if self.n == 0 or n_steps <= 0:
            return 0.0
        d, L, p, f32 = self.d, self.launcher, params, np.float32
        mode = "grid" if use_grid else "exact"
        for s in range(n_steps):
            ramp, damp, vmax = schedule(
                iteration + s, p.warmup_iterations, p.warmup_extra_damping, p.damping,
                p.max_velocity, p.cooling_rate, p.min_temperature,
            )
            self._forces(p, mode, keep=True)
            if s == n_steps - 1:
                L.launch("k_zero_f64", k_zero_f64, 1, d["ke"])
            L.launch(
                "k_integrate", k_integrate, self.n, self.n, d["x"], d["y"], d["z"],
                d["vx"], d["vy"], d["vz"], d["fx"], d["fy"], d["fz"], d["pinned"],
                f32(ramp), f32(p.max_force), f32(p.dt), f32(damp), f32(vmax), f32(p.bounds),
                d["ke"],
            )
            self._moved += float(f32(vmax) * f32(p.dt))  # no node moves farther in a step
        L.copy_to_host(d["ke"], 1, self._ke_host)
        return float(self._ke_host[0])

    def forces(self, params: SimParams, mode: str) -> np.ndarray:
        self._alloc_coarse(params.far_field_resolution)
        self._forces(params, mode)
        out = np.empty((3, self.n), dtype=np.float32)
        for k, name in enumerate(("fx", "fy", "fz")):
            self.launcher.copy_to_host(self.d[name], self.n, out[k])
        return np.ascontiguousarray(out.T)

    def nbytes(self) -> int:
        return int(sum(getattr(a, "nbytes", 0) for a in self.d.values()))
