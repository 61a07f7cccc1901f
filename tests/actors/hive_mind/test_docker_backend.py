"""The hive-mind actor's Docker backend against a real Docker Engine API (podman's service,
started and torn down here), exec'ing the real claude-flow CLI inside a running container."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Any

import pytest

from actors.circuit_breaker import BreakerSettings
from actors.hive_mind.actor import HiveMindActor
from actors.hive_mind.errors import BackendUnavailable, UnknownSession
from actors.hive_mind.messages import (
    GetSwarm,
    ListSwarms,
    RefreshSwarms,
    Session,
    SpawnRequest,
    SpawnSwarm,
    StopSwarm,
)
from actors.hive_mind.records import RecordStore
from actors.hive_mind.settings import HiveMindSettings
from actors.messages import StatusQuery
from supervisor import Address, SupervisionTree, SupervisorSpec, WorkerSpec
from tests.conftest import wait_for
from tests.peers.podman import AGENTS_DIR, PodmanService, host_runtime_binds

CONTAINER = "multi-agent-container"


@pytest.fixture
def engine(podman_service: PodmanService, claude_flow: list[str]) -> PodmanService:
    """The service with the agents' container running, the host's runtime bound read-only."""
    podman_service.build_image("hive-busybox")
    podman_service.run_container(CONTAINER, "hive-busybox", host_runtime_binds())
    return podman_service


def make_tree(svc: PodmanService, records: Path, **overrides: Any) -> SupervisionTree:
    cli = ("node", str(AGENTS_DIR / "node_modules" / "claude-flow" / "bin" / "cli.js"))
    options: dict[str, Any] = {"backend": "docker", "container": CONTAINER,
                               "docker_url": svc.base_url, "cli": cli, "mcp": "",
                               "sessions_dir": "/tmp/hive-sessions", "records_dir": str(records),
                               "refresh_interval_s": 0.2, **overrides}
    tree = SupervisionTree(SupervisorSpec("root", (
        WorkerSpec("hive_mind", HiveMindActor, args=(HiveMindSettings(**options),)),)))
    tree.start()
    return tree


def settled(hive: Address, session_id: str, wanted: tuple[str, ...] = ("active", "failed"),
            timeout: float = 120) -> Session:
    """The session once its status is one of ``wanted``."""
    return wait_for(lambda: next((s for s in [hive.ask(GetSwarm(session_id), timeout=10)]
                                  if s.status in wanted), None), timeout, what=f"{wanted}")


def in_container(svc: PodmanService, *argv: str) -> str:
    return str(svc.client.containers.get(CONTAINER).exec_run(list(argv)).output.decode())


def test_swarm_lifecycle_inside_the_container(engine: PodmanService, tmp_path: Path) -> None:
    tree = make_tree(engine, tmp_path)
    try:
        hive = tree.address("root/hive_mind")
        task = "review $(id) && rm -rf / ; `reboot`"
        accepted = hive.ask(SpawnSwarm(SpawnRequest(task, "low", "star", 2)), timeout=10)
        assert accepted.session.status == "spawning"
        session = settled(hive, accepted.session.id)
        assert session.status == "active" and session.task == task and session.priority == "low"
        assert session.topology == "hierarchical" and len(session.workers) == 2
        # the session lives in the container, not on this host
        assert in_container(engine, "ls", "/tmp/hive-sessions").split() == [session.id]
        assert [s.id for s in hive.ask(ListSwarms(), timeout=10).sessions] == [session.id]
        assert hive.ask(StopSwarm(session.id), timeout=10).status == "stopping"
        assert settled(hive, session.id, ("completed",)).workers == ()
        with pytest.raises(UnknownSession):
            hive.ask(GetSwarm("6f1c3f4e-2b7a-4c1d-9e8f-0a1b2c3d4e5f"), timeout=10)
        # container health: running, CPU, memory, disk, answer time
        status = wait_for(lambda: (st := hive.ask(StatusQuery(), timeout=10)).detail[
            "container_health"] and st, 60, what="a container health check")
        health = status.detail["container_health"]
        assert health["running"] is True and health["where"] == "docker"
        assert "disk_free_gb" in health and health["response_s"] >= 0
        assert status.detail["docker_health"] == "healthy"
    finally:
        tree.stop(10)


def test_all_sessions_are_read_in_one_exec(engine: PodmanService, tmp_path: Path) -> None:
    """Reads start no process per session: a refresh of many sessions is one exec."""
    tree = make_tree(engine, tmp_path, refresh_interval_s=600.0)  # no background scan here
    try:
        hive = tree.address("root/hive_mind")
        first = settled(hive, hive.ask(SpawnSwarm(SpawnRequest("original")), timeout=10).session.id)
        copies = [str(uuid.uuid4()) for _ in range(30)]
        for name in copies:
            in_container(engine, "cp", "-r", f"/tmp/hive-sessions/{first.id}",
                         f"/tmp/hive-sessions/{name}")
        execs = engine.exec_count()
        assert execs >= 4  # the count is real: the spawn and the copies were execs
        hive.ask(RefreshSwarms(), timeout=10).result(30)
        listing = hive.ask(ListSwarms(), timeout=10).sessions
        assert len(listing) == 31 and {s.status for s in listing} == {"active"}
        assert engine.exec_count() - execs == 1  # not one per session
    finally:
        tree.stop(10)


def test_a_crash_of_the_actor_loses_no_swarm(engine: PodmanService, tmp_path: Path) -> None:
    tree = make_tree(engine, tmp_path)
    try:
        hive = tree.address("root/hive_mind")
        session = settled(hive, hive.ask(SpawnSwarm(SpawnRequest("keep me")), timeout=10).session.id)
        tree.kill("root/hive_mind")
        assert hive.wait_running(2, timeout=30)
        sessions = wait_for(lambda: hive.ask(ListSwarms(), timeout=10).sessions, 30)
        assert [(s.id, s.task, s.status) for s in sessions] == [(session.id, "keep me", "active")]
    finally:
        tree.stop(10)


def test_engine_failures_retry_then_open_the_breaker(engine: PodmanService, tmp_path: Path) -> None:
    tree = make_tree(engine, tmp_path, retries=2, retry_delay_s=0.05,
                     breaker=BreakerSettings(failure_threshold=3, recovery_timeout_s=60,
                                             success_threshold=1))
    try:
        hive = tree.address("root/hive_mind")
        engine.client.containers.get(CONTAINER).remove(force=True)
        accepted = hive.ask(SpawnSwarm(SpawnRequest("x")), timeout=10)
        failed = settled(hive, accepted.session.id, ("failed",))
        assert "not found" in failed.error and "attempt 3 of 3" in failed.error
        with pytest.raises(BackendUnavailable, match=r"breaker is open.*nothing was made"):
            hive.ask(SpawnSwarm(SpawnRequest("x")), timeout=10)
        status = hive.ask(StatusQuery(), timeout=10)
        assert status.health == "degraded" and status.detail["breaker"]["state"] == "open"
        assert [s.id for s in hive.ask(ListSwarms(), timeout=10).sessions] == [accepted.session.id]
    finally:
        tree.stop(10)


def test_a_spawn_finished_before_a_restart_is_not_redone(engine: PodmanService, tmp_path: Path) -> None:
    """Found by review: with the docker backend, recovery ran before the first read of the
    container, so a finished spawn whose record still said "spawning" was deleted and redone."""
    tree = make_tree(engine, tmp_path)
    try:
        hive = tree.address("root/hive_mind")
        session = settled(hive, hive.ask(SpawnSwarm(SpawnRequest("made once")), timeout=10).session.id)
        state_before = in_container(engine, "cat",
                                    f"/tmp/hive-sessions/{session.id}/.claude-flow/hive-mind/state.json")
        store = RecordStore(tmp_path)
        record = store.load_all()[session.id]
        store.save(dataclasses.replace(record, status="spawning", stage="spawn"))  # as a crash left it
        tree.restart("root/hive_mind")
        after = settled(hive, session.id)
        assert after.status == "active" and after.workers == session.workers
        assert in_container(engine, "cat", f"/tmp/hive-sessions/{session.id}/.claude-flow/hive-mind/"
                                           "state.json") == state_before  # untouched
    finally:
        tree.stop(10)


def test_engine_killed_mid_call_fails_clearly_opens_the_breaker_and_recovers(
        engine: PodmanService, tmp_path: Path) -> None:
    """The Docker engine (podman's service) SIGKILLed while a spawn's CLI runs inside the
    container: the spawn fails with the reason, the breaker opens and refuses spawns with nothing
    made, and once the engine and its container are back the breaker closes and spawns work."""
    tree = make_tree(engine, tmp_path, retries=1, retry_delay_s=0.05,
                     breaker=BreakerSettings(failure_threshold=2, recovery_timeout_s=1.0,
                                             success_threshold=1))
    try:
        hive = tree.address("root/hive_mind")
        execs = engine.exec_count()
        accepted = hive.ask(SpawnSwarm(SpawnRequest("cut short")), timeout=10)
        wait_for(lambda: engine.exec_count() > execs, 30, interval=0.01, what="the spawn's first exec")
        engine.kill()
        failed = settled(hive, accepted.session.id, ("failed",))
        assert "docker" in failed.error.lower() and "Traceback" not in failed.error, failed.error
        status = wait_for(lambda: (s := hive.ask(StatusQuery(), timeout=10)).detail["breaker"][
            "state"] == "open" and s, 30, what="the breaker open")
        assert status.health == "degraded"
        with pytest.raises(BackendUnavailable, match=r"breaker is open.*nothing was made"):
            hive.ask(SpawnSwarm(SpawnRequest("refused")), timeout=10)
        assert [s.id for s in hive.ask(ListSwarms(), timeout=10).sessions] == [accepted.session.id]

        engine.start(engine.state_dir)  # the same storage: the container is there, stopped
        engine.client.containers.get(CONTAINER).start()
        wait_for(lambda: hive.ask(StatusQuery(), timeout=10).detail["breaker"]["state"] == "closed",
                 60, what="the breaker closed again")
        session = settled(hive, hive.ask(SpawnSwarm(SpawnRequest("after")), timeout=10).session.id)
        assert session.status == "active" and len(session.workers) >= 1
        listed = {s.id: s.status for s in hive.ask(ListSwarms(), timeout=10).sessions}
        assert listed == {accepted.session.id: "failed", session.id: "active"}
    finally:
        tree.stop(10)
