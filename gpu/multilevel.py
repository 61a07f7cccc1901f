"""Multilevel placement's graph side: coarsen a graph level by level, and prolong positions back.

A force layout started from random positions untangles a structured graph slowly: a grid
folds, a tree's branches cross, and the fine steps spend thousands of iterations moving whole
regions one edge length at a time (a 45x45 grid was 19x graphviz sfdp's stress after 480
steps). Coarsening fixes the global shape first, where it is cheap: each level merges
matched pairs (and the leaves left over into their neighbour, which a matching alone cannot
shrink: a star loses one leaf per level), the coarsest graph is laid out whole, and each finer
level starts from its parent's position and only refines locally (Walshaw 2003; Hu 2005,
sfdp's scheme). ``gpu.stress`` does the laying out and refining.

Only the graph side is here: CSR in, CSR out, plain numpy plus one compiled matching loop,
on the host for either backend (the coarsening is a few linear passes; the steps dominate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["Level", "coarsen", "csr", "prolong"]

# A level that keeps more than this share of its nodes ends the hierarchy (the graph no longer
# shrinks, for example a clique): more levels would cost steps for nothing.
MIN_SHRINK = 0.8
# Levels at most (a matching at least nearly halves a level, so 30 covers any size).
MAX_LEVELS = 30


@dataclass(frozen=True, slots=True)
class Level:
    """One coarser graph: ``n`` nodes, edges ``src``/``dst`` (each once, no self-loops), and
    ``parent[i]``: the node of this level that node ``i`` of the finer level merged into."""

    n: int
    src: np.ndarray
    dst: np.ndarray
    parent: np.ndarray


@njit(cache=True, nogil=True)
def _match(n: int, offsets: np.ndarray, columns: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Cluster id per node: matched pairs (each node, in ``order``, takes its unmatched
    neighbour of lowest degree: hubs are left for the leaves to join), then every node still
    alone with one neighbour joins that neighbour's cluster. Clusters are numbered densely."""
    mate = np.full(n, -1, dtype=np.int64)
    for k in range(n):
        u = order[k]
        if mate[u] >= 0:
            continue
        best = -1
        best_degree = 1 << 62
        for e in range(offsets[u], offsets[u + 1]):
            v = columns[e]
            if v != u and mate[v] < 0:
                degree = offsets[v + 1] - offsets[v]
                if degree < best_degree:
                    best = v
                    best_degree = degree
        if best >= 0:
            mate[u] = best
            mate[best] = u
    cluster = np.full(n, -1, dtype=np.int64)
    count = 0
    for u in range(n):
        if cluster[u] >= 0:
            continue
        cluster[u] = count
        if mate[u] >= 0:
            cluster[mate[u]] = count
        count += 1
    # Leaves left alone (their neighbour matched another) join that neighbour's cluster.
    for u in range(n):
        if mate[u] < 0 and offsets[u + 1] - offsets[u] == 1:
            v = columns[offsets[u]]
            if v != u:
                cluster[u] = cluster[v]
    # Isolated nodes (a random graph's 2 %, and every small component once it has collapsed
    # to one node) have nothing to match: left alone they stall the hierarchy (a 100,000-node
    # random graph stopped at 2,862 nodes, most of them isolated). They all join one cluster;
    # where they end up is the packing's business (``gpu.stress._pack``), not the terms'.
    first = -1
    for u in range(n):
        if offsets[u + 1] == offsets[u]:
            if first < 0:
                first = u
            else:
                cluster[u] = cluster[first]
    # Renumber densely, dropping the clusters emptied by the leaves and the isolated nodes.
    new_id = np.full(count, -1, dtype=np.int64)
    used = np.zeros(count, dtype=np.bool_)
    for u in range(n):
        used[cluster[u]] = True
    m = 0
    for c in range(count):
        if used[c]:
            new_id[c] = m
            m += 1
    for u in range(n):
        cluster[u] = new_id[cluster[u]]
    return cluster


def csr(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int64 CSR (offsets, columns) of an undirected graph, self-loops left out:
    the adjacency the coarsening and the stress placement walk."""
    keep = src != dst
    rows = np.concatenate([src[keep], dst[keep]])
    cols = np.concatenate([dst[keep], src[keep]])
    order = np.argsort(rows, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=offsets[1:])
    return offsets, cols[order].astype(np.int64)


def _simple(n: int, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each undirected edge once, without self-loops."""
    lo = np.minimum(src, dst)
    hi = np.maximum(src, dst)
    keep = lo != hi
    key = np.unique(lo[keep] * np.int64(n) + hi[keep])
    return key // n, key % n


def coarsen(n: int, src: np.ndarray, dst: np.ndarray, coarsest: int, seed: int = 0) -> list[Level]:
    """The hierarchy above a graph of ``n`` nodes, finest first, until a level has at most
    ``coarsest`` nodes (empty when the graph is that small already, or does not shrink).
    Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    s, d = _simple(n, np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64))
    levels: list[Level] = []
    while n > coarsest and len(levels) < MAX_LEVELS:
        offsets, columns = csr(n, s, d)
        # Lowest degree first, ties at random: leaves and chains match before hubs take them.
        degree = np.diff(offsets)
        order = np.lexsort((rng.random(n), degree)).astype(np.int64)
        parent = _match(n, offsets, columns, order)
        m = int(parent.max()) + 1 if n else 0
        if m > MIN_SHRINK * n:
            break
        s, d = _simple(m, parent[s], parent[d])
        levels.append(Level(m, s, d, parent))
        n = m
    return levels


def prolong(coarse: np.ndarray, parent: np.ndarray, scale: float, spread: float,
            rng: np.random.Generator) -> np.ndarray:
    """Fine positions from the coarse ones: each node at its cluster's position times
    ``scale`` (a finer level needs more room), plus a random offset of up to ``spread`` so
    the members of a cluster have a direction to separate along."""
    fine = coarse[parent] * np.float32(scale)
    jitter = rng.uniform(-spread, spread, size=fine.shape).astype(np.float32)
    return (fine + jitter).astype(np.float32)
