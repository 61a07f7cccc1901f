"""``/metrics`` on a real server, read with prometheus-client's own parser: the names follow
the convention (counters ``_total``, durations ``_seconds``, sizes ``_bytes``), one ``up``
series per actor, and the figures the actors hold are there."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import Daemon


async def scrape(daemon: Daemon) -> tuple[dict[str, str], list[Sample]]:
    async with daemon.session.get(f"{daemon.url}/metrics") as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    families = list(text_string_to_metric_families(text))
    return {f.name: f.type for f in families}, [s for f in families for s in f.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and all(s.labels.get(k) == v
                                                                  for k, v in labels.items())]
    assert len(found) == 1, (name, labels, [s for s in samples if s.name == name])
    return found[0]


async def test_names_follow_the_convention(daemon: Daemon) -> None:
    async with daemon.session.get(f"{daemon.url}/api/health"):
        pass
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss"):
        types, samples = await scrape(daemon)
    for name, kind in types.items():
        assert not name.endswith(("_ms", "_milliseconds", "_kb", "_mb")), name
        if kind == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in samples
                       if s.name.startswith(name)), name
    expected = {
        "hive_actor_restarts": "counter", "hive_actor_up": "gauge", "hive_actor_mailbox_depth": "gauge",
        "hive_http_requests": "counter", "hive_http_request_duration_seconds": "histogram",
        "hive_websocket_clients": "gauge", "hive_frames_sent": "counter",
        "hive_frames_sent_bytes": "counter", "hive_frames_dropped": "counter",
        "hive_connections_reset": "counter", "hive_breaker_state": "gauge", "hive_swarms": "gauge",
        "hive_mcp_calls": "counter", "hive_layout_step_seconds": "gauge", "hive_layout_nodes": "gauge",
        "hive_event_loop_lag_seconds": "gauge", "hive_build_info": "gauge",  # info, as text 0.0.4 has it
        "process_resident_memory_bytes": "gauge", "process_open_fds": "gauge",
        "process_cpu_seconds": "counter", "python_info": "gauge",
    }
    for name, kind in expected.items():
        assert types.get(name) == kind, (name, types.get(name))
    assert value(samples, "hive_actor_up", path="root/gpu_layout") == 1
    assert value(samples, "hive_actor_restarts_total", path="root/gpu_layout") == 0
    assert value(samples, "hive_websocket_clients", route="/wss") == 1
    assert value(samples, "hive_http_requests_total", method="GET", route="/api/health",
                 status="200") >= 1
    build = [s for s in samples if s.name == "hive_build_info"]
    assert build and build[0].labels["version"] and build[0].labels["python"]


async def test_a_kill_counts_a_restart_and_up_follows_the_actor(daemon: Daemon) -> None:
    tree = daemon.services.tree
    tree.kill("root/health")
    assert tree.address("root/health").wait_running(2, timeout=10)
    _, samples = await scrape(daemon)
    assert value(samples, "hive_actor_restarts_total", path="root/health") == 1
    tree.stop_child("root/health")
    _, samples = await scrape(daemon)  # without the health actor: the tree's figures still come
    assert value(samples, "hive_actor_up", path="root/health") == 0
    assert value(samples, "hive_actor_up", path="root/gpu_layout") == 1
    tree.start_child("root/health")
