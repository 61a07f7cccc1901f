"""Force model behaviour on the CPU backend: stability, bounds, energy, clustering, grid."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from gpu import LayoutEngine, SimParams
from tests.gpu.conftest import random_graph

EXACT = SimParams(grid_threshold=10**9)
GRID = SimParams(grid_threshold=1)
NO_EDGES = np.array([], dtype=np.int64)


@pytest.mark.parametrize("params", [EXACT, GRID], ids=["exact", "grid"])
def test_coincident_nodes_and_zero_length_edges_stay_finite(params: SimParams) -> None:
    eng = LayoutEngine(params, backend="cpu")
    ids = np.arange(20, dtype=np.int64)
    eng.set_graph(ids, ids[:10], ids[10:])
    for k in range(20):
        eng.pin(int(ids[k]), (5.0, 5.0, 5.0))  # all on one point, so every edge has length 0
    for k in range(20):
        eng.unpin(int(ids[k]))
    ke = eng.step(50)
    pos = eng.positions()
    assert np.isfinite(pos).all() and np.isfinite(eng.velocities()).all() and np.isfinite(ke)
    # The golden-angle push separated them: no two nodes still share a point.
    assert len(np.unique(pos.round(4), axis=0)) == 20


def test_single_node_and_self_loop() -> None:
    eng = LayoutEngine(backend="cpu")
    eng.set_graph(np.array([7]), np.array([7]), np.array([7]))
    start = np.linalg.norm(eng.positions()[0])
    eng.step(400)
    assert np.isfinite(eng.positions()).all()
    # Only gravity acts: it falls towards the centre.
    assert np.linalg.norm(eng.positions()[0]) < 0.1 * start


@pytest.mark.parametrize("params", [EXACT, GRID], ids=["exact", "grid"])
def test_bounds_hold(params: SimParams) -> None:
    p = dataclasses.replace(params, bounds=20.0, center_gravity_k=0.0, repel_k=5000.0)
    eng = LayoutEngine(p, backend="cpu")
    eng.set_graph(*random_graph(100))
    for _ in range(10):
        eng.step(20)
        assert np.abs(eng.positions()).max() <= 20.0


def test_kinetic_energy_falls_under_damping() -> None:
    eng = LayoutEngine(SimParams(warmup_iterations=0), backend="cpu")
    eng.set_graph(*random_graph(200))
    energies = [eng.step(25) for _ in range(16)]
    assert energies[-1] < 0.2 * max(energies)
    assert energies[-1] < min(energies[:4])
    assert all(np.isfinite(energies))


@pytest.mark.parametrize("params", [EXACT, GRID], ids=["exact", "grid"])
def test_two_dense_clusters_joined_by_one_edge_separate(params: SimParams) -> None:
    ids = np.arange(60, dtype=np.int64)
    a, b = ids[:30], ids[30:]
    src, dst = [], []
    for group in (a, b):
        for i in range(30):
            for j in range(i + 1, 30):
                src.append(group[i])
                dst.append(group[j])
    src.append(a[0])
    dst.append(b[0])
    eng = LayoutEngine(params, backend="cpu")
    eng.set_graph(ids, np.array(src), np.array(dst))
    eng.step(600)
    pos = eng.positions().astype(np.float64)
    ca, cb = pos[:30].mean(axis=0), pos[30:].mean(axis=0)
    intra = np.mean([np.linalg.norm(pos[:30] - ca, axis=1).mean(), np.linalg.norm(pos[30:] - cb, axis=1).mean()])
    between = np.linalg.norm(ca - cb)
    assert intra < 0.5 * between, (intra, between)


def test_grid_matches_exact_within_cutoff() -> None:
    """Near field only: the cell list must find exactly the pairs closer than the cutoff."""
    p = SimParams(repulsion_cutoff=12.0, grid_cell_size=12.0, spawn_radius=20.0)
    eng = LayoutEngine(p, backend="cpu")
    eng.set_graph(*random_graph(400, seed=5))
    eng.step(3)
    exact = eng.forces("exact_cutoff")
    grid = eng.forces("grid_near")
    np.testing.assert_allclose(grid, exact, rtol=1e-4, atol=1e-4)


def test_grid_far_field_approximates_all_pairs() -> None:
    """With the far field on, grid forces are close to exact all-pairs forces (no cutoff)."""
    eng = LayoutEngine(SimParams(repulsion_cutoff=10.0, grid_cell_size=10.0), backend="cpu")
    eng.set_graph(*random_graph(400, seed=6))
    exact = eng.forces("exact").astype(np.float64)
    near = eng.forces("grid_near").astype(np.float64)
    grid = eng.forces("grid").astype(np.float64)
    err_far = np.linalg.norm(grid - exact, axis=1).mean()
    err_near = np.linalg.norm(near - exact, axis=1).mean()
    assert err_far < 0.5 * err_near, (err_far, err_near)


def test_far_field_pushes_separate_clusters_apart() -> None:
    """Two clumps farther apart than the cutoff still repel through the coarse cells."""
    eng = LayoutEngine(SimParams(grid_threshold=1, center_gravity_k=0.0, spring_k=0.0), backend="cpu")
    ids = np.arange(40, dtype=np.int64)
    eng.set_graph(ids, NO_EDGES, NO_EDGES)
    for k in range(40):
        eng.pin(int(ids[k]), (-100.0 if k < 20 else 100.0, k % 5, k // 5 % 4))
        eng.unpin(int(ids[k]))
    f = eng.forces("grid")
    assert (f[:20, 0] < 0).all() and (f[20:, 0] > 0).all()
    assert np.abs(eng.forces("grid_near")[:, 0]).max() < np.abs(f[:, 0]).min() + 10


@pytest.mark.parametrize("mode", ["grid_near", "grid"])
def test_grid_in_place_fallback_matches_row_buffer(mode: str) -> None:
    """A row whose 9-row neighbourhood outgrows the per-thread row buffer (or a grid wider than
    its column index) is summed in place: same forces as through the buffer."""
    p = SimParams(repulsion_cutoff=12.0, grid_cell_size=12.0, spawn_radius=20.0)
    eng = LayoutEngine(p, backend="cpu")
    eng.set_graph(*random_graph(1500, seed=5))
    backend = eng.backend
    buffered = eng.forces(mode)
    small_buf = np.zeros((backend.row_buf.shape[0], 3, 24), np.float32)  # type: ignore[attr-defined]
    small_cols = np.zeros((backend.row_cols.shape[0], 3), np.int32)  # type: ignore[attr-defined]
    for buf, cols in ((small_buf, backend.row_cols), (backend.row_buf, small_cols)):  # type: ignore[attr-defined]
        backend.row_buf, backend.row_cols = buf, cols  # type: ignore[attr-defined]
        np.testing.assert_allclose(eng.forces(mode), buffered, rtol=1e-4, atol=1e-3)
