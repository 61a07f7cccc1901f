"""LayoutEngine API: identity, graph changes, pins, buffer growth, backend selection."""

from __future__ import annotations

import numpy as np
import pytest

from gpu import CudaUnavailableError, LayoutEngine, SimParams, cuda_available
from tests.gpu.conftest import random_graph


def make(n: int = 64, **kw: object) -> LayoutEngine:
    eng = LayoutEngine(SimParams(**kw), backend="cpu")  # type: ignore[arg-type]
    eng.set_graph(*random_graph(n))
    return eng


def test_shapes_and_types(graph64: tuple[np.ndarray, ...]) -> None:
    eng = LayoutEngine(SimParams(place_max_nodes=0), backend="cpu")  # placed: test_stress.py
    assert eng.backend_name == "cpu"
    eng.set_graph(*graph64)
    assert eng.node_count == 64 and eng.iteration == 0
    assert eng.node_ids.dtype == np.int64
    np.testing.assert_array_equal(eng.node_ids, graph64[0])
    ke = eng.step(3)
    assert isinstance(ke, float) and ke >= 0
    assert eng.iteration == 3
    for arr in (eng.positions(), eng.velocities()):
        assert arr.shape == (64, 3) and arr.dtype == np.float32
    # Copies, not views into the engine's buffers.
    eng.positions()[:] = 1e6
    assert np.abs(eng.positions()).max() < 1e6


def test_initial_positions_deterministic_by_id() -> None:
    ids, src, dst = random_graph(50)
    unplaced = SimParams(place_max_nodes=0)  # new ids among known ones start where their id says
    a = LayoutEngine(unplaced, backend="cpu")
    a.set_graph(ids, src, dst)
    b = LayoutEngine(unplaced, backend="cpu")
    order = np.random.default_rng(3).permutation(50)
    b.set_graph(ids[order], src, dst)
    np.testing.assert_array_equal(a.positions()[order], b.positions())
    assert len(np.unique(a.positions(), axis=0)) == 50


def test_removal_keeps_survivors_state() -> None:
    eng = make(64)
    eng.step(20)
    ids = eng.node_ids
    before = dict(zip(ids.tolist(), eng.positions(), strict=True))
    vel = dict(zip(ids.tolist(), eng.velocities(), strict=True))
    keep = ids[::2]
    new = np.array([10**12, 10**12 + 1], dtype=np.int64)
    eng.set_graph(np.concatenate([keep[::-1], new]), keep[:5], keep[5:10])
    assert eng.node_count == keep.size + 2 and eng.iteration == 0
    for nid, p, v in zip(eng.node_ids.tolist(), eng.positions(), eng.velocities(), strict=True):
        if nid in before:
            np.testing.assert_array_equal(p, before[nid])
            np.testing.assert_array_equal(v, vel[nid])
    assert np.isfinite(eng.positions()).all()


def test_unknown_edge_id_and_duplicates_rejected() -> None:
    eng = LayoutEngine(backend="cpu")
    ids = np.arange(5, dtype=np.int64)
    with pytest.raises(ValueError, match="99"):
        eng.set_graph(ids, np.array([0, 1]), np.array([1, 99]))
    with pytest.raises(ValueError, match="more than once"):
        eng.set_graph(np.array([1, 2, 2]), np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match="weights"):
        eng.set_graph(ids, np.array([0]), np.array([1]), np.array([1.0, 2.0]))


def test_buffers_grow_by_doubling_and_are_reused() -> None:
    eng = LayoutEngine(backend="cpu")
    caps = []
    for n in (10, 64, 65, 130, 300, 100):
        eng.set_graph(*random_graph(n))
        caps.append(eng.capacity)
    assert caps == [64, 64, 128, 256, 512, 512]
    x = eng.backend.buffers["x"]  # type: ignore[attr-defined]
    eng.step(5)
    assert eng.backend.buffers["x"] is x  # type: ignore[attr-defined]  # no allocation per step


def test_pin_and_unpin() -> None:
    eng = make(32)
    nid = int(eng.node_ids[5])
    eng.pin(nid, (1.0, 2.0, 3.0))
    eng.step(30)
    k = 5
    np.testing.assert_array_equal(eng.positions()[k], [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(eng.velocities()[k], [0.0, 0.0, 0.0])
    # A pin survives a graph change that keeps the id.
    eng.set_graph(eng.node_ids, np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    eng.step(5)
    np.testing.assert_array_equal(eng.positions()[k], [1.0, 2.0, 3.0])
    eng.unpin(nid)
    eng.step(30)
    assert not np.array_equal(eng.positions()[k], [1.0, 2.0, 3.0])
    with pytest.raises(KeyError):
        eng.pin(-12345, (0.0, 0.0, 0.0))
    with pytest.raises(ValueError):
        eng.pin(nid, (0.0, float("nan"), 0.0))


def test_set_params_and_empty_graph() -> None:
    eng = LayoutEngine(backend="cpu")
    assert eng.step(3) == 0.0
    eng.set_graph(np.array([], dtype=np.int64), np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert eng.positions().shape == (0, 3)
    eng.set_params(SimParams(dt=0.1))
    assert eng.params.dt == 0.1
    with pytest.raises(TypeError):
        eng.set_params({"dt": 0.1})  # type: ignore[arg-type]


def test_backend_selection() -> None:
    with pytest.raises(ValueError, match="backend"):
        LayoutEngine(backend="tpu")
    if cuda_available():  # on a GPU machine, auto picks it
        assert LayoutEngine(backend="auto").backend_name == "cuda"
        return
    assert LayoutEngine(backend="auto").backend_name == "cpu"
    with pytest.raises(CudaUnavailableError, match="is_available"):
        LayoutEngine(backend="cuda")


def _grid_engine(skin: float, **kw: object) -> LayoutEngine:
    # cells of 15 on a 300-node graph spread over ~130: a real grid, far field included
    return make(300, grid_threshold=1, repulsion_cutoff=15.0, grid_cell_size=15.0,
                place_max_nodes=0, grid_skin=skin, **kw)


def test_steps_keep_the_grid_until_nodes_may_have_left_their_cells() -> None:
    """SimParams.grid_skin: slow steps (vmax * dt = 0.4 against 7.5 of skin) reuse the first
    step's sort and far field, so they differ from rebuilding every step, by little."""
    kept, fresh = _grid_engine(0.5, max_velocity=2.0), _grid_engine(0.0, max_velocity=2.0)
    kept.step(1)
    fresh.step(1)
    np.testing.assert_array_equal(kept.positions(), fresh.positions())  # both built step 1
    kept.step(15)
    fresh.step(15)
    diff = np.abs(kept.positions() - fresh.positions()).max()
    travel = np.abs(fresh.positions() - _grid_engine(0.0).positions()).max()
    assert 0.0 < diff < 0.05 * travel, (diff, travel)


def test_a_drag_rebuilds_the_grid_at_the_next_step() -> None:
    """A node put somewhere else (a drag, a pin) may be far from its kept cell: the next step
    sorts again, exactly as an engine that never keeps its grid."""
    kept, fresh = _grid_engine(0.5, max_velocity=2.0), _grid_engine(0.0, max_velocity=2.0)
    for eng in (kept, fresh):
        eng.step(1)
        eng.pin(int(eng.node_ids[7]), (40.0, -35.0, 20.0))
        eng.step(1)
    np.testing.assert_array_equal(kept.positions(), fresh.positions())
