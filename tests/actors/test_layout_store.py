"""The layout's saved state: written whole or not at all, read back exactly, and a file that
cannot be read set aside without stopping anything."""

from __future__ import annotations

import errno
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from actors import layout_store
from actors.graph import Graph, NodeKind
from actors.layout_store import LayoutSaver, LayoutStore


def graph(n: int = 50) -> Graph:
    ids = np.arange(n) * 3
    labels = [f"n{i} — naïve 🐝" if i % 7 else "" for i in range(n)]
    return Graph.from_columns(NodeKind.KNOWLEDGE, ids, labels, ids[:-1], ids[1:], np.linspace(0.5, 2, n - 1))


def test_graph_positions_and_pins_round_trip(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "layout")
    assert store.load().graph is None  # nothing saved yet: a fresh start, not an error
    g = graph()
    store.save_graph(g)
    wire = np.array([1 << 30 | 0, 1 << 30 | 3, 1 << 31 | 9], dtype=np.int64)
    pos = np.arange(9, dtype=np.float32).reshape(3, 3)
    store.save_positions(wire, pos, {int(wire[1]): (1.0, 2.0, 3.0)})
    saved = store.load()
    assert saved.graph == g and saved.graph.labels[1] == "n1 — naïve 🐝"
    assert np.array_equal(saved.wire_ids, wire) and np.array_equal(saved.positions, pos)
    assert saved.pins == {int(wire[1]): (1.0, 2.0, 3.0)}
    assert sorted(p.name for p in (tmp_path / "layout").iterdir()) == ["graph.npz", "positions.npz"]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "pickled", "bad labels", "foreign format",
                                    "edge to nowhere"])
def test_a_file_that_cannot_be_read_is_set_aside_and_the_rest_still_loads(tmp_path: Path, damage: str) -> None:
    store = LayoutStore(tmp_path)
    store.save_graph(graph())
    store.save_positions(np.array([5], dtype=np.int64), np.zeros((1, 3), np.float32), {})
    path = tmp_path / "graph.npz"
    good = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        path.write_bytes(b"\x00not a zip at all" * 10)
    else:
        with np.load(io.BytesIO(good)) as data:
            arrays = dict(data)
        if damage == "pickled":  # an object array would run code when unpickled: never read
            arrays["labels"] = np.array([object()], dtype=object)
        elif damage == "bad labels":
            arrays["label_offsets"] = arrays["label_offsets"][:-5]
        elif damage == "foreign format":
            arrays["format"] = np.array(99)
        else:
            arrays["targets"] = arrays["targets"] + 10_000
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    saved = store.load()
    assert saved.graph is None and len(saved.wire_ids) == 1
    aside = [p.name for p in tmp_path.iterdir() if p.name.startswith("graph.npz.corrupt-")]
    assert len(aside) == 1 and not path.exists()
    assert zipfile.is_zipfile(tmp_path / aside[0]) or damage in ("truncated", "garbage")


def test_a_write_that_fails_leaves_the_last_good_file_and_is_not_fatal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LayoutStore(tmp_path)
    store.save_graph(graph(10))

    def disk_full(file: Any, **_arrays: Any) -> None:  # simulated: half written, then ENOSPC
        file.write(b"PK\x03\x04 half a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layout_store.np, "savez", disk_full)
    saver = LayoutSaver(store, interval_s=1.0)
    saver.graph(graph(20))
    saver.close(None)
    monkeypatch.undo()
    assert saver.failures == 1 and store.load().graph == graph(10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["graph.npz"]  # no partial file left


def test_the_files_contents_from_elsewhere_read_as_from_disk(tmp_path: Path) -> None:
    """A cluster's new leader gets the two files' bytes from NATS: read exactly as from disk,
    and bytes that are no such file are left out (said), never raised."""
    store = LayoutStore(tmp_path / "layout")
    g = graph()
    store.save_graph(g)
    wire = np.array([1 << 30 | 0, 1 << 30 | 3], dtype=np.int64)
    store.save_positions(wire, np.ones((2, 3), np.float32), {int(wire[0]): (4.0, 5.0, 6.0)})
    raw = {name: (tmp_path / "layout" / name).read_bytes() for name in ("graph.npz", "positions.npz")}
    saved = layout_store.saved_from_bytes(raw["graph.npz"], raw["positions.npz"])
    assert saved.graph == g and np.array_equal(saved.wire_ids, wire)
    assert saved.pins == {int(wire[0]): (4.0, 5.0, 6.0)}
    broken = layout_store.saved_from_bytes(b"not a zip", raw["positions.npz"][:100])
    assert broken.graph is None and len(broken.wire_ids) == 0 and broken.pins == {}
    assert layout_store.saved_from_bytes(None, None).graph is None
