"""Run by test_cuda_sim.py in a subprocess with NUMBA_ENABLE_CUDASIM=1 (not a test module).

Prints one JSON line with the largest CUDA-vs-CPU differences; the test asserts on them.
"""

from __future__ import annotations

import json
import os

import numpy as np
from numba import cuda

from gpu import LayoutEngine, SimParams
from gpu.launch import CudaKernelError, Launcher
from tests.gpu.conftest import random_graph

assert os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def run(params: SimParams, backend: str, steps: int) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, int]:
    """Pins, three nodes on one point (the coincident-node push), unpinning, then a larger
    graph that outgrows the first buffers and carries the survivors' state over."""
    ids, src, dst = random_graph(48, seed=2)
    eng = LayoutEngine(params, backend=backend)
    eng.set_graph(ids, src, dst)
    first_capacity = eng.capacity
    eng.pin(int(ids[3]), (1.0, 2.0, 3.0))
    for k in (5, 6, 7):
        eng.pin(int(ids[k]), (-4.0, 0.5, 2.0))
    forces = eng.forces()
    for k in (5, 6, 7):
        eng.unpin(int(ids[k]))
    ke = eng.step(steps)
    more = random_graph(2 * first_capacity, seed=3)  # the same first 48 ids, and more
    eng.set_graph(*more)
    assert eng.capacity > first_capacity, (eng.capacity, first_capacity)
    ke = eng.step(steps)
    return eng.positions(), eng.velocities(), ke, forces, eng.capacity


@cuda.jit
def k_out_of_bounds(a):  # type: ignore[no-untyped-def]
    a[a.shape[0] + cuda.grid(1)] = 1.0


result: dict[str, object] = {"backend": LayoutEngine(backend="auto").backend_name}
small = {"repulsion_cutoff": 15.0, "grid_cell_size": 15.0, "warmup_iterations": 2,
         "place_max_nodes": 0}  # the warm-up path; the placed one below
for name, params in (
    ("exact", SimParams(grid_threshold=10**9, **small)),
    ("grid", SimParams(grid_threshold=1, **small)),
    # slow steps (vmax * dt = 0.4, skin 7.5): the grid is kept across steps on both backends
    ("grid_kept", SimParams(grid_threshold=1, max_velocity=2.0, **small)),
):
    p_cpu, v_cpu, ke_cpu, f_cpu, _ = run(params, "cpu", 6)
    p_gpu, v_gpu, ke_gpu, f_gpu, cap_gpu = run(params, "cuda", 6)
    result[name] = {
        "pos": float(np.abs(p_cpu - p_gpu).max()),
        "vel": float(np.abs(v_cpu - v_gpu).max()),
        "force": float(np.abs(f_cpu - f_gpu).max() / max(1.0, np.abs(f_cpu).max())),
        "ke_rel": abs(ke_cpu - ke_gpu) / max(ke_cpu, 1e-12),
        "scale": float(np.abs(p_cpu).max()),
        "coincident_force": float(np.abs(f_gpu[5:8]).max()),
        "nodes": int(p_gpu.shape[0]),
        "capacity": cap_gpu,
    }

# Grid near field against exact-within-cutoff on the CUDA kernels themselves.
eng = LayoutEngine(SimParams(**small), backend="cuda")
eng.set_graph(*random_graph(48, seed=4))
result["grid_vs_exact"] = float(np.abs(eng.forces("grid_near") - eng.forces("exact_cutoff")).max())

# Rest and local wake: only a neighbourhood moves, the same on both backends, and a halt
# leaves no velocity behind.
def held(backend: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    e = LayoutEngine(SimParams(**small), backend=backend)
    e.set_graph(*random_graph(48, seed=5))
    e.step(3)
    before = e.positions()
    awake = e.neighbourhood(e.indices(np.array([int(e.node_ids[0])])), 1)
    e.hold(awake)
    e.step(4)
    after = e.positions()
    e.halt()
    return before, after, awake, e.velocities()


for backend in ("cpu", "cuda"):
    before, after, awake, halted = held(backend)
    moved = np.abs(after - before).max(axis=1) > 0
    result[f"hold_{backend}"] = {
        "asleep_moved": int((moved & ~awake).sum()), "awake_moved": int((moved & awake).sum()),
        "awake": int(awake.sum()), "halted_v": float(np.abs(halted).max()),
        "after": after.tolist(),
    }
result["hold_pos"] = float(np.abs(np.array(result["hold_cpu"]["after"])  # type: ignore[index]
                                  - np.array(result["hold_cuda"]["after"])).max())  # type: ignore[index]

# A placed graph (gpu.stress on the host, then the cool start): the same on both backends.
placed: dict[str, np.ndarray] = {}
for backend in ("cpu", "cuda"):
    e = LayoutEngine(SimParams(**{**small, "place_max_nodes": 2048}), backend=backend)
    e.set_graph(*random_graph(48, seed=6))
    assert e.placed
    e.step(6)
    placed[backend] = e.positions()
result["placed"] = {"pos": float(np.abs(placed["cpu"] - placed["cuda"]).max()),
                    "scale": float(np.abs(placed["cpu"]).max())}

try:
    Launcher().launch("k_out_of_bounds", k_out_of_bounds, 4, np.zeros(4, dtype=np.float32))
    result["error"] = "no error"
except CudaKernelError as exc:
    result["error"] = str(exc)
print(json.dumps(result))
