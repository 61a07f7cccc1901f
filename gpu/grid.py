"""Uniform-grid (cell list) construction for the CPU backend, by counting sort.

Cells are at least the repulsion cutoff wide, so every pair closer than the cutoff lies in the
same or one of the 26 neighbouring cells. Nodes are sorted by cell (stable, serial counting
sort: O(N), deterministic order, so results do not depend on thread timing) into contiguous
x/y/z copies, which the force loop then reads sequentially. The same pass bins nodes into a
coarse grid of at most ``res`` cells per axis whose centres of mass give the far field. A
coarse cell is a block of ``kf^3`` whole fine cells, so "outside the 27 near cells" is a
property of whole coarse cells and the near and far fields never overlap.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from gpu import physics

_cell_of = njit(fastmath=True, cache=True)(physics.cell_of)
_grid_shape = njit(cache=True)(physics.grid_shape)


@njit(fastmath=True, cache=True)
def build_grid(
    n, x, y, z, cell_size, max_cells, res,
    cell_start, cursor, sx, sy, sz, perm, mass, comx, comy, comz, qx, qy, qz,
):
    """Sort nodes into cells; fill the coarse far-field cells. Returns the grid's geometry.

    Returns ``(inv_h, dx, dy, dz, ox, oy, oz, kf, nq)``: ``kf`` fine cells per coarse cell and
    axis, ``nq`` coarse cells; ``qx/qy/qz[q]`` get the first fine cell of coarse cell ``q``.
    ``cell_start`` gets the exclusive prefix sum of the cell counts (length cells+1),
    ``perm[slot]`` the node index sorted into ``slot``, and ``sx/sy/sz`` the sorted positions.
    """
    lo_x = x[0]
    lo_y = y[0]
    lo_z = z[0]
    hi_x = lo_x
    hi_y = lo_y
    hi_z = lo_z
    for i in range(1, n):
        lo_x = min(lo_x, x[i])
        lo_y = min(lo_y, y[i])
        lo_z = min(lo_z, z[i])
        hi_x = max(hi_x, x[i])
        hi_y = max(hi_y, y[i])
        hi_z = max(hi_z, z[i])
    h, dx, dy, dz = _grid_shape(lo_x, lo_y, lo_z, hi_x, hi_y, hi_z, cell_size, max_cells)
    inv_h = np.float32(1.0 / h)
    ncell = dx * dy * dz
    for c in range(ncell + 1):
        cursor[c] = 0
    for i in range(n):
        cx, cy, cz = _cell_of(x[i], y[i], z[i], lo_x, lo_y, lo_z, inv_h, dx, dy, dz)
        cursor[cx + dx * (cy + dy * cz)] += 1
    total = 0
    for c in range(ncell):
        cell_start[c] = total
        total += cursor[c]
        cursor[c] = cell_start[c]
    cell_start[ncell] = total

    kf = (max(dx, max(dy, dz)) + res - 1) // res
    rx = (dx + kf - 1) // kf
    ry = (dy + kf - 1) // kf
    rz = (dz + kf - 1) // kf
    nq = rx * ry * rz
    for c in range(nq):
        mass[c] = 0
        comx[c] = 0
        comy[c] = 0
        comz[c] = 0
        qx[c] = (c % rx) * kf
        qy[c] = ((c // rx) % ry) * kf
        qz[c] = (c // (rx * ry)) * kf
    for i in range(n):
        cx, cy, cz = _cell_of(x[i], y[i], z[i], lo_x, lo_y, lo_z, inv_h, dx, dy, dz)
        c = cx + dx * (cy + dy * cz)
        slot = cursor[c]
        cursor[c] = slot + 1
        sx[slot] = x[i]
        sy[slot] = y[i]
        sz[slot] = z[i]
        perm[slot] = i
        k = cx // kf + rx * (cy // kf + ry * (cz // kf))
        mass[k] += 1
        comx[k] += x[i]
        comy[k] += y[i]
        comz[k] += z[i]
    for c in range(nq):
        if mass[c] > 0:
            comx[c] /= mass[c]
            comy[c] /= mass[c]
            comz[c] /= mass[c]
    return inv_h, dx, dy, dz, lo_x, lo_y, lo_z, kf, nq
