"""The layout actor in a real tree: graph updates, pinning, subscriptions, deadband frames,
and a crash that keeps the graph and the positions."""

from __future__ import annotations

import queue
import time
from typing import Any

import numpy as np
import pytest

from actors.gpu_layout import LayoutActor, LayoutSettings
from actors.graph import AGENT_FLAG, KNOWLEDGE_FLAG, Graph, GraphEdge, GraphNode, NodeKind
from actors.messages import (
    GetGraph,
    GetSnapshot,
    PinNodes,
    PositionFrame,
    SetGraph,
    StatusQuery,
    Step,
    Subscribe,
    Unsubscribe,
    UpdateGraph,
)
from supervisor import SupervisionTree, SupervisorSpec, WorkerSpec


@pytest.fixture
def tree() -> Any:
    # a slow tick so that tests drive steps themselves
    settings = LayoutSettings(tick_hz=2.0, min_tick_hz=1.0, backend="cpu")
    spec = WorkerSpec("layout", LayoutActor, args=(settings,), start_timeout=300)
    t = SupervisionTree(SupervisorSpec("root", (spec,), max_restarts=10))
    t.start()
    yield t
    t.stop(5)


def ring(kind: NodeKind, n: int, offset: int = 0) -> Graph:
    nodes = [GraphNode(offset + i, f"n{i}") for i in range(n)]
    edges = [GraphEdge(offset + i, offset + (i + 1) % n) for i in range(n)]
    return Graph.build(kind, nodes, edges)


def test_graph_updates_keep_known_positions(tree: SupervisionTree) -> None:
    layout = tree.address("root/layout")
    assert layout.ask(SetGraph(ring(NodeKind.KNOWLEDGE, 10))) == {"nodes": 10, "edges": 10}
    layout.ask(Step(20))
    before = layout.ask(GetSnapshot())
    layout.ask(SetGraph(ring(NodeKind.AGENT, 3)))  # another kind joins; the first is untouched
    after = layout.ask(GetSnapshot())
    assert len(after) == 13
    b = dict(zip(before.wire_ids.tolist(), before.positions.tolist(), strict=True))
    a = dict(zip(after.wire_ids.tolist(), after.positions.tolist(), strict=True))
    for wid in b:
        assert a[wid] == pytest.approx(b[wid])
    assert {w for w in a if w & AGENT_FLAG} == {AGENT_FLAG | i for i in range(3)}
    view = layout.ask(GetGraph(NodeKind.AGENT))
    assert [n["id"] for n in view["agent"]["nodes"]] == [0, 1, 2]
    status = layout.ask(StatusQuery())
    assert status.detail["nodes"] == 13 and status.detail["backend"] == "cpu"


def test_a_graph_the_engine_refuses_keeps_the_last_good_one(tree: SupervisionTree) -> None:
    layout = tree.address("root/layout")
    layout.ask(SetGraph(ring(NodeKind.KNOWLEDGE, 4)))
    # unvalidated columns: the engine itself refuses the unknown endpoint
    broken = Graph.from_columns(NodeKind.KNOWLEDGE, [1, 2], ["", ""], [1], [99], [1.0], validate=False)
    with pytest.raises(ValueError, match="unknown node id"):
        layout.ask(SetGraph(broken))
    with pytest.raises(ValueError):  # a first graph of another kind is refused the same way
        layout.ask(SetGraph(Graph.from_columns(NodeKind.AGENT, [1], [""], [1], [7], [1.0], validate=False)))
    view = layout.ask(GetGraph())
    assert [n["id"] for n in view["knowledge"]["nodes"]] == [0, 1, 2, 3]
    assert "agent" not in view or not view["agent"]["nodes"]
    # and the actor did not crash: the next update builds on the kept graph
    assert layout.ask(UpdateGraph(NodeKind.KNOWLEDGE, add_nodes=(GraphNode(9),))) == {
        "nodes": 5, "edges": 4}
    assert tree.describe()["children"][0]["restarts"] == 0


def test_edge_weights_outside_the_springs_range_are_refused() -> None:
    for weight in (-1.0, float("nan"), float("inf"), 1e308):
        with pytest.raises(ValueError, match="edge weight"):
            GraphEdge(0, 1, weight)


def test_incremental_updates_add_and_remove(tree: SupervisionTree) -> None:
    layout = tree.address("root/layout")
    layout.ask(SetGraph(ring(NodeKind.KNOWLEDGE, 6)))
    layout.ask(Step(10))
    before = layout.ask(GetSnapshot())
    kept = {w: p for w, p in zip(before.wire_ids.tolist(), before.positions.tolist(), strict=True)
            if w != KNOWLEDGE_FLAG | 2}
    counts = layout.ask(UpdateGraph(NodeKind.KNOWLEDGE, add_nodes=(GraphNode(10, "new"),),
                                    remove_nodes=(2,), add_edges=(GraphEdge(10, 0),),
                                    remove_edges=((4, 5),)))
    assert counts == {"nodes": 6, "edges": 4}  # 6 - 1 + 1 nodes; 6 - 2 (node 2) - 1 + 1 edges
    after = layout.ask(GetSnapshot())
    positions = dict(zip(after.wire_ids.tolist(), after.positions.tolist(), strict=True))
    assert KNOWLEDGE_FLAG | 2 not in positions and KNOWLEDGE_FLAG | 10 in positions
    for wid, pos in kept.items():
        assert positions[wid] == pytest.approx(pos)
    with pytest.raises(ValueError, match="unknown node 99"):
        layout.ask(UpdateGraph(NodeKind.KNOWLEDGE, add_edges=(GraphEdge(0, 99),)))
    assert len(layout.ask(GetSnapshot())) == 6  # a bad update changes nothing


def test_pinning_holds_a_node(tree: SupervisionTree) -> None:
    layout = tree.address("root/layout")
    layout.ask(SetGraph(ring(NodeKind.KNOWLEDGE, 8)))
    wid = KNOWLEDGE_FLAG | 4
    assert layout.ask(PinNodes((wid, KNOWLEDGE_FLAG | 999), ((50.0, 60.0, 70.0), (0, 0, 0)))) == 1
    layout.ask(Step(30))
    frame = layout.ask(GetSnapshot())
    index = frame.wire_ids.tolist().index(wid)
    assert frame.positions[index].tolist() == pytest.approx([50.0, 60.0, 70.0])


def test_subscribers_get_immutable_frames_with_deltas(tree: SupervisionTree) -> None:
    layout = tree.address("root/layout")
    frames: queue.Queue[PositionFrame] = queue.Queue()
    layout.tell(Subscribe("t", frames.put))
    layout.ask(SetGraph(ring(NodeKind.KNOWLEDGE, 30)))
    layout.ask(Step(1))
    first = frames.get(timeout=5)
    assert first.full and first.moved.all() and len(first) == 30
    with pytest.raises(ValueError):
        first.positions[0, 0] = 1.0  # read-only
    for _ in range(400):  # let it settle: fewer and fewer nodes pass the deadband
        layout.ask(Step(1))
    latest = None
    while not frames.empty():
        latest = frames.get()
    assert latest is not None and not latest.full
    assert latest.seq > first.seq
    layout.tell(Unsubscribe("t"))
    layout.ask(Step(1))
    time.sleep(0.05)
    while not frames.empty():
        frames.get()
    layout.ask(Step(5))
    assert frames.empty()


def test_crash_and_restart_keeps_graph_and_positions(tree: SupervisionTree) -> None:
    layout = tree.address("root/layout")
    layout.ask(SetGraph(ring(NodeKind.KNOWLEDGE, 16)))
    layout.ask(Step(50))
    before = layout.ask(GetSnapshot())
    tree.kill("root/layout")
    assert layout.wait_running(2, timeout=10)
    after = layout.ask(GetSnapshot())
    assert after.wire_ids.tolist() == before.wire_ids.tolist()
    np.testing.assert_allclose(after.positions, before.positions, atol=1e-4)
    assert len(layout.ask(GetGraph())["knowledge"]["nodes"]) == 16


def test_ticks_publish_on_their_own() -> None:
    settings = LayoutSettings(tick_hz=50.0, min_tick_hz=5.0, backend="cpu")
    spec = WorkerSpec("layout", LayoutActor, args=(settings,), start_timeout=300)
    t = SupervisionTree(SupervisorSpec("root", (spec,)))
    t.start()
    try:
        frames: queue.Queue[PositionFrame] = queue.Queue()
        t.address("root/layout").tell(Subscribe("t", frames.put))
        t.address("root/layout").ask(SetGraph(ring(NodeKind.KNOWLEDGE, 20)))
        seqs = [frames.get(timeout=5).seq for _ in range(5)]
        assert seqs == sorted(seqs)
    finally:
        t.stop(5)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="tick"):
        LayoutSettings(tick_hz=1, min_tick_hz=5)
    with pytest.raises(ValueError, match="dt"):
        LayoutSettings(params={"dt": -1.0})


# -- rest and wake (issue 20) ------------------------------------------------------------------

FAST_REST = LayoutSettings(tick_hz=60.0, min_tick_hz=5.0, backend="cpu", rest_window_s=0.25,
                           params={"cooling_rate": 0.97, "warmup_iterations": 20})


@pytest.fixture
def resting() -> Any:
    spec = WorkerSpec("layout", LayoutActor, args=(FAST_REST,), start_timeout=300)
    t = SupervisionTree(SupervisorSpec("root", (spec,)))
    t.start()
    yield t.address("root/layout")
    t.stop(5)


def random_graph(n: int, seed: int = 3) -> Graph:
    rng = np.random.default_rng(seed)
    edges = {(i, int(rng.integers(0, i))) for i in range(1, n)}  # a random tree, then more
    edges |= {(int(a), int(b)) for a, b in rng.integers(0, n, (n // 2, 2)) if a != b}
    return Graph.build(NodeKind.KNOWLEDGE, [GraphNode(i, "") for i in range(n)],
                       [GraphEdge(a, b) for a, b in edges])


def wait_rest(layout: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = dict(layout.ask(StatusQuery()).detail)
        if detail["at_rest"]:
            return detail
        time.sleep(0.05)
    raise AssertionError(f"no rest in {timeout} s: {detail}")


def test_a_still_layout_comes_to_rest_and_then_publishes_nothing(resting: Any) -> None:
    """Found in use: a still graph jittered forever and streamed every node in every frame."""
    frames: queue.Queue[PositionFrame] = queue.Queue()
    resting.tell(Subscribe("t", frames.put))
    resting.ask(SetGraph(random_graph(300)))
    detail = wait_rest(resting)
    assert detail["moving"] == 0
    last = None
    while not frames.empty():
        last = frames.get_nowait()
    assert last is not None and not np.abs(last.velocities).any()  # the still frame: v = 0
    before = resting.ask(GetSnapshot())
    time.sleep(1.0)
    assert frames.empty()  # at rest: no frame at all
    np.testing.assert_array_equal(resting.ask(GetSnapshot()).positions, before.positions)


def test_a_drag_wakes_its_neighbourhood_and_nothing_else(resting: Any) -> None:
    graph = random_graph(400)
    resting.ask(SetGraph(graph))
    wait_rest(resting)
    before = resting.ask(GetSnapshot())
    dragged = KNOWLEDGE_FLAG | 7
    where = before.positions[before.wire_ids.tolist().index(dragged)] + 40.0
    assert resting.ask(PinNodes((dragged,), (tuple(where.tolist()),))) == 1
    assert not resting.ask(StatusQuery()).detail["at_rest"]
    wait_rest(resting)
    after = resting.ask(GetSnapshot())
    near = {7} | {e.target for e in graph.edges if e.source == 7} | {
        e.source for e in graph.edges if e.target == 7}
    hops = set(near)
    for a in near:  # two hops: wake_hops' default
        hops |= {e.target for e in graph.edges if e.source == a}
        hops |= {e.source for e in graph.edges if e.target == a}
    moved = np.linalg.norm(after.positions - before.positions, axis=1) > 1e-3
    moved_ids = {int(w) & ~KNOWLEDGE_FLAG for w in after.wire_ids[moved]}
    assert 7 in moved_ids and moved_ids <= hops  # the rest held still, exactly
    assert len(moved_ids) > 1  # its neighbours followed


def test_a_new_node_moves_almost_nothing_else(resting: Any) -> None:
    """The viewer's mental map: one new node joining a settled 2,000-node graph moves no more
    than 5 % of the others by more than 1 % of the layout's extent."""
    resting.ask(SetGraph(random_graph(2000)))
    wait_rest(resting, 60)
    before = resting.ask(GetSnapshot())
    resting.ask(UpdateGraph(NodeKind.KNOWLEDGE, add_nodes=(GraphNode(5000, "new"),),
                            add_edges=(GraphEdge(5000, 11),)))
    wait_rest(resting, 60)
    after = resting.ask(GetSnapshot())
    index = {int(w): i for i, w in enumerate(after.wire_ids.tolist())}
    now = after.positions[[index[int(w)] for w in before.wire_ids.tolist()]]
    extent = float(np.ptp(before.positions, axis=0).max())
    moved = np.linalg.norm(now - before.positions, axis=1) > 0.01 * extent
    assert moved.mean() <= 0.05, moved.mean()


def test_a_graph_sent_again_with_new_labels_wakes_nothing(resting: Any) -> None:
    """The agents' graph comes again with every telemetry poll (statuses, CPU): that must not
    wake a layout at rest, nor warm up one that is cooling."""
    graph = random_graph(200)
    resting.ask(SetGraph(graph))
    wait_rest(resting)
    frames: queue.Queue[PositionFrame] = queue.Queue()
    resting.tell(Subscribe("t", frames.put))
    relabelled = Graph.build(NodeKind.KNOWLEDGE, [GraphNode(n.id, "polled") for n in graph.nodes],
                             list(graph.edges))
    resting.ask(SetGraph(relabelled))
    assert resting.ask(StatusQuery()).detail["at_rest"]
    time.sleep(0.5)
    assert frames.empty()  # not even a full frame: nothing moved
    assert resting.ask(GetGraph())["knowledge"]["nodes"][0]["label"] == "polled"


def test_a_new_edge_weight_wakes_the_edge_ends(resting: Any) -> None:
    graph = random_graph(200)
    resting.ask(SetGraph(graph))
    wait_rest(resting)
    edges = list(graph.edges)
    edges[0] = GraphEdge(edges[0].source, edges[0].target, 5.0)
    resting.ask(SetGraph(Graph.build(NodeKind.KNOWLEDGE, list(graph.nodes), edges)))
    detail = resting.ask(StatusQuery()).detail
    assert not detail["at_rest"] and 2 <= detail["moving"] < 200


def test_nodes_that_keep_coming_while_it_settles_do_not_keep_it_from_rest(resting: Any) -> None:
    """Agents come and go while a big graph settles: each change used to reheat every moving
    node, so a layout with a change every half second never came to rest."""
    resting.ask(SetGraph(random_graph(300)))
    deadline = time.monotonic() + 30
    added = 0
    while time.monotonic() < deadline:
        resting.ask(UpdateGraph(NodeKind.KNOWLEDGE, add_nodes=(GraphNode(1000 + added, ""),),
                                add_edges=(GraphEdge(1000 + added, added % 300),)))
        added += 1
        time.sleep(0.5)
        if resting.ask(StatusQuery()).detail["at_rest"]:
            break
    assert resting.ask(StatusQuery()).detail["at_rest"], f"no rest after {added} changes"


def test_resume_takes_up_another_layouts_graph_positions_and_pins(tree: SupervisionTree) -> None:
    """A cluster's new leader: its own (older) graph and pins give way to the saved ones, and
    every node it names starts exactly where it was saved."""
    from actors.layout_store import SavedLayout
    from actors.messages import ResumeLayout

    layout = tree.address("root/layout")
    layout.ask(SetGraph(ring(NodeKind.KNOWLEDGE, 6)))
    layout.ask(PinNodes((KNOWLEDGE_FLAG | 0,), ((1.0, 1.0, 1.0),)))
    saved_graph = ring(NodeKind.KNOWLEDGE, 8)
    ids = np.array([KNOWLEDGE_FLAG | i for i in range(8)], np.int64)
    positions = (np.arange(24, dtype=np.float32).reshape(8, 3) * 10.0)
    pin = (KNOWLEDGE_FLAG | 5, (7.0, 8.0, 9.0))
    assert layout.ask(ResumeLayout(SavedLayout(saved_graph, ids, positions, dict([pin])))) == 8
    snapshot = layout.ask(GetSnapshot())
    got = dict(zip(snapshot.wire_ids.tolist(), snapshot.positions.tolist(), strict=True))
    assert set(got) == set(ids.tolist())
    for wid, p in zip(ids.tolist(), positions.tolist(), strict=True):
        expected = pin[1] if wid == pin[0] else p
        assert got[wid] == pytest.approx(expected)
    status = layout.ask(StatusQuery())
    assert status.detail["nodes"] == 8 and not status.detail["at_rest"]
    layout.ask(Step(5))  # it runs on from there: the old pin is gone, the saved one holds
    after = layout.ask(GetSnapshot())
    moved = dict(zip(after.wire_ids.tolist(), after.positions.tolist(), strict=True))
    assert moved[pin[0]] == pytest.approx(pin[1])
    assert moved[KNOWLEDGE_FLAG | 0] != pytest.approx(got[KNOWLEDGE_FLAG | 0])
