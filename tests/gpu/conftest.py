"""Shared graph builders for the gpu tests (small graphs: the whole folder runs in seconds)."""

from __future__ import annotations

import numpy as np
import pytest


def random_graph(n: int, degree: float = 4.0, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Ids (not 0..n-1, to catch id/index mix-ups) and ~n*degree/2 random edges."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) * 3 + 100
    m = int(n * degree / 2)
    return ids, ids[rng.integers(0, n, m)], ids[rng.integers(0, n, m)]


@pytest.fixture
def graph64() -> tuple[np.ndarray, ...]:
    return random_graph(64)
