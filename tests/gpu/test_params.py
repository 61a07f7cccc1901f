"""SimParams: the original kernel's defaults, and validation that names the bad field."""

from __future__ import annotations

import dataclasses
import math

import pytest

from gpu import GRID_THRESHOLD_N, SimParams


def test_defaults_match_original_kernel() -> None:
    p = SimParams()
    assert (p.dt, p.repel_k, p.damping, p.max_velocity, p.max_force) == (0.2, 500, 0.85, 50, 15)
    assert (p.spring_k, p.center_gravity_k, p.rest_length) == (0.01, 0.05, 10)
    assert (p.repulsion_cutoff, p.min_distance, p.warmup_iterations) == (50, 0.15, 200)
    assert p.grid_threshold == GRID_THRESHOLD_N


def test_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SimParams().dt = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dt", -0.1),
        ("dt", math.nan),
        ("repel_k", math.inf),
        ("damping", 1.5),
        ("max_velocity", 0.0),
        ("min_distance", -1.0),
        ("warmup_iterations", 2.5),
        ("far_field_resolution", 0),
        ("bounds", "big"),
    ],
)
def test_invalid_field_is_value_error_naming_it(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SimParams(**{field: value})  # type: ignore[arg-type]


def test_replace_revalidates() -> None:
    with pytest.raises(ValueError, match="dt"):
        dataclasses.replace(SimParams(), dt=-1.0)
