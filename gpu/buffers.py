"""Capacity-managed NumPy buffers: allocated once, grown by doubling, never per step.

A step must not allocate (allocation and page faults cost more than the force sum at small
N, and make the step time jumpy). Buffers are sized to a capacity at least the node count,
and when the graph outgrows it the capacity doubles, so a graph that grows one node at a time
costs O(log N) reallocations in all.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_CAPACITY", "BufferSet", "cell_budget", "grown_capacity"]


MIN_CAPACITY = 64


def cell_budget(capacity: int) -> int:
    """Most grid cells for a node capacity (the cell grows past that: bounded memory).

    One cell per node slot, less one so that the cells' start offsets (cells + 1 of them) fit
    a buffer of the node capacity. Both backends take it from here: the same budget gives the
    same grid, hence the same far field, on the CPU and the GPU.
    """
    return capacity - 1


def grown_capacity(current: int, needed: int) -> int:
    """Smallest ``current * 2**k`` (at least MIN_CAPACITY) that holds ``needed`` items."""
    cap = max(current, MIN_CAPACITY)
    while cap < needed:
        cap *= 2
    return cap


class BufferSet:
    """Named 1-D arrays whose length is a capacity, with doubling growth that keeps contents."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def ensure(self, name: str, needed: int, dtype: type) -> np.ndarray:
        """Return buffer ``name`` holding at least ``needed`` items, growing it by doubling.

        Existing contents are copied into the grown buffer (survivors keep their state).
        """
        arr = self._arrays.get(name)
        if arr is not None and arr.shape[0] >= needed and arr.dtype == dtype:
            return arr
        cap = grown_capacity(0 if arr is None else arr.shape[0], needed)
        new: np.ndarray = np.zeros(cap, dtype=dtype)
        if arr is not None and arr.dtype == dtype:
            new[: arr.shape[0]] = arr
        self._arrays[name] = new
        return new

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def nbytes(self) -> int:
        """Bytes held by every buffer (for the memory-per-node figure of the benchmark)."""
        return sum(a.nbytes for a in self._arrays.values())
