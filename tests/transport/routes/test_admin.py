"""The admin routes: the token, and actor control seen through the tree."""

from __future__ import annotations

from tests.conftest import Daemon, get_json, raw_http, status_and_json


async def test_admin_needs_the_right_token(daemon: Daemon) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        async with daemon.session.get(f"{daemon.url}/admin/actors", headers=headers) as r:
            assert r.status == 401
            assert "Bearer" in (await r.json())["error"]
        async with daemon.session.post(f"{daemon.url}/admin/actors/root/health/kill",
                                       headers=headers) as r:
            assert r.status == 401
    assert daemon.tree.describe("root/health")["incarnation"] == 1
    status, tree = await get_json(daemon, "/admin/actors", headers=daemon.admin())
    assert status == 200 and tree["path"] == "root"
    assert [c["name"] for c in tree["children"]] == ["gpu_layout", "health"]


async def test_admin_token_that_is_not_utf8_is_401(daemon: Daemon) -> None:
    response = await raw_http(daemon, b"GET /admin/actors HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
    status, body = status_and_json(response)
    assert status == 401 and "Bearer" in body["error"]


async def test_admin_kill_restarts_the_actor_and_shows_the_new_incarnation(daemon: Daemon) -> None:
    async with daemon.session.post(f"{daemon.url}/admin/actors/root/gpu_layout/kill",
                                   headers=daemon.admin()) as r:
        assert r.status == 200
        result = await r.json()
    assert result["node"]["incarnation"] == 2
    status, tree = await get_json(daemon, "/admin/actors", headers=daemon.admin())
    layout = tree["children"][0]
    assert layout["incarnation"] == 2 and layout["state"] == "running"
    assert layout["last_failure"]["type"] == "Killed"
    status, node = await get_json(daemon, "/admin/actors/root/gpu_layout", headers=daemon.admin())
    assert status == 200 and node["restarts"] == 1
    for action, expected in (("restart", 3), ("stop", 3), ("start", 4)):
        async with daemon.session.post(f"{daemon.url}/admin/actors/root/gpu_layout/{action}",
                                       headers=daemon.admin()) as r:
            assert r.status == 200
            assert (await r.json())["node"]["incarnation"] == expected
    status, _ = await get_json(daemon, "/admin/actors/root/nope", headers=daemon.admin())
    assert status == 404
    async with daemon.session.post(f"{daemon.url}/admin/actors/root/kill",
                                   headers=daemon.admin()) as r:
        assert r.status == 409 and "root" in (await r.json())["error"]
