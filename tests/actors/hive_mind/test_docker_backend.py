"""The hive-mind actor's Docker backend against a real Docker Engine API (podman's service,
started and torn down here), exec'ing the real claude-flow CLI inside a running container."""

from __future__ import annotations

import time
from typing import Any

import pytest

from actors.circuit_breaker import BreakerSettings
from actors.hive_mind.actor import HiveMindActor
from actors.hive_mind.errors import BackendUnavailable, UnknownSession
from actors.hive_mind.messages import GetSwarm, ListSwarms, SpawnRequest, SpawnSwarm, StopSwarm
from actors.hive_mind.settings import HiveMindSettings
from actors.messages import StatusQuery, Tick
from supervisor import SupervisionTree, SupervisorSpec, WorkerSpec
from tests.peers.podman import AGENTS_DIR, PodmanService, host_runtime_binds

CONTAINER = "multi-agent-container"


@pytest.fixture
def engine(podman_service: PodmanService, claude_flow: list[str]) -> PodmanService:
    """The service with the agents' container running, the host's runtime bound read-only."""
    podman_service.build_image("hive-busybox")
    podman_service.run_container(CONTAINER, "hive-busybox", host_runtime_binds())
    return podman_service


def make_tree(svc: PodmanService, **overrides: Any) -> SupervisionTree:
    cli = ("node", str(AGENTS_DIR / "node_modules" / "claude-flow" / "bin" / "cli.js"))
    options: dict[str, Any] = {"backend": "docker", "container": CONTAINER,
                               "docker_url": svc.base_url, "cli": cli, "mcp": "",
                               "sessions_dir": "/tmp/hive-sessions", **overrides}
    tree = SupervisionTree(SupervisorSpec("root", (
        WorkerSpec("hive_mind", HiveMindActor, args=(HiveMindSettings(**options),)),)))
    tree.start()
    return tree


def test_swarm_lifecycle_inside_the_container(engine: PodmanService) -> None:
    tree = make_tree(engine)
    try:
        hive = tree.address("root/hive_mind")
        task = "review $(id) && rm -rf / ; `reboot`"
        session = hive.ask(SpawnSwarm(SpawnRequest(task, "low", "star", 2)), timeout=60)
        assert session.status == "active" and session.task == task and session.priority == "low"
        assert session.topology == "hierarchical" and len(session.workers) == 2
        # the session lives in the container, not on this host
        container = engine.client.containers.get(CONTAINER)
        listing = container.exec_run(["ls", "/tmp/hive-sessions"]).output.decode().split()
        assert listing == [session.id]
        assert [s.id for s in hive.ask(ListSwarms(refresh=True), timeout=60)] == [session.id]
        assert hive.ask(GetSwarm(session.id), timeout=60).status == "active"
        assert hive.ask(StopSwarm(session.id), timeout=60).status == "completed"
        with pytest.raises(UnknownSession):
            hive.ask(GetSwarm("6f1c3f4e-2b7a-4c1d-9e8f-0a1b2c3d4e5f"), timeout=60)
        # container health: running, CPU, memory, disk, answer time
        hive.tell(Tick(0.0))
        status = hive.ask(StatusQuery(), timeout=60)
        health = status.detail["container_health"]
        assert health["running"] is True and health["where"] == "docker"
        assert "disk_free_gb" in health and health["response_s"] >= 0
        assert status.detail["docker_health"] == "healthy"
    finally:
        tree.stop(10)


def test_a_crash_of_the_actor_loses_no_swarm(engine: PodmanService) -> None:
    tree = make_tree(engine)
    try:
        hive = tree.address("root/hive_mind")
        session = hive.ask(SpawnSwarm(SpawnRequest("keep me")), timeout=60)
        tree.kill("root/hive_mind")
        assert hive.wait_running(2, timeout=30)
        sessions = hive.ask(ListSwarms(), timeout=60)
        assert [(s.id, s.task) for s in sessions] == [(session.id, "keep me")]
    finally:
        tree.stop(10)


def test_engine_failures_retry_then_open_the_breaker(engine: PodmanService) -> None:
    tree = make_tree(engine, retries=2, retry_delay_s=0.05,
                     breaker=BreakerSettings(failure_threshold=3, recovery_timeout_s=60,
                                             success_threshold=1))
    try:
        hive = tree.address("root/hive_mind")
        engine.client.containers.get(CONTAINER).remove(force=True)
        started = time.monotonic()
        with pytest.raises(BackendUnavailable, match=r"not found.*after 3 attempts"):
            hive.ask(SpawnSwarm(SpawnRequest("x")), timeout=60)
        assert time.monotonic() - started >= 0.1  # two pauses between three attempts
        with pytest.raises(BackendUnavailable, match="breaker is open"):
            hive.ask(SpawnSwarm(SpawnRequest("x")), timeout=60)
        status = hive.ask(StatusQuery(), timeout=60)
        assert status.health == "degraded" and status.detail["breaker"]["state"] == "open"
    finally:
        tree.stop(10)
