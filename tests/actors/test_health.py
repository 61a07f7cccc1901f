"""The health actor over a real tree: states, statuses, subscriptions, and system_status."""

from __future__ import annotations

import threading
from typing import Any

import pykka

from actors.health import GetHealth, HealthActor, HealthSettings, LoopReport
from actors.messages import ActorStatus, StatusQuery, Subscribe
from supervisor import SupervisionTree, SupervisorSpec, WorkerSpec


class Peer(pykka.ThreadingActor):
    def __init__(self, health: str = "healthy") -> None:
        super().__init__()
        self.health = health

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, StatusQuery):
            return ActorStatus("peer", self.health, "breaker open" if self.health != "healthy" else "",
                               {"mcp_health": "reconnecting"} if self.health != "healthy" else {})
        if message == "sick":
            self.health = "degraded"
        return None


def make_tree() -> SupervisionTree:
    tree = SupervisionTree(SupervisorSpec("root", (
        WorkerSpec("a", Peer), WorkerSpec("mcp", Peer),
        WorkerSpec("health", HealthActor, args=(HealthSettings(interval_s=60),)))))
    tree.start()
    return tree


def snapshot(tree: SupervisionTree) -> Any:
    return tree.address("root/health").ask(GetHealth(refresh=True))


def test_status_follows_the_tree_and_the_peers() -> None:
    tree = make_tree()
    try:
        snap = snapshot(tree)
        assert snap.system_status == "healthy"
        assert snap.body["actors"]["total_actors"] == 4
        assert snap.body["mcp_health"] == "unknown"
        tree.address("root/mcp").tell("sick")
        snap = snapshot(tree)
        assert snap.system_status == "degraded"
        assert snap.body["mcp_health"] == "reconnecting"
        assert snap.body["components"]["mcp"]["reason"] == "breaker open"
        tree.stop_child("root/a")
        tree.stop_child("root/mcp")
        snap = snapshot(tree)
        assert snap.system_status == "critical"
        assert snap.body["components"]["a"]["health"] == "down"
    finally:
        tree.stop(5)


def test_loop_lag_degrades_and_subscribers_hear_changes() -> None:
    tree = make_tree()
    try:
        heard = []
        event = threading.Event()

        def listener(snap: Any) -> None:
            heard.append(snap.system_status)
            event.set()

        tree.address("root/health").tell(Subscribe("t", listener))
        snapshot(tree)
        event.wait(2)
        event.clear()
        tree.address("root/health").tell(LoopReport(lag_ms=900.0, total_requests=3))
        snap = snapshot(tree)
        assert snap.system_status == "degraded"
        assert snap.body["performance"]["total_requests"] == 3
        assert event.wait(2)
        assert heard[-1] == "degraded"
    finally:
        tree.stop(5)
