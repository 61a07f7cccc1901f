"""The MCP actor with a pool of real claude-flow servers: telemetry into the layout, a server
killed mid-call (clear error, breaker open, recovery), recycling without losing agents."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.circuit_breaker import BreakerOpen, BreakerSettings, CircuitBreaker
from actors.gpu_layout import LayoutActor, LayoutSettings
from actors.graph import AGENT_FLAG
from actors.mcp.actor import McpActor
from actors.mcp.errors import MaintenanceFailed, NoConnection, PeerGone
from actors.mcp.messages import CallTool, GetAgents, RelayRequest
from actors.mcp.pool import McpPool
from actors.mcp.servers import StdioConnector
from actors.mcp.settings import McpSettings
from actors.messages import GetGraph, GetSnapshot, StatusQuery
from supervisor import Backoff, SupervisionTree, SupervisorSpec, WorkerSpec
from tests.conftest import server_pids, wait_for


def make_tree(claude_flow: list[str], state: Path, **overrides: Any) -> SupervisionTree:
    options: dict[str, Any] = {"pool_size": 2, "poll_interval_s": 0.2, **overrides}
    settings = McpSettings(command=(*claude_flow, "mcp", "start"), state_dir=str(state), **options)
    tree = SupervisionTree(SupervisorSpec("root", (
        WorkerSpec("gpu_layout", LayoutActor, args=(LayoutSettings(backend="cpu", tick_hz=20),),
                   start_timeout=300),
        WorkerSpec("mcp", McpActor, args=(settings,)),
    ), max_restarts=10))
    tree.start()
    return tree


@pytest.fixture
def tree(claude_flow: list[str], tmp_path: Path) -> Iterator[SupervisionTree]:
    t = make_tree(claude_flow, tmp_path / "mcp")
    yield t
    t.stop(10)


def spawn(tree: SupervisionTree, agent_type: str, key: int) -> dict[str, Any]:
    result: dict[str, Any] = tree.address("root/mcp").ask(
        CallTool("agent_spawn", {"agentType": agent_type}, key)).result(10)
    return result


def agent_nodes(tree: SupervisionTree) -> set[int]:
    frame = tree.address("root/gpu_layout").ask(GetSnapshot())
    return {int(w) for w in frame.wire_ids if int(w) & AGENT_FLAG}


def test_telemetry_reaches_the_layout_from_every_shard(tree: SupervisionTree) -> None:
    mcp = tree.address("root/mcp")
    mcp.ask(CallTool("swarm_init", {"topology": "hierarchical", "maxAgents": 5}, 0)).result(10)
    ids = [spawn(tree, "coordinator", 0)["agentId"], spawn(tree, "coder", 0)["agentId"],
           spawn(tree, "tester", 1)["agentId"]]
    wait_for(lambda: len(agent_nodes(tree)) == 3)
    telemetry = mcp.ask(GetAgents())
    assert sorted(a.id for a in telemetry.agents) == sorted(ids)
    assert {a.shard for a in telemetry.agents} == {0, 1}
    view = tree.address("root/gpu_layout").ask(GetGraph())["agent"]
    coordinator = next(n["id"] for n in view["nodes"] if n["type"] == "coordinator")
    coder = next(n["id"] for n in view["nodes"] if n["type"] == "coder")
    assert {"source": coordinator, "target": coder, "weight": 1.0} in view["edges"]
    status = mcp.ask(StatusQuery())
    assert status.health == "healthy" and status.detail["mcp_health"] == "connected"


def test_server_killed_mid_call_breaker_opens_and_telemetry_resumes(
        claude_flow: list[str], tmp_path: Path) -> None:
    state = tmp_path / "mcp"
    tree = make_tree(claude_flow, state, pool_size=1,
                     breaker=BreakerSettings(failure_threshold=2, recovery_timeout_s=1.0,
                                             success_threshold=1),
                     backoff=Backoff(0.2, 0.5, 1.5))
    try:
        mcp = tree.address("root/mcp")
        agent = spawn(tree, "researcher", 0)["agentId"]
        wait_for(lambda: len(agent_nodes(tree)) == 1)
        ticket = mcp.ask(RelayRequest("tools/call", {"name": "agent_list", "arguments": {}}, 0))
        for pid in server_pids(state):
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(PeerGone):  # the death fails the call, not a TimeoutError
            ticket.future.result(30)
            # the call may have been answered before the kill landed: the next one is not
            mcp.ask(RelayRequest("tools/list", {}, 0)).future.result(30)
        status = wait_for(lambda: (s := mcp.ask(StatusQuery())).detail["breaker"]["state"] == "open" and s)
        assert status.health == "degraded" and status.detail["mcp_health"] != "connected"
        with pytest.raises((BreakerOpen, NoConnection)):
            mcp.ask(CallTool("agent_list", {}, 0)).result(5)
        # the breaker half-opens, the member reconnects in its own folder: the agent is back
        wait_for(lambda: mcp.ask(StatusQuery()).detail["mcp_health"] == "connected")
        telemetry = wait_for(lambda: (t := mcp.ask(GetAgents())) and t.polled_at > time.time() - 1
                             and not t.errors and t)
        assert [a.id for a in telemetry.agents] == [agent]
        assert mcp.ask(StatusQuery()).detail["breaker"]["trips"] >= 1
    finally:
        tree.stop(10)


def test_maintenance_keeps_agents_and_empties_the_receipt_log(
        claude_flow: list[str], tmp_path: Path) -> None:
    tree = make_tree(claude_flow, tmp_path / "mcp", pool_size=1, maintain_every_calls=10,
                     poll_interval_s=0.05)
    try:
        mcp = tree.address("root/mcp")
        mcp.ask(CallTool("swarm_init", {"topology": "mesh", "maxAgents": 3}, 0)).result(10)
        agents = {spawn(tree, "analyst", 0)["agentId"], spawn(tree, "coder", 0)["agentId"]}
        wait_for(lambda: mcp.ask(StatusQuery()).detail["members"][0]["maintenances"] >= 3)
        telemetry = wait_for(lambda: (t := mcp.ask(GetAgents())) and t.polled_at > time.time() - 1
                             and t)
        assert {a.id for a in telemetry.agents} == agents and not telemetry.errors
        assert telemetry.swarms and telemetry.swarms[0].topology == "mesh"
        policy = json.loads((tmp_path / "mcp" / "member-0" / "gen-1" / ".claude-flow" / "policy"
                             / "state.json").read_text())
        assert len(policy["receipts"]) < 40  # emptied every 10 calls, not thousands
    finally:
        tree.stop(10)


class FailingMaintenance(StdioConnector):
    """A real connector whose maintenance fails (fault injection): the pool must recycle."""

    def maintain(self, index: int, conn: Any) -> None:
        raise MaintenanceFailed("injected")


def test_failed_maintenance_recycles_into_a_fresh_folder_without_losing_agents(
        claude_flow: list[str], tmp_path: Path) -> None:
    connector = FailingMaintenance([*claude_flow, "mcp", "start"], tmp_path / "mcp")
    pool = McpPool(connector, 1, CircuitBreaker("t"), Backoff(0.1, 1), maintain_every=5)
    try:
        assert pool.ensure() == 1
        ids = {pool.call_tool("agent_spawn", {"agentType": t}).result(10)["agentId"]
               for t in ("coder", "tester")}
        for _ in range(5):
            pool.call_tool("agent_list", {}).result(10)
        pool.maintain_due()
        member = pool.members[0]
        assert member.recycles == 1 and member.generation == 2
        listed = pool.call_tool("agent_list", {}).result(10)
        assert {a["agentId"] for a in listed["agents"]} == ids
        gens = sorted(p.name for p in (tmp_path / "mcp" / "member-0").glob("gen-*"))
        assert gens == ["gen-2"]  # the old generation's folder is gone
    finally:
        pool.close()


def test_actor_restart_keeps_agent_node_ids(tree: SupervisionTree) -> None:
    spawn(tree, "architect", 0)
    wait_for(lambda: len(agent_nodes(tree)) == 1)
    before = agent_nodes(tree)
    tree.kill("root/mcp")
    assert tree.address("root/mcp").wait_running(2, timeout=20)
    spawn(tree, "optimizer", 1)
    wait_for(lambda: len(agent_nodes(tree)) == 2)
    assert before <= agent_nodes(tree)
