"""Swarms on several Docker engines (``docker_urls``, issue 22): two podman services on two
sockets, each running the agents' container with the real claude-flow CLI. New swarms go to
the least loaded engine; when one dies, its swarms are marked failed with the reason and new
swarms go to the other."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.hive_mind.messages import GetSwarm, SpawnRequest, SpawnSwarm
from actors.messages import StatusQuery
from supervisor import SupervisionTree
from tests.actors.hive_mind.test_docker_backend import CONTAINER, in_container, make_tree, settled
from tests.conftest import wait_for
from tests.peers.podman import PodmanError, PodmanService, host_runtime_binds


@pytest.fixture
def engines(tmp_path: Path, claude_flow: list[str]) -> Iterator[list[PodmanService]]:
    services: list[PodmanService] = []
    try:
        for name in ("one", "two"):
            svc = PodmanService()
            services.append(svc)
            try:
                svc.start(tmp_path / f"podman-{name}")
            except PodmanError as exc:
                pytest.fail(f"podman peer unavailable: {exc}", pytrace=False)
            svc.build_image("hive-busybox")
            svc.run_container(CONTAINER, "hive-busybox", host_runtime_binds())
        yield services
    finally:
        for svc in services:
            svc.stop()


def sessions_on(svc: PodmanService) -> list[str]:
    return sorted(in_container(svc, "ls", "/tmp/hive-sessions").split())


def test_swarms_spread_over_the_engines_and_an_engine_that_dies_fails_only_its_own(
        engines: list[PodmanService], tmp_path: Path) -> None:
    one, two = engines
    assert one.base_url and two.base_url
    urls = (one.base_url, two.base_url)
    tree: SupervisionTree = make_tree(one, tmp_path / "records", docker_url="", docker_urls=urls,
                                      health_interval_s=0.5)
    try:
        hive = tree.address("root/hive_mind")
        first = hive.ask(SpawnSwarm(SpawnRequest("first")), timeout=10).session
        first = settled(hive, first.id)
        second = hive.ask(SpawnSwarm(SpawnRequest("second")), timeout=10).session
        second = settled(hive, second.id)
        assert first.status == second.status == "active"
        # the least loaded engine each time: one swarm on each
        assert sessions_on(one) == [first.id] and sessions_on(two) == [second.id]
        two.kill()  # the engine dies with its containers
        lost = wait_for(lambda: next((s for s in [hive.ask(GetSwarm(second.id), timeout=10)]
                                      if s.status == "failed"), None), 60, what="the swarm failed")
        assert f"its Docker engine {two.base_url or urls[1]} is down" in lost.error, lost.error
        assert hive.ask(GetSwarm(first.id), timeout=10).status == "active"  # the other is fine
        third = hive.ask(SpawnSwarm(SpawnRequest("third")), timeout=10).session
        assert settled(hive, third.id).status == "active"
        assert sessions_on(one) == sorted([first.id, third.id])  # new swarms went elsewhere
        # health names the engine that is down
        status = wait_for(lambda: next((s for s in [hive.ask(StatusQuery())]
                                        if s.health == "degraded"), None), 10, what="degraded")
        assert "1 of 2 Docker engines down" in status.reason and urls[1] in status.reason
        engines_seen = status.detail["container_health"]["engines"]
        assert [e["up"] for e in engines_seen] == [True, False]
    finally:
        tree.stop(10)
