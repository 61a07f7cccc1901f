"""The Prometheus text on a real server."""

from __future__ import annotations

from tests.conftest import Daemon


async def test_metrics(daemon: Daemon) -> None:
    async with daemon.session.ws_connect(f"{daemon.ws_url}/wss"), daemon.session.get(f"{daemon.url}/metrics") as r:
        assert r.status == 200
        text = await r.text()
    assert 'hive_actor_restarts{path="root/gpu_layout"} 0.0' in text
    assert 'hive_actor_mailbox_depth{path="root/health"}' in text
    assert 'hive_websocket_clients{route="/wss"} 1.0' in text
    for name in ("hive_frames_sent_total", "hive_frames_dropped_total", "hive_layout_step_ms",
                 "hive_event_loop_lag_ms"):
        assert name in text
