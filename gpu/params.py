"""Simulation parameters: one frozen dataclass, validated once, shared by every backend.

Frozen so that a parameter set handed to the engine cannot change under a running step; the
engine copies the scalars it needs into its kernels at each call. Defaults are those of the
original CUDA kernel (see docs/gpu.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

__all__ = ["GRID_THRESHOLD_N", "PARALLEL_THRESHOLD_N", "SimParams", "iteration_at", "schedule"]


# Below this node count the exact all-pairs repulsion is used; at or above it, the cell-list
# grid with a far-field term. Measured by `python -m bench layout` on the 2-core dev machine
# (CPU backend, float32 SoA, random graphs of average degree 4, ms/step exact vs grid):
# N=1,000 0.42 vs 0.62; N=3,000 1.58 vs 1.21; N=5,000 4.18 vs 2.08; N=10,000 16.6 vs 3.8.
# The curves cross between 2,000 and 3,000.
GRID_THRESHOLD_N: int = 3_000

# Below this node count the CPU backend runs on one thread (thread wake-up can cost more than
# the work). Measured on the 2-core dev machine with the omp layer, exact step, one step per
# call: N=100 0.023 ms on 1 thread vs 0.017 ms on 2; N=1,000 0.41 vs 0.22 ms; and with 20
# steps per call 2 threads win from N=500 up. So no size gains from one thread here: 0 turns
# the rule off; raise it on a machine where the pool's wake-up is slower.
PARALLEL_THRESHOLD_N: int = 0


@dataclass(frozen=True, slots=True)
class SimParams:
    """Force-model constants. Every field is checked in ``__post_init__``.

    Distances are in layout units (the renderer's world units); ``dt`` is the integration step.
    """

    dt: float = 0.2
    repel_k: float = 500.0
    spring_k: float = 0.01
    rest_length: float = 10.0
    center_gravity_k: float = 0.05
    damping: float = 0.85
    max_velocity: float = 50.0
    max_force: float = 15.0
    min_distance: float = 0.15
    repulsion_cutoff: float = 50.0
    grid_cell_size: float = 50.0
    # Half-extent of the cube positions are clamped to (the viewport's boundary limit).
    bounds: float = 5_000.0
    warmup_iterations: int = 200
    # During warm-up the velocity is multiplied by damping * (1 - warmup_extra_damping * (1 - ramp)).
    warmup_extra_damping: float = 0.5
    # After warm-up the velocity limit is max_velocity * temperature, where the temperature
    # falls by cooling_rate per step from 1 down to min_temperature. It may reach 0: the layout
    # comes to rest, and a change reheats it (LayoutEngine.reheat, a new graph's warm-up). A
    # floor of 0.1 kept every node jittering forever (a still 500-node graph never rested);
    # at 0.995 a 500-node graph rests in about 20 s, and the stress after 1,000 steps is the
    # same as at 0.999 (0.1498 on the bench's random 1,000-node graph, both).
    cooling_rate: float = 0.995
    min_temperature: float = 0.0
    # Exact all-pairs repulsion below this N, grid (cutoff + far field) at or above it.
    grid_threshold: int = GRID_THRESHOLD_N
    # Coarse far-field cells per axis (cell centres of mass push apart distant clusters).
    far_field_resolution: int = 6
    # The grid (cell sort and far field) is kept across steps until the nodes may have moved
    # this fraction of a cell since it was built: the bound is the sum of the steps' velocity
    # limits times dt (no node moves faster), so both backends rebuild on the same steps, and
    # a drag or a graph change rebuilds at once. Between builds only the sorted positions are
    # refreshed. The near and far fields still split every pair exactly once (a node counts
    # in the cell it was sorted into); what goes stale is where the far field is evaluated and
    # the coarse centres of mass, by at most this fraction of a cell. 0 rebuilds every step.
    # At 100,000 nodes from spawn: 11.0 ms a step at 0, 6.6-7.1 at 0.5, 6.2 at 1 (a build
    # every 6th step while warming up), with the same stress after 600 steps (docs/gpu.md).
    grid_skin: float = 1.0
    # Initial positions of new ids lie in a ball of radius spawn_radius * cbrt(node count): near
    # the equilibrium size, where gravity g*R balances the repulsion of N nodes inside,
    # R ~ (repel_k * N / center_gravity_k)**(1/3) = 21.5 * cbrt(N) with the defaults; spawning
    # denser (10 * cbrt(N)) made the first grid steps 2x slower for nothing.
    spawn_radius: float = 20.0
    # A graph whose nodes are mostly new is placed by stress descent (gpu.stress) up to this
    # many nodes (0: never), scaled to where the forces balance, and its live steps start at
    # placed_temperature instead of a warm-up: cool enough to keep the placement's shape (a
    # 2,000-node grid keeps 0.40x sfdp's stress), warm enough to settle what the force model
    # wants locally. Up to 2,048 nodes every pair is a term (0.3 s); above, the multilevel
    # path: at 20,000 nodes 6-10 s on the 2-core dev machine (the layout actor is busy that
    # long) for 0.45x sfdp's stress on a grid, 0.8x on a tree and on Barabasi-Albert, 0.95x
    # on a random graph. Above 20,000 nodes only a long graph (a grid, a mesh) is placed, as
    # the spawn ball serves a short one better (gpu.stress.worth_placing): a 316x316 grid in
    # about 3 s at half sfdp's stress. Bigger graphs start from spawn positions and a warm-up.
    place_max_nodes: int = 100_000
    placed_temperature: float = 0.03

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"SimParams.{f.name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"SimParams.{f.name} must be finite, got {value!r}")
        positive = (
            "dt", "max_velocity", "max_force", "min_distance", "repulsion_cutoff",
            "grid_cell_size", "bounds", "rest_length", "spawn_radius",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"SimParams.{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = ("repel_k", "spring_k", "center_gravity_k", "warmup_iterations",
                        "place_max_nodes")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"SimParams.{name} must be >= 0, got {getattr(self, name)!r}")
        unit = ("damping", "warmup_extra_damping", "cooling_rate", "min_temperature",
                "placed_temperature", "grid_skin")
        for name in unit:
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SimParams.{name} must be in [0, 1], got {getattr(self, name)!r}")
        for name in ("warmup_iterations", "grid_threshold", "far_field_resolution",
                     "place_max_nodes"):
            if not isinstance(getattr(self, name), int):
                raise ValueError(f"SimParams.{name} must be an int, got {getattr(self, name)!r}")
        if self.grid_threshold < 1:
            raise ValueError(f"SimParams.grid_threshold must be >= 1, got {self.grid_threshold!r}")
        if not 1 <= self.far_field_resolution <= 32:
            raise ValueError(
                f"SimParams.far_field_resolution must be in [1, 32], got {self.far_field_resolution!r}"
            )
        if self.min_distance >= self.repulsion_cutoff:
            raise ValueError("SimParams.min_distance must be below repulsion_cutoff")


def schedule(
    iteration: int,
    warmup_iterations: int,
    warmup_extra_damping: float,
    damping: float,
    max_velocity: float,
    cooling_rate: float,
    min_temperature: float,
) -> tuple[float, float, float]:
    """Per-step (force ramp, damping, velocity limit) for step number ``iteration``.

    Plain Python so the CPU backend compiles it with ``njit`` and the CUDA backend calls it on
    the host: both backends then follow exactly the same warm-up and cooling curve.
    """
    if iteration < warmup_iterations:
        ramp = (iteration + 1.0) / warmup_iterations
        damp = damping * (1.0 - warmup_extra_damping * (1.0 - ramp))
        return ramp, damp, max_velocity
    temperature = cooling_rate ** (iteration - warmup_iterations)
    if temperature < min_temperature:
        temperature = min_temperature
    return 1.0, damping, max_velocity * temperature


def iteration_at(temperature: float, warmup_iterations: int, cooling_rate: float) -> int:
    """The first step after the warm-up whose temperature is at most ``temperature`` (the
    inverse of :func:`schedule`'s cooling), where a placed layout's live steps begin."""
    if temperature >= 1.0 or cooling_rate >= 1.0:
        return warmup_iterations
    if temperature <= 0.0 or cooling_rate <= 0.0:
        return warmup_iterations + 100_000  # 0.995^100,000: cold
    return warmup_iterations + math.ceil(math.log(temperature) / math.log(cooling_rate))
