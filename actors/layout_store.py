"""The layout's durable state: the knowledge graph, every node's last position and the pins,
kept in ``<state_dir>/layout/`` and read back at start.

Found by an outside probe: the knowledge graph was lost on every restart, even a clean one.
Two files, each written whole under a temporary name, flushed to disk and renamed over the old
one, so a crash leaves the old file or the new one, never half of either:

- ``graph.npz``: the knowledge graph (ids, labels as UTF-8 bytes and offsets, edges), written
  when it changes;
- ``positions.npz``: wire ids, float32 positions and the pins, written every
  ``save_interval_s`` and when the layout's incarnation ends (however it ends).

NumPy's ``.npz`` read with ``allow_pickle=False``: a file holds arrays and nothing that runs.
A file that cannot be read (truncated, foreign, tampered) is reported, renamed to
``<name>.corrupt-<unix time>`` and ignored; the daemon starts without it. Agents' positions are
saved with the rest (an agent back from telemetry takes up where it was); their nodes and edges
are not: telemetry brings them.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from actors.graph import Graph, NodeKind

__all__ = ["FORMAT", "LayoutSaver", "LayoutStore", "SavedLayout", "saved_from_bytes"]

log = structlog.get_logger("actors.layout_store")

FORMAT = 1
GRAPH_FILE = "graph.npz"
POSITIONS_FILE = "positions.npz"


@dataclass(frozen=True)
class SavedLayout:
    graph: Graph | None
    wire_ids: np.ndarray  # int64
    positions: np.ndarray  # (n, 3) float32
    pins: dict[int, tuple[float, float, float]]


class LayoutStore:
    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    # -- writing ---------------------------------------------------------------------------

    def save_graph(self, graph: Graph) -> None:
        encoded = [label.encode("utf-8", "surrogatepass") for label in graph.labels]
        offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        self._write(GRAPH_FILE, format=np.array(FORMAT, dtype=np.int64), ids=graph.ids,
                    labels=np.frombuffer(b"".join(encoded), dtype=np.uint8), label_offsets=offsets,
                    sources=graph.sources, targets=graph.targets, weights=graph.weights)

    def save_positions(self, wire_ids: np.ndarray, positions: np.ndarray,
                       pins: dict[int, tuple[float, float, float]]) -> None:
        pin_ids = np.fromiter(pins.keys(), dtype=np.int64, count=len(pins))
        pin_pos = np.array(list(pins.values()), dtype=np.float32).reshape(-1, 3)
        self._write(POSITIONS_FILE, format=np.array(FORMAT, dtype=np.int64), wire_ids=wire_ids.astype(np.int64),
                    positions=positions.astype(np.float32).reshape(-1, 3), pin_ids=pin_ids,
                    pin_positions=pin_pos)

    def _write(self, name: str, **arrays: np.ndarray) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / name
        # a name of its own per write: two writers (a stuck incarnation's last save and the next
        # one's first) never write into each other's file
        fd, partial = tempfile.mkstemp(prefix=f".{name}.", suffix=".partial", dir=self.folder)
        try:
            with open(fd, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]  # the stubs mistake a name for allow_pickle
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial)
            raise
        directory = os.open(self.folder, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)

    # -- reading ---------------------------------------------------------------------------

    def load(self) -> SavedLayout:
        graph = self._read(GRAPH_FILE, _graph_from)
        positions = self._read(POSITIONS_FILE, _positions_from)
        wire_ids, pos, pins = positions if positions is not None else (
            np.zeros(0, np.int64), np.zeros((0, 3), np.float32), {})
        return SavedLayout(graph, wire_ids, pos, pins)

    def _read(self, name: str, parse: Any) -> Any:
        path = self.folder / name
        if not path.exists():
            return None
        try:
            return _parsed(path, parse)
        except UNREADABLE as exc:
            aside = path.with_name(f"{name}.corrupt-{int(time.time())}")
            try:
                os.replace(path, aside)
            except OSError:
                aside = path
            log.warning("layout.state_unreadable", file=str(path), set_aside=str(aside),
                        error=f"{type(exc).__name__}: {str(exc)[:200]}",
                        hint="the daemon starts without it; the file is kept for a look")
            return None


# What reading a file that is not ours raises (MemoryError: a tampered header claiming huge arrays)
UNREADABLE = (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError, MemoryError)


def _parsed(source: Any, parse: Any) -> Any:
    with np.load(source, allow_pickle=False) as data:
        if int(data["format"]) != FORMAT:
            raise ValueError(f"format {int(data['format'])}, this daemon reads {FORMAT}")
        return parse(data)


def saved_from_bytes(graph: bytes | None, positions: bytes | None) -> SavedLayout:
    """The two files' contents received from elsewhere (the cluster's shared state, written
    by the leader before): read exactly as from disk. One that cannot be read is left out,
    and said."""
    parsed: list[Any] = []
    for name, raw, parse in ((GRAPH_FILE, graph, _graph_from), (POSITIONS_FILE, positions, _positions_from)):
        value = None
        if raw is not None:
            try:
                value = _parsed(io.BytesIO(raw), parse)
            except UNREADABLE as exc:
                log.warning("layout.state_unreadable", file=name, source="cluster",
                            error=f"{type(exc).__name__}: {str(exc)[:200]}")
        parsed.append(value)
    wire_ids, pos, pins = parsed[1] if parsed[1] is not None else (
        np.zeros(0, np.int64), np.zeros((0, 3), np.float32), {})
    return SavedLayout(parsed[0], wire_ids, pos, pins)


def _graph_from(data: Any) -> Graph:
    raw = data["labels"].tobytes()
    offsets = data["label_offsets"]
    if len(offsets) != len(data["ids"]) + 1 or int(offsets[-1]) != len(raw):
        raise ValueError("labels do not match the nodes")
    bounds = offsets.tolist()
    labels = [raw[a:b].decode("utf-8", "surrogatepass") for a, b in itertools.pairwise(bounds)]
    return Graph.from_columns(NodeKind.KNOWLEDGE, data["ids"], labels, data["sources"], data["targets"],
                              data["weights"])  # checked again: a file is input like any other


def _positions_from(data: Any) -> tuple[np.ndarray, np.ndarray, dict[int, tuple[float, float, float]]]:
    wire_ids, positions = data["wire_ids"].astype(np.int64), data["positions"].astype(np.float32)
    pin_ids, pin_pos = data["pin_ids"].astype(np.int64), data["pin_positions"].astype(np.float32)
    if positions.shape != (len(wire_ids), 3) or pin_pos.shape != (len(pin_ids), 3):
        raise ValueError("positions do not match the ids")
    pins = {int(i): (float(p[0]), float(p[1]), float(p[2]))
            for i, p in zip(pin_ids.tolist(), pin_pos.tolist(), strict=True) if np.all(np.isfinite(p))}
    return wire_ids, positions, pins


class LayoutSaver:
    """Writes for the layout actor on a thread of its own, so that a step is never held up by
    the disk: one write at a time, the newest graph wins over one still waiting, and positions
    are skipped while the last ones are still being written. A failed write is logged; the
    layout goes on (the next write may succeed)."""

    def __init__(self, store: LayoutStore, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.interval_s = interval_s
        self._clock = clock
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="layout-save")
        self._pool.submit(lambda: None)  # its thread now, not at the first save: steady counts
        self._lock = threading.Lock()
        self._graph: Graph | None = None  # waiting to be written
        self._positions_busy = False
        self._last_positions = clock()
        self.saves = 0
        self.failures = 0

    def graph(self, graph: Graph) -> None:
        with self._lock:
            waiting, self._graph = self._graph is not None, graph
        if not waiting:
            self._pool.submit(self._write_graph)

    def positions_due(self) -> bool:
        return not self._positions_busy and self._clock() - self._last_positions >= self.interval_s

    def positions(self, wire_ids: np.ndarray, positions: np.ndarray,
                  pins: dict[int, tuple[float, float, float]]) -> None:
        if self._positions_busy:
            return
        self._positions_busy = True
        self._last_positions = self._clock()
        self._pool.submit(self._write_positions, wire_ids.copy(), positions.copy(), dict(pins))

    def close(self, final: tuple[np.ndarray, np.ndarray, dict[int, tuple[float, float, float]]] | None) -> None:
        """Finish what is queued, then write ``final`` positions (the incarnation's last)."""
        self._pool.shutdown(wait=True)
        if final is not None:
            self._guarded("positions", lambda: self.store.save_positions(*final))

    def _write_graph(self) -> None:
        with self._lock:
            graph, self._graph = self._graph, None
        if graph is not None:
            self._guarded("graph", lambda: self.store.save_graph(graph))

    def _write_positions(self, wire_ids: np.ndarray, positions: np.ndarray,
                         pins: dict[int, tuple[float, float, float]]) -> None:
        try:
            self._guarded("positions", lambda: self.store.save_positions(wire_ids, positions, pins))
        finally:
            self._positions_busy = False

    def _guarded(self, what: str, write: Callable[[], None]) -> None:
        started = time.perf_counter()
        try:
            write()
        except Exception as exc:  # noqa: BLE001 - a full disk, a folder gone: said, never fatal
            self.failures += 1
            log.warning("layout.save_failed", what=what, folder=str(self.store.folder), error=str(exc)[:200])
            return
        self.saves += 1
        log.debug("layout.saved", what=what, took_ms=round((time.perf_counter() - started) * 1e3, 1))

    def describe(self) -> dict[str, Any]:
        return {"folder": str(self.store.folder), "saves": self.saves, "failures": self.failures,
                "interval_s": self.interval_s}
