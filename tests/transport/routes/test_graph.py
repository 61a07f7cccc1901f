"""Loading and reading the knowledge graph on a real server."""

from __future__ import annotations

import json

from tests.conftest import JSON, Daemon, get_json, start_daemon


async def test_graph_round_trip_and_validation(daemon: Daemon) -> None:
    body = {"nodes": [{"id": 0, "label": "a"}, {"id": 7, "label": "b"}],
            "edges": [{"source": 0, "target": 7, "weight": 2}]}
    async with daemon.session.put(f"{daemon.url}/api/graph", json=body) as r:
        assert r.status == 200 and (await r.json())["loaded"] == {"nodes": 2, "edges": 1}
    status, view = await get_json(daemon, "/api/graph")
    assert status == 200
    nodes = view["knowledge"]["nodes"]
    assert [n["label"] for n in nodes] == ["a", "b"] and all(len(n["position"]) == 3 for n in nodes)
    bad = [
        (b"{nope", "not valid JSON"),
        (b"[" * 50_000 + b"]" * 50_000, "nested too deeply"),
        (json.dumps({"nodes": "x"}).encode(), "'nodes' must be a list"),
        (json.dumps({"nodes": [{"id": -1}]}).encode(), "outside [0, 2^30)"),
        (json.dumps({"nodes": [{"id": 2**30}]}).encode(), "outside [0, 2^30)"),
        (json.dumps({"nodes": [{"id": 1}, {"id": 1}]}).encode(), "unique"),
        (json.dumps({"nodes": [{"id": 1}], "edges": [{"source": 1, "target": 9}]}).encode(),
         "edges[0] references unknown node 9"),
        (json.dumps({"nodes": [{"id": 1}], "edges": [{"source": 1, "target": 1, "weight": -2}]})
         .encode(), "weight"),
        # finite in float64 but not in float32 (the layout's precision), and past float64
        (json.dumps({"nodes": [{"id": 1}, {"id": 2}], "edges": [{"source": 1, "target": 2, "weight": 1e308}]})
         .encode(), "edges[0].weight must be a number in [0, 1e+06]"),
        (b'{"nodes": [{"id": 1}, {"id": 2}], "edges": [{"source": 1, "target": 2, "weight": 1' + b"0" * 400
         + b"}]}", "edges[0].weight"),
        (b'{"nodes": [{"id": 1}, {"id": 2}], "edges": [{"source": 1, "target": 2, "weight": NaN}]}',
         "not valid JSON"),
    ]
    for payload, expected in bad:
        async with daemon.session.put(f"{daemon.url}/api/graph", data=payload, headers=JSON) as r:
            assert r.status == 400, payload
            assert expected in (await r.json())["error"], payload
    # the bad bodies lost nothing: the graph is still there
    _, view = await get_json(daemon, "/api/graph")
    assert len(view["knowledge"]["nodes"]) == 2


async def test_large_graph_is_accepted() -> None:
    """100,000 nodes and 1,000,000 edges fit the default body limit."""
    d = await start_daemon()
    try:
        n, m = 100_000, 1_000_000
        import numpy as np

        rng = np.random.default_rng(0)
        src, dst = rng.integers(0, n, m), rng.integers(0, n, m)
        nodes = ",".join(f'{{"id":{i}}}' for i in range(n))
        edges = ",".join(f'{{"source":{s},"target":{t}}}' for s, t in zip(src.tolist(), dst.tolist(), strict=True))
        payload = f'{{"nodes":[{nodes}],"edges":[{edges}]}}'.encode()
        assert len(payload) < 64 * 1024 * 1024
        async with d.session.put(f"{d.url}/api/graph", data=payload, headers=JSON) as r:
            assert r.status == 200, await r.text()
            assert (await r.json())["loaded"] == {"nodes": n, "edges": m}
    finally:
        await d.stop()
