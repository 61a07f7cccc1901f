"""The second probe round (issue 19), each defect against the daemon as a real subprocess.

1. A small compressed body that unpacks to GiBs froze every route for seconds (aiohttp decoded
   it on the event loop, without a cap, even for a request refused with 401).
2. ``?%74oken=`` was taken as the token, and a malformed request with it wrote the token into
   the log (the redaction matched a literal ``token=`` only).
3. 1,000 ``initialize`` calls from a stranger ended every other MCP session, open streams too.
4. claude-flow's tools stored whatever they were given (a 4 MiB ``config`` per ``agent_spawn``).
5. Finished swarms were kept forever, in memory and on disk.
6. A stop was refused with 503 behind a queue full of spawns.
And the smaller ones: headers sent a byte at a time held a connection forever.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import yarl

from tests.conftest import JSON, WITHOUT_AGENTS, DaemonProcess, cli_wrapper, spawn

API_TOKEN = "second-probe-api-token-3b9e1f"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", **JSON}


@asynccontextmanager
async def running(tmp_path: Path, config: str, env: dict[str, str] | None = None
                  ) -> AsyncIterator[tuple[DaemonProcess, str]]:
    path = tmp_path / "hive.toml"
    path.write_text(config)
    process = DaemonProcess(spawn("--config", str(path), cwd=tmp_path, env=env))
    try:
        ready = await asyncio.to_thread(process.wait_event, "daemon.ready", 180)
        yield process, f"http://127.0.0.1:{ready['port']}"
    finally:
        await asyncio.to_thread(process.stop)


def zeros(encoding: str, gib: float) -> bytes:
    """A body of a few KiB that unpacks to ``gib`` GiB of zeros."""
    import zlib

    import brotli
    from backports import zstd

    block, count = bytes(1 << 24), int(gib * 64)
    if encoding == "br":
        maker = brotli.Compressor(quality=1)
        return b"".join(maker.process(block) for _ in range(count)) + maker.finish()
    if encoding == "gzip":
        maker = zlib.compressobj(1, zlib.DEFLATED, 31)
        return b"".join(maker.compress(block) for _ in range(count)) + maker.flush()
    zmaker = zstd.ZstdCompressor(level=1)
    return b"".join(zmaker.compress(block) for _ in range(count)) + zmaker.flush()


async def worst_livez(session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> float:
    """The slowest ``/livez`` answer, polled every 20 ms until ``stop``."""
    worst = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        async with session.get(f"{url}/livez") as r:
            assert r.status == 200
        worst = max(worst, time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return worst


async def test_compressed_bombs_are_413_and_never_freeze_the_daemon(tmp_path: Path) -> None:
    """Four at a time, each a few KiB that unpack to 2 GiB, on both routes that read a body, with
    the token (413) and without it (401, never decoded): /livez stays under 100 ms. Before the
    fix, 128 KiB of zstd froze /livez for 11.7 s, and a 401 still froze it for half a second."""
    bombs = {encoding: await asyncio.to_thread(zeros, encoding, 2.0)
             for encoding in ("zstd", "br", "gzip")}
    async with running(tmp_path, WITHOUT_AGENTS, {"HIVE_API_TOKEN": API_TOKEN}) as (_process, url), \
            aiohttp.ClientSession() as session:
        async def send(method: str, path: str, encoding: str, auth: bool) -> int:
            headers = {**JSON, "Content-Encoding": encoding, **(AUTH if auth else {})}
            async with session.request(method, f"{url}{path}", data=bombs[encoding],
                                       headers=headers) as r:
                body = await r.json()
                assert ("too large" in body["error"]) if r.status == 413 else True, body
                return r.status

        for _ in range(3):  # a warm-up: the first requests pay for imports
            async with session.get(f"{url}/livez") as r:
                assert r.status == 200
        stop = asyncio.Event()
        poller = asyncio.create_task(worst_livez(session, url, stop))
        statuses = []
        for auth in (True, False):
            for encoding in bombs:
                statuses += await asyncio.gather(*(
                    send(method, path, encoding, auth)
                    for method, path in (("PUT", "/api/graph"), ("POST", "/api/swarms"),
                                         ("PUT", "/api/graph"), ("POST", "/api/swarms"))))
        stop.set()
        worst = await poller
        async with session.put(f"{url}/api/graph", data=json.dumps({"nodes": [{"id": 1}]}),
                               headers={**JSON, **AUTH}) as r:
            assert r.status == 200  # and the daemon takes a good body after all that
    assert statuses == [413] * 12 + [401] * 12, statuses
    assert worst < 0.1, f"/livez took {worst * 1e3:.0f} ms while bombs arrived"


async def test_an_encoded_token_key_is_the_token_and_never_reaches_the_log(tmp_path: Path) -> None:
    async with running(tmp_path, WITHOUT_AGENTS, {"HIVE_API_TOKEN": API_TOKEN}) as (process, url), \
            aiohttp.ClientSession() as session:
        # percent-encoded keys are the same key (RFC 3986 2.3), as documented in docs/security.md;
        # encoded=True: sent as written (yarl would otherwise decode them before sending)
        for query in ("token", "%74oken", "tok%65n"):
            target = yarl.URL(f"{url}/api/swarms/x?{query}={API_TOKEN}", encoded=True)
            async with session.delete(target) as r:
                assert r.status != 401, query
        async with session.delete(f"{url}/api/swarms/x") as r:
            assert r.status == 401
        port = int(url.rsplit(":", 1)[1])
        for key in ("%74oken=", "tok%65n=", "token%3D", "%2574oken%253D", "token="):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"DELETE /api/swarms/x?{key}{API_TOKEN} HTTP/9.9\r\n"
                         f"Host: 127.0.0.1\r\n\r\n".encode())
            await writer.drain()
            await reader.read()
            writer.close()
    log = "".join(process.lines)  # the daemon has stopped: every line it wrote is here
    assert log.count("bad HTTP from a client") >= 5 and "[redacted]" in log  # they were written
    assert API_TOKEN not in log


async def test_a_flood_of_initialize_never_ends_an_open_session(tmp_path: Path) -> None:
    """A session with its GET stream open (and a subscription) lives through 1,000 more
    ``initialize`` calls; past the limit they are refused with 503 and Retry-After."""
    async with running(tmp_path, WITHOUT_AGENTS) as (_process, url), \
            aiohttp.ClientSession() as session:
        async def initialize() -> aiohttp.ClientResponse:
            body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                               "clientInfo": {"name": "probe", "version": "1"}}}
            async with session.post(f"{url}/mcp", json=body, headers=MCP_HEADERS) as r:
                await r.read()
                return r

        first = await initialize()
        sid = first.headers["Mcp-Session-Id"]
        mine = {**MCP_HEADERS, "Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
        async with session.post(f"{url}/mcp", json={"jsonrpc": "2.0", "method":
                                "notifications/initialized"}, headers=mine) as r:
            assert r.status == 202
        async with session.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 2, "method":
                                "resources/subscribe", "params": {"uri": "hive://health"}},
                                headers=mine) as r:
            assert r.status == 200 and "result" in await r.json()
        stream = await session.get(f"{url}/mcp", headers={**mine, "Accept": "text/event-stream"})
        assert stream.status == 200
        statuses: list[int] = []
        for _ in range(20):
            answers = await asyncio.gather(*(initialize() for _ in range(50)))
            statuses += [a.status for a in answers]
        refused = [a for a in answers if a.status == 503]
        assert statuses.count(200) == 999 and statuses.count(503) == 1, statuses.count(200)
        assert refused and refused[0].headers["Retry-After"] == "5"
        async with session.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
                                headers=mine) as r:
            assert r.status == 200, await r.text()  # the first session is still there
        assert not stream.content.at_eof()  # and its stream still open
        stream.close()


async def mcp_session(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                       "clientInfo": {"name": "probe", "version": "1"}}}
    async with session.post(f"{url}/mcp", json=body, headers=MCP_HEADERS) as r:
        assert r.status == 200
        return {**MCP_HEADERS, "Mcp-Session-Id": r.headers["Mcp-Session-Id"],
                "MCP-Protocol-Version": "2025-11-25"}


AGENTS = """
[actors.speech]
enabled = false
[actors.mcp]
pool_size = 1
poll_interval_s = 0.3
[actors.hive_mind]
refresh_interval_s = 0.3
"""


async def test_oversized_claude_flow_arguments_are_refused_naming_the_limit(
        tmp_path: Path, claude_flow: list[str]) -> None:
    """A 4 MiB ``config`` on ``agent_spawn`` and a 300-entry ``tags`` on ``task_create``, through
    /mcp and through /ws/mcp-relay: -32602 naming the limit, and claude-flow's store unchanged.
    A call within the limits is forwarded."""
    big = {"agentType": "coder", "agentId": "probe-big", "config": {"blob": "x" * (4 << 20)}}
    async with running(tmp_path, AGENTS) as (_process, url), \
            aiohttp.ClientSession() as session:
        headers = await mcp_session(session, url)

        async def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
            body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                    "params": {"name": f"claude_flow_{name}", "arguments": arguments}}
            async with session.post(f"{url}/mcp", json=body, headers=headers) as r:
                assert r.status == 200
                answer: dict[str, Any] = await r.json()
                return answer

        refused = await call("agent_spawn", big)
        assert refused["error"]["code"] == -32602 and "limit is 8192" in refused["error"]["message"]
        wide = await call("agent_spawn", {"agentType": "coder", "agentId": "probe-wide",
                                          "config": {f"k{i}": "v" * 8000 for i in range(10)}})
        assert wide["error"]["code"] == -32602 and "65536" in wide["error"]["message"]
        tags = await call("task_create", {"type": "code", "description": "d", "tags": ["t"] * 300})
        assert tags["error"]["code"] == -32602 and "256" in tags["error"]["message"]
        ok = await call("agent_spawn", {"agentType": "coder", "agentId": "probe-small"})
        assert "result" in ok, ok
        async with session.ws_connect(url.replace("http", "ws") + "/ws/mcp-relay",
                                      max_msg_size=0) as ws:
            await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                "params": {"name": "agent_spawn", "arguments": {
                                    **big, "config": {"blob": "y" * (3 << 20)}}}})
            answer = await ws.receive_json(timeout=30)
            assert answer["error"]["code"] == -32602 and "limit is 8192" in answer["error"]["message"]
        stores = list((tmp_path / ".hive-state" / "mcp").rglob("agents/store.json"))
        assert stores and all(p.stat().st_size < 64 * 1024 for p in stores), stores
        assert all("probe-big" not in p.read_text() and "probe-wide" not in p.read_text()
                   for p in stores)
        assert any("probe-small" in p.read_text() for p in stores)


async def wait_status(session: aiohttp.ClientSession, url: str, sid: str, wanted: set[str],
                      timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        async with session.get(f"{url}/api/swarms/{sid}") as r:
            status = (await r.json()).get("status", "gone") if r.status == 200 else "gone"
        if status in wanted:
            return status
        await asyncio.sleep(0.2)
    raise AssertionError(f"{sid} is {status}, not {wanted}")


async def listed(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    async with session.get(f"{url}/api/swarms") as r:
        swarms: list[dict[str, Any]] = (await r.json())["swarms"]
        return swarms


async def make_swarms(session: aiohttp.ClientSession, url: str, count: int) -> list[str]:
    ids = []
    for n in range(count):
        async with session.post(f"{url}/api/swarms", json={"task": f"retention {n}"}) as r:
            assert r.status == 202
            ids.append((await r.json())["id"])
    for sid in ids:
        await wait_status(session, url, sid, {"active"})
    return ids


async def test_finished_swarms_beyond_keep_finished_are_removed(
        tmp_path: Path, claude_flow: list[str]) -> None:
    """keep_finished = 2: of four swarms stopped one after another, the two that finished first
    are removed, record and folder, each logged once with reason count; the newest two stay;
    every stopped swarm's agents leave the data plane."""
    async with running(tmp_path, AGENTS + "keep_finished = 2\n") as (process, url), \
            aiohttp.ClientSession() as session:
        ids = await make_swarms(session, url, 4)
        for sid in ids:
            async with session.delete(f"{url}/api/swarms/{sid}") as r:
                assert r.status == 202
            await wait_status(session, url, sid, {"completed"})
            await asyncio.sleep(1.1)  # finish times a second apart: an order to keep by
        for sid in ids[:2]:
            await wait_status(session, url, sid, {"gone"}, 10)
        await asyncio.sleep(1.0)  # a few more retention ticks: the newest two stay
        assert {s["id"] for s in await listed(session, url)} == set(ids[2:])
        state = tmp_path / ".hive-state"
        for sid in ids[:2]:
            assert not (state / "swarms" / f"{sid}.json").exists()
            assert not (state / "sessions" / sid).exists()
        async with session.get(f"{url}/api/agents") as r:
            agents = (await r.json()).get("agents", [])
            assert not [a for a in agents if a.get("swarmId") in ids], agents
    expired = process.events("swarm.expired")
    assert sorted((e["session"], e["reason"]) for e in expired) == sorted(
        [(ids[0], "count"), (ids[1], "count")])  # once each


async def test_finished_swarms_older_than_keep_finished_s_are_removed(
        tmp_path: Path, claude_flow: list[str]) -> None:
    """keep_finished_s = 2: a stopped swarm is listed as completed, then removed with reason
    age, once; an active one beside it is never touched."""
    async with running(tmp_path, AGENTS + "keep_finished_s = 2\n") as (process, url), \
            aiohttp.ClientSession() as session:
        done, alive = await make_swarms(session, url, 2)
        async with session.delete(f"{url}/api/swarms/{done}") as r:
            assert r.status == 202
        await wait_status(session, url, done, {"completed"})
        await wait_status(session, url, done, {"gone"}, 15)
        await asyncio.sleep(2.5)
        assert await wait_status(session, url, alive, {"active"}, 1) == "active"
        assert (tmp_path / ".hive-state" / "swarms" / f"{alive}.json").exists()
    expired = process.events("swarm.expired")
    assert [(e["session"], e["reason"]) for e in expired] == [(done, "age")]


async def test_a_stop_gets_through_a_queue_full_of_spawns(tmp_path: Path, claude_flow: list[str]) -> None:
    """One worker, a queue of two, spawns that take 8 s: with the queue full a DELETE of an
    active swarm answers 202 and the swarm completes while the spawns wait; a DELETE of a
    spawn still queued completes it at once and frees its place in the queue."""
    cli, _log = cli_wrapper(tmp_path / "cli", claude_flow, slow_stage="spawn", slow_s=8.0)
    config = AGENTS + (f"command_workers = 1\nmax_queued = 2\ncli = {json.dumps(cli)}\n"
                       f"command_timeout_s = 20\n")
    async with running(tmp_path, config) as (_process, url), aiohttp.ClientSession() as session:
        async with session.post(f"{url}/api/swarms", json={"task": "runaway"}) as r:
            runaway = (await r.json())["id"]
        await wait_status(session, url, runaway, {"active"}, 60)
        statuses, fillers = [], []
        for n in range(4):
            async with session.post(f"{url}/api/swarms", json={"task": f"filler {n}"}) as r:
                statuses.append(r.status)
                if r.status == 202:
                    fillers.append((await r.json())["id"])
        assert statuses == [202, 202, 503, 503], statuses  # the queue is full
        async with session.delete(f"{url}/api/swarms/{runaway}") as r:
            assert r.status == 202, await r.text()
        await wait_status(session, url, runaway, {"completed"}, 6)
        async with session.delete(f"{url}/api/swarms/{fillers[1]}") as r:  # queued behind [0]
            assert r.status == 200 and (await r.json())["status"] == "completed"  # done at once
        async with session.get(f"{url}/api/swarms/{fillers[1]}") as r:
            assert "before its spawn began" in (await r.json())["error"]
        async with session.post(f"{url}/api/swarms", json={"task": "in its place"}) as r:
            assert r.status == 202  # its place in the queue is free again
        async with session.get(f"{url}/api/swarms/{fillers[0]}") as r:
            assert (await r.json())["status"] == "spawning"  # the spawns still wait


async def test_headers_sent_a_byte_at_a_time_are_cut_off(tmp_path: Path) -> None:
    """Fifty connections that send their headers a byte every 300 ms are closed at
    ``header_timeout_s``; a client that sends its request whole is served meanwhile."""
    config = WITHOUT_AGENTS + "[server]\nheader_timeout_s = 1.5\n"
    async with running(tmp_path, config) as (_process, url), aiohttp.ClientSession() as session:
        port = int(url.rsplit(":", 1)[1])
        request = b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"

        async def trickle() -> float:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            started = time.monotonic()
            try:
                for byte in request:
                    writer.write(bytes([byte]))
                    await writer.drain()
                    if reader.at_eof():
                        break
                    try:
                        if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                            break
                    except TimeoutError:
                        continue
            except ConnectionError:
                pass
            finally:
                writer.close()
            return time.monotonic() - started

        slow = [asyncio.create_task(trickle()) for _ in range(50)]
        await asyncio.sleep(0.5)
        async with session.get(f"{url}/livez") as r:
            assert r.status == 200
        lasted = await asyncio.gather(*slow)
    assert max(lasted) < 5.0, max(lasted)  # 200 bytes at 300 ms each would take a minute
