"""CUDA kernels against the CPU backend, in Numba's CUDA simulator.

This machine has no GPU: the simulator (NUMBA_ENABLE_CUDASIM=1) stands in for it and runs the
same kernel source as Python, one thread at a time. It must be switched on before numba.cuda
is first imported, so the comparison runs in a subprocess. It checks correctness only (the
simulator is ~1000x slower than a GPU); speed on a real GPU is the benchmark's job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sim_result() -> dict:
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.gpu.cudasim_check"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_auto_picks_cuda_when_available(sim_result: dict) -> None:
    assert sim_result["backend"] == "cuda"


@pytest.mark.parametrize("mode", ["exact", "grid", "grid_kept"])
def test_cuda_matches_cpu_after_several_steps(sim_result: dict, mode: str) -> None:
    r = sim_result[mode]
    assert r["scale"] > 1.0  # a real layout, not all zeros
    assert r["coincident_force"] > 0.0  # the three nodes on one point were pushed apart
    assert r["nodes"] == 128 and r["capacity"] >= 128  # grown past the first buffers
    assert r["force"] < 1e-5, r
    assert r["pos"] < 1e-5 * r["scale"], r
    assert r["vel"] < 1e-5 * r["scale"], r
    assert r["ke_rel"] < 1e-5, r


def test_cuda_grid_matches_exact_within_cutoff(sim_result: dict) -> None:
    assert sim_result["grid_vs_exact"] < 1e-4


def test_cuda_error_names_the_kernel(sim_result: dict) -> None:
    assert "k_out_of_bounds" in sim_result["error"]


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_held_nodes_stay_put_and_a_halt_zeroes_velocities(sim_result: dict, backend: str) -> None:
    """Rest and local wake (issue 20) on both backends: with a node's 1-hop neighbourhood awake
    and the rest held, only that neighbourhood moves; a halt leaves every velocity 0."""
    r = sim_result[f"hold_{backend}"]
    assert r["asleep_moved"] == 0 and r["awake_moved"] >= 2 and r["awake"] < 48
    assert r["halted_v"] == 0.0


def test_cuda_holds_like_the_cpu(sim_result: dict) -> None:
    assert sim_result["hold_pos"] < 1e-4


def test_a_placed_graph_steps_the_same_on_both_backends(sim_result: dict) -> None:
    r = sim_result["placed"]
    assert r["pos"] < 1e-5 * r["scale"], r
