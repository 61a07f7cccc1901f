"""The graph families a layout is judged on, and the reference layouts it is judged against.

Shared by ``bench_layout`` and the quality tests (one definition of each family and of how
igraph and sfdp are run). Graphs are ``(n, src, dst)`` with node indices 0..n-1.

- grid (a square lattice), tree (a complete binary tree), Barabasi-Albert (m = 2), random
  (G(n, m) with average degree 4);
- networkx's bundled real graphs (Zachary's karate club, Les Miserables, the Florentine
  families, Davis's southern women): small, but drawn by people, so their structure is not
  a generator's.

igraph's Fruchterman-Reingold 3D (its defaults: 500 iterations) and graphviz sfdp in 3D
(``-Gdimen=3``, Debian's ``graphviz``, installed by ``scripts/install-graphviz.sh``).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["FAMILIES", "Graph", "family", "igraph_fr", "real_graphs", "sfdp", "sfdp_missing"]

Graph = tuple[int, np.ndarray, np.ndarray]


def _from_networkx(g: Any) -> Graph:
    import networkx as nx

    g = nx.convert_node_labels_to_integers(g)
    edges = np.array(list(g.edges()), dtype=np.int64).reshape(-1, 2)
    return g.number_of_nodes(), edges[:, 0].copy(), edges[:, 1].copy()


def _grid(n: int) -> Graph:
    import networkx as nx

    side = max(2, round(math.sqrt(n)))
    return _from_networkx(nx.grid_2d_graph(side, side))


def _tree(n: int) -> Graph:
    import networkx as nx

    # the complete tree nearest n nodes (2^(depth+1) - 1 of them): 2,047 for 2,000 and
    # 16,383 for 20,000 (int(log2(n)) as the depth gave 32,767 for "about 20,000")
    return _from_networkx(nx.balanced_tree(2, max(1, round(math.log2(n + 1)) - 1)))


def _barabasi_albert(n: int) -> Graph:
    import networkx as nx

    return _from_networkx(nx.barabasi_albert_graph(n, 2, seed=1))


def _random(n: int) -> Graph:
    import networkx as nx

    return _from_networkx(nx.gnm_random_graph(n, 2 * n, seed=1))


FAMILIES: dict[str, Callable[[int], Graph]] = {
    "grid": _grid, "tree": _tree, "barabasi-albert": _barabasi_albert, "random": _random,
}


def family(name: str, n: int) -> Graph:
    """The family's graph of about ``n`` nodes (a grid rounds to a square, a tree to 2^k - 1)."""
    return FAMILIES[name](n)


def real_graphs() -> dict[str, Graph]:
    import networkx as nx

    return {
        "karate club": _from_networkx(nx.karate_club_graph()),
        "les miserables": _from_networkx(nx.les_miserables_graph()),
        "florentine families": _from_networkx(nx.florentine_families_graph()),
        "southern women": _from_networkx(nx.davis_southern_women_graph()),
    }


def igraph_fr(graph: Graph) -> tuple[np.ndarray, float]:
    """igraph's Fruchterman-Reingold 3D: (positions, seconds)."""
    import igraph as ig

    n, src, dst = graph
    g = ig.Graph(n=n, edges=np.stack([src, dst], 1).tolist())
    started = time.perf_counter()
    coords = np.array(g.layout_fruchterman_reingold_3d().coords, dtype=np.float64)
    return coords, time.perf_counter() - started


def sfdp_missing() -> str | None:
    """Why sfdp cannot run here, or None."""
    if shutil.which("sfdp") is None:
        return "graphviz's sfdp is not installed (scripts/install-graphviz.sh)"
    return None


def sfdp(graph: Graph) -> tuple[np.ndarray, float]:
    """graphviz sfdp in 3D: (positions, seconds, the process's whole run)."""
    n, src, dst = graph
    text = "graph G {\n" + "".join(f"{i};\n" for i in range(n)) + "".join(
        f"{a} -- {b};\n" for a, b in zip(src.tolist(), dst.tolist(), strict=True)) + "}\n"
    started = time.perf_counter()
    out = subprocess.run(["sfdp", "-Gdimen=3", "-Tdot"], input=text, capture_output=True,
                         text=True, check=True, timeout=600).stdout
    seconds = time.perf_counter() - started
    pos = np.zeros((n, 3), dtype=np.float64)
    for m in re.finditer(r'^\s*(\d+)\s*\[[^\]]*?pos="([^"]+)"', out, re.M):
        pos[int(m.group(1))] = [float(v) for v in m.group(2).rstrip("!").split(",")[:3]]
    return pos, seconds
