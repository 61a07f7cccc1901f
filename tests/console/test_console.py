"""The web console at ``/`` in a real headless Chromium, against the real daemon on loopback:
the scene, hovering, dragging, searching, the health and actor panels, swarms, voice, the API
token, reconnecting after the daemon restarts, and the page's own rules (CSP, no inline
script, nothing fetched from elsewhere)."""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import TimeoutError as PlaywrightTimeout

from tests.conftest import (
    REPO,
    TOKEN,
    WITHOUT_AGENTS,
    Daemon,
    DaemonProcess,
    agents_config,
    spawn,
    start_daemon,
)
from tests.console.conftest import ARGS, ARTIFACTS, CHROMIUM, open_console
from tests.peers.nats import NatsServer
from transport.routes import console as console_route

API_TOKEN = "api-token-for-the-console-01"


def graph(n: int, prefix: str = "node") -> dict[str, Any]:
    return {"nodes": [{"id": i, "label": f"{prefix}-{i}"} for i in range(n)],
            "edges": [{"source": i, "target": (i * 7 + 1) % n} for i in range(n) if n > 1]}


async def put_graph(url: str, body: dict[str, Any], token: str = "") -> None:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.put(f"{url}/api/graph", json=body, headers=headers) as r:
        assert r.status == 200, await r.text()


async def knowledge_positions(url: str) -> dict[int, tuple[float, float, float]]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/api/graph?kind=knowledge") as r:
        return {n["id"]: tuple(n["position"]) for n in (await r.json())["knowledge"]["nodes"]}


async def position_of(url: str, node_id: int) -> tuple[float, float, float]:
    return (await knowledge_positions(url))[node_id]


async def drag(page: Any, node_id: int, dx: float, dy: float) -> None:
    """Press on a knowledge node in the console and drag it by (dx, dy) pixels in ten moves."""
    at = await screen(page, node_id)
    await page.mouse.move(at["x"], at["y"])
    await page.mouse.down()
    for step in range(1, 11):
        await page.mouse.move(at["x"] + dx * step / 10, at["y"] + dy * step / 10)
        await asyncio.sleep(0.04)
    await page.mouse.up()


async def drawn_positions(page: Any) -> tuple[list[int], list[float]]:
    """The console's slot table: wire ids and their x, y, z as the page draws them."""
    return await page.evaluate(  # type: ignore[no-any-return]
        "() => { const s = window.hiveConsole.scene;"
        " return [Array.from(s.ids.subarray(0, s.count)), Array.from(s.xyz.subarray(0, 3 * s.count))]; }")


async def screen(page: Any, node_id: int, kind: str = "knowledge") -> dict[str, float]:
    return await page.evaluate(  # type: ignore[no-any-return]
        "([kind, id]) => window.hiveConsole.screenPosition(window.hiveConsole.wireId(kind, id))",
        [kind, node_id])


@pytest.fixture
async def console_daemon() -> Daemon:
    d = await start_daemon(WITHOUT_AGENTS + "[actors.health]\ninterval_s = 0.3\n")
    yield d  # type: ignore[misc]
    await d.stop()


async def test_the_page_loads_clean_and_draws_500_nodes(browser: Any, console_daemon: Daemon) -> None:
    d = console_daemon
    page, problems = await open_console(browser, d.url + "/")
    await put_graph(d.url, graph(500))
    await page.wait_for_selector("#stats[data-nodes='500']", timeout=20_000)
    await page.wait_for_selector("#stats[data-edges='500']", timeout=20_000)
    await page.wait_for_selector("#health tr[data-actor='gpu_layout']")
    assert await page.text_content("#system") == "system: healthy"
    assert await page.text_content("#cluster") == "cluster: single (one process)"
    await asyncio.sleep(1.5)  # let the layout spread out for the picture
    ARTIFACTS.mkdir(exist_ok=True)
    picture = ARTIFACTS / "console-scene.png"
    await page.locator("#scene canvas").screenshot(path=str(picture))
    # a blank canvas is a few kB as PNG; 500 drawn nodes and their edges are far more
    assert picture.stat().st_size > 40_000, picture.stat().st_size
    assert problems.items == []


async def test_the_health_panel_shows_the_daemons_place_in_a_cluster(
        browser: Any, nats_server: NatsServer) -> None:
    """Issue 22: the console shows the role, the epoch, the leader and the peers."""
    d = await start_daemon(WITHOUT_AGENTS + "[actors.health]\ninterval_s = 0.3\n"
                           f'[cluster]\nnats_url = "{nats_server.url}"\nnode_name = "solo"\n'
                           "lease_ttl_s = 2.0\nconnect_timeout_s = 1.0\n")
    try:
        page, problems = await open_console(browser, d.url + "/")
        await page.wait_for_selector("#cluster[data-role='leader']", timeout=20_000)
        text = await page.text_content("#cluster")
        assert re.fullmatch(r"cluster: solo is leader · epoch \d+ · leader solo · peers solo", text or ""), text
        assert problems.items == []
    finally:
        await d.stop()


async def test_hovering_a_node_shows_its_label_and_a_click_flies_to_it(
        browser: Any, console_daemon: Daemon) -> None:
    d = console_daemon
    await put_graph(d.url, graph(60))
    page, problems = await open_console(browser, d.url + "/")
    await page.wait_for_selector("#stats[data-nodes='60']", timeout=20_000)
    for _ in range(50):  # the layout is still moving: aim again until the pointer is on it
        at = await screen(page, 42)
        await page.mouse.move(at["x"], at["y"])
        await asyncio.sleep(0.05)
        text = await page.text_content("#tooltip")
        if not await page.is_hidden("#tooltip") and text and text.startswith("node-42\n"):
            break
    else:
        raise AssertionError(f"no label for node 42 under the pointer (last: {text!r})")
    assert "knowledge 42" in text
    await page.mouse.down()
    await page.mouse.up()
    await asyncio.sleep(1.0)
    target = await page.evaluate("() => window.hiveConsole.scene.controls.target.toArray()")
    at = await position_of(d.url, 42)
    assert math.dist(target, at) < 25  # the camera now looks at the node (which may drift a little)
    assert problems.items == []


async def test_search_finds_a_node_by_label_and_flies_there(browser: Any, console_daemon: Daemon) -> None:
    d = console_daemon
    await put_graph(d.url, graph(30, prefix="topic"))
    page, _ = await open_console(browser, d.url + "/")
    await page.wait_for_selector("#stats[data-nodes='30']", timeout=20_000)
    await page.fill("#search-input", "topic-17")
    await page.press("#search-input", "Enter")
    await asyncio.sleep(1.0)
    target = await page.evaluate("() => window.hiveConsole.scene.controls.target.toArray()")
    assert math.dist(target, await position_of(d.url, 17)) < 25


async def test_dragging_a_node_pins_it_where_it_was_dropped(browser: Any, console_daemon: Daemon) -> None:
    d = console_daemon
    await put_graph(d.url, graph(20))
    page, problems = await open_console(browser, d.url + "/")
    await page.wait_for_selector("#stats[data-nodes='20']", timeout=20_000)
    before = await position_of(d.url, 3)
    await drag(page, 3, 150, -80)
    await asyncio.sleep(0.5)
    after = await position_of(d.url, 3)
    await asyncio.sleep(1.0)
    assert math.dist(before, after) > 20  # moved by the drag...
    assert math.dist(after, await position_of(d.url, 3)) < 1e-3  # ...and pinned there
    assert problems.items == []


async def wait_rest(url: str, timeout: float = 40.0) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(timeout):
        while True:
            async with session.get(f"{url}/api/health?refresh=true") as r:
                if (await r.json())["components"]["gpu_layout"]["detail"]["at_rest"]:
                    return
            await asyncio.sleep(0.1)


async def test_dragging_a_node_moves_its_neighbourhood_and_the_rest_stays_still(
        browser: Any) -> None:
    """Issue 20's "done when": a drag in the console wakes the dragged node's neighbourhood
    (wake_hops, 2 by default) and nothing else, so the viewer's picture holds."""
    d = await start_daemon(WITHOUT_AGENTS + "[actors.gpu_layout]\nrest_window_s = 0.25\n"
                           "[actors.gpu_layout.params]\ncooling_rate = 0.97\nwarmup_iterations = 20\n")
    try:
        body = graph(150)
        await put_graph(d.url, body)
        page, problems = await open_console(browser, d.url + "/")
        await page.wait_for_selector("#stats[data-nodes='150']", timeout=20_000)
        await wait_rest(d.url)
        before = await knowledge_positions(d.url)
        await drag(page, 3, 120, -60)
        await asyncio.sleep(0.5)
        await wait_rest(d.url)
        after = await knowledge_positions(d.url)
        links = [(e["source"], e["target"]) for e in body["edges"]]
        near = {3}
        for _ in range(2):
            near |= {b for a, b in links if a in near} | {a for a, b in links if b in near}
        moved = {i for i in before if math.dist(before[i], after[i]) > 1e-3}
        assert math.dist(before[3], after[3]) > 20  # the dragged node went where it was put
        assert len(moved - {3}) >= 1, moved  # its neighbourhood followed
        assert moved <= near, sorted(moved - near)  # everything else held still, exactly
        assert len(near) < 40  # the check means something: most of the graph is outside
        assert problems.items == []
    finally:
        await d.stop()


async def test_a_kill_from_the_actor_tree_shows_the_new_incarnation(
        browser: Any, console_daemon: Daemon) -> None:
    d = console_daemon
    page, problems = await open_console(browser, d.url + "/")
    await page.fill("#admin-token", TOKEN)
    await page.click("#admin-token-form button")
    row = "#actors tr[data-path='root/gpu_layout']"
    await page.wait_for_selector(row)
    assert await page.get_attribute(row, "data-incarnation") == "1"
    await page.click(f"{row} button[data-action='kill']")
    try:
        await page.wait_for_selector(f"{row}[data-incarnation='2'][data-restarts='1']", timeout=60_000)
    except PlaywrightTimeout:
        raise AssertionError(await page.inner_html("#actors")) from None
    stored = await page.evaluate("() => [sessionStorage.getItem('hive.adminToken'), document.cookie]")
    assert stored == [TOKEN, ""]  # kept for the tab, never in a cookie
    assert problems.items == []


async def test_a_swarm_spawned_from_the_form_is_listed_live_and_its_agents_drawn(
        browser: Any, claude_flow: list[str], tmp_path: Path) -> None:
    d = await start_daemon(agents_config(tmp_path), state_dir=str(tmp_path))
    try:
        page, problems = await open_console(browser, d.url + "/")
        await page.wait_for_selector("#swarms-panel:not([hidden])")
        await page.fill("#spawn-task", "write a haiku about bees")
        await page.select_option("#spawn-strategy", "mesh")
        await page.click("#spawn-button")
        item = await page.wait_for_selector("#swarms li[data-status='spawning']", timeout=10_000)
        swarm_id = await item.get_attribute("data-swarm")
        await page.wait_for_selector(f"#swarms li[data-swarm='{swarm_id}'][data-status='active']",
                                     timeout=60_000)
        members = "(id) => [...window.hiveConsole.scene.meta.values()].filter(n => n.swarmId === id).length"
        for _ in range(100):
            if await page.evaluate(members, swarm_id) == 2:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the swarm's agents never reached the scene")
        await page.select_option("#filter-swarm", swarm_id)
        await page.wait_for_selector("#stats[data-nodes='2']")
        await page.click(f"#swarms li[data-swarm='{swarm_id}'] button")
        await page.wait_for_selector(f"#swarms li[data-swarm='{swarm_id}'][data-status='completed']",
                                     timeout=60_000)
        assert problems.items == []
    finally:
        await d.stop()


async def test_with_an_api_token_the_page_asks_for_it_before_changing_anything(
        browser: Any) -> None:
    d = await start_daemon(WITHOUT_AGENTS, api_token=API_TOKEN)
    try:
        await put_graph(d.url, graph(10), token=API_TOKEN)
        page, _ = await open_console(browser, d.url + "/")
        await page.wait_for_selector("#tokens-panel:not([hidden])")
        await page.wait_for_selector("#stats[data-nodes='10']", timeout=20_000)
        before = await position_of(d.url, 4)

        async def drag() -> None:
            at = await screen(page, 4)
            await page.mouse.move(at["x"], at["y"])
            await page.mouse.down()
            for step in range(1, 8):
                await page.mouse.move(at["x"] - 12 * step, at["y"] + 10 * step)
                await asyncio.sleep(0.04)
            await page.mouse.up()
            await asyncio.sleep(0.5)

        await drag()
        refused = await position_of(d.url, 4)
        await page.fill("#api-token", API_TOKEN)
        await page.click("#api-token-form button")
        await page.wait_for_selector("#tokens-panel[hidden]", state="attached")
        await asyncio.sleep(0.3)
        await drag()
        pinned = await position_of(d.url, 4)
        await asyncio.sleep(0.5)
        assert math.dist(pinned, await position_of(d.url, 4)) < 1e-3  # pinned once it had the token
        assert math.dist(before, refused) < math.dist(before, pinned)
    finally:
        await d.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def daemon_process(port: int, cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": REPO, "HIVE_ADMIN_TOKEN": TOKEN,
           "HIVE_ACTORS_MCP_ENABLED": "false", "HIVE_ACTORS_HIVE_MIND_ENABLED": "false",
           "HIVE_ACTORS_SPEECH_ENABLED": "false"}
    env.pop("HIVE_API_TOKEN", None)
    return subprocess.Popen([sys.executable, "-m", "hive", "--port", str(port), "--log-format",
                             "json"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, text=True)


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as session, asyncio.timeout(60):
        while True:
            try:
                async with session.get(f"{url}/api/health") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)


async def test_the_page_reconnects_after_the_daemon_restarts(browser: Any, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    first = daemon_process(port, tmp_path)
    try:
        await wait_up(url)
        await put_graph(url, graph(50))
        page, _ = await open_console(browser, url + "/")
        await page.wait_for_selector("#stats[data-nodes='50']", timeout=20_000)
        first.send_signal(signal.SIGTERM)
        first.wait(20)
        await page.wait_for_selector("#connection[data-state='disconnected']", timeout=20_000)
        assert "unreachable" in await page.text_content("#notice")
        second = daemon_process(port, tmp_path)
        try:
            await wait_up(url)
            await page.wait_for_selector("#connection[data-state='connected']", timeout=60_000)
            await put_graph(url, graph(70))
            await page.wait_for_selector("#stats[data-nodes='70']", timeout=30_000)
            assert await page.is_hidden("#notice")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()


async def test_voice_by_microphone_and_by_typing(console_built: None, tmp_path: Path) -> None:
    """Push-to-talk with Chromium's fake microphone playing espeak-ng's "list agents": the
    page streams it as PCM16, shows what was heard and the reply."""
    from playwright.async_api import async_playwright

    raw, wav = tmp_path / "raw.wav", tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(raw), "list agents"], check=True)
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(wav),
                    "pad", "0.3", "6"], check=True)
    d = await start_daemon("[actors.mcp]\nenabled = false\n[actors.hive_mind]\nenabled = false\n")
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=[
                *ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={wav}"])
            try:
                page, problems = await open_console(browser, d.url + "/")
                await page.wait_for_selector("#voice-panel:not([hidden])")
                await page.fill("#command-text", "list agents")
                await page.click("#command-form button")
                async with asyncio.timeout(30):
                    while "agent" not in (await page.text_content("#reply") or ""):
                        await asyncio.sleep(0.1)
                talk = await page.query_selector("#talk")
                box = await talk.bounding_box()
                await page.mouse.move(box["x"] + 5, box["y"] + 5)
                await page.mouse.down()
                await asyncio.sleep(2.5)
                await page.mouse.up()
                async with asyncio.timeout(30):
                    while (await page.text_content("#transcript")) in ("—", None):
                        await asyncio.sleep(0.1)
                assert await page.text_content("#transcript") == "list agents"
                assert problems.items == []
            finally:
                await browser.close()
    finally:
        await d.stop()


async def test_the_page_follows_its_own_rules(console_daemon: Daemon) -> None:
    d = console_daemon
    async with d.session.get(f"{d.url}/") as r:
        assert r.status == 200
        csp = r.headers["Content-Security-Policy"]
        page = await r.text()
    assert "script-src 'self'" in csp and "default-src 'self'" in csp and "unsafe" not in csp
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)  # no inline script
    assert not re.search(r"https?://", page)  # nothing from elsewhere
    for name in ("main.js", "worker.js", "style.css"):
        async with d.session.get(f"{d.url}/console/{name}") as r:
            assert r.status == 200 and r.headers["Content-Security-Policy"] == csp
            body = await r.text()
            assert "https://" not in body.replace("https://threejs.org", "") or name == "main.js"
    for bad in ("../app.py", ".hidden", "nope.js"):
        async with d.session.get(f"{d.url}/console/{bad}") as r:
            assert r.status == 404
    async with d.session.get(f"{d.url}/api/info") as r:
        info = await r.json()
    assert info["actors"] == ["gpu_layout", "health"] and info["apiTokenRequired"] is False


async def test_without_a_build_the_page_says_how_to_make_one(
        console_daemon: Daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console_route, "CONSOLE_DIR", tmp_path)
    async with console_daemon.session.get(f"{console_daemon.url}/") as r:
        assert r.status == 200 and "make ui" in await r.text()


async def test_a_100k_node_graph_over_v3_shows_every_node_within_the_bound(browser: Any) -> None:
    """Issue 21: the console asks for protocol v3 (decoded in its worker); a 100,000-node
    graph, once at rest, is drawn with every node within the v3 bound of GET /api/graph."""
    d = await start_daemon(WITHOUT_AGENTS + "[actors.gpu_layout]\nrest_window_s = 0.25\n"
                           "[actors.gpu_layout.params]\ncooling_rate = 0.9\nwarmup_iterations = 5\n")
    try:
        n = 100_000
        page, problems = await open_console(browser, d.url + "/")
        await put_graph(d.url, graph(n))
        await page.wait_for_function("(n) => window.hiveConsole.scene.count === n", arg=n,
                                     timeout=60_000)
        await wait_rest(d.url, 120)
        truth = await knowledge_positions(d.url)
        await asyncio.sleep(1.0)  # the last frames through the worker to the page
        ids, xyz = await drawn_positions(page)
        assert len(ids) == n
        assert await page.evaluate("() => document.body.dataset.protocol") == "3"
        bound = 5000.0 / 65535 + 5000.0 * 2**-23
        worst = 0.0
        for k, wire in enumerate(ids):
            assert wire & 0x40000000, wire
            expected = truth[wire & 0x3FFFFFFF]
            worst = max(worst, *(abs(xyz[3 * k + a] - expected[a]) for a in range(3)))
        assert worst <= bound, worst
        assert problems.items == []
    finally:
        await d.stop()


# The last commit before protocol v3 (issue 21): a daemon that ignores "protocol" and streams v2.
BEFORE_V3 = "e890d83"


async def test_the_console_falls_back_to_v2_against_a_daemon_before_v3(
        browser: Any, tmp_path: Path) -> None:
    """Today's console served by a real daemon of the commit before v3 (from this repo's own
    history, as a subprocess): it asks for v3, is confirmed without it, reads v2, and draws
    every node where GET /api/graph says."""
    old = tmp_path / "before-v3"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_V3],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    shutil.copytree(console_route.CONSOLE_DIR, old / "transport" / "console_static")
    config = tmp_path / "hive.toml"
    config.write_text(WITHOUT_AGENTS)
    daemon = DaemonProcess(spawn("--config", str(config), cwd=tmp_path,
                                 env={"PYTHONPATH": str(old)}))
    try:
        ready = await asyncio.to_thread(daemon.wait_event, "daemon.ready", 180)
        url = f"http://127.0.0.1:{ready['port']}"
        await put_graph(url, graph(40))
        page, problems = await open_console(browser, url + "/")
        await page.wait_for_selector("#stats[data-nodes='40']", timeout=20_000)
        await page.wait_for_function("() => window.hiveConsole.scene.count === 40", timeout=10_000)
        assert await page.evaluate("() => document.body.dataset.protocol") == "2"
        truth = await knowledge_positions(url)
        ids, _ = await drawn_positions(page)
        assert sorted(i & 0x3FFFFFFF for i in ids) == sorted(truth)
        assert problems.items == []
    finally:
        await asyncio.to_thread(daemon.stop)


async def test_the_consoles_v3_decoder_survives_compaction_and_refuses_bad_deltas(
        browser: Any, console_daemon: Daemon) -> None:
    """The console's own frames.js in Chromium, fed by the server's encoder. Found in review:
    Positions.retain (dropping removed nodes) compacted the slots under the v3 keyframe's
    index-to-slot map, and later deltas drew nodes into their neighbours' slots. And a bad
    delta must leave the state as it was."""
    import numpy as np

    from transport.codec_v3 import Chain, Follower

    chain = Chain()
    rng = np.random.default_rng(4)
    first_ids = (np.arange(10) | 0x40000000).astype(np.uint32)
    chain.advance(first_ids, rng.normal(size=(10, 3)).astype(np.float32) * 100, 5000.0)
    key1 = chain.frame_for(None)
    ids = np.concatenate([first_ids[[0, 1, 2, 4, 5, 6, 7, 8, 9]], [0x40000000 | 10]]).astype(np.uint32)
    pos = rng.normal(size=(10, 3)).astype(np.float32) * 100
    chain.advance(ids, pos, 5000.0)  # node 3 left, node 10 joined: a new key
    key2, at = chain.frame_for(None), chain.state
    pos[9] += 900.0  # far
    pos[:4] += 2.0  # near
    chain.advance(ids, pos, 5000.0)
    delta = chain.frame_for(at)
    truth = Follower()
    truth.apply(key2)
    truth.apply(delta)
    page, problems = await open_console(browser, console_daemon.url + "/")
    result = await page.evaluate("""async ([key1, key2, delta, keep]) => {
        const m = await import("/console/frames.js");
        const buf = (a) => new Uint8Array(a).buffer;
        const positions = new m.Positions(4);
        const v3 = new m.V3State();
        v3.apply(buf(key1), positions);
        v3.apply(buf(key2), positions);
        positions.retain(new Set(keep));
        v3.rebind(positions);
        let refused = "";
        try { v3.apply(buf(delta.slice(0, delta.length - 4)), positions); }
        catch (e) { refused = (e instanceof m.FrameError ? "FrameError: " : "other: ") + e.message; }
        const seqAfterRefusal = v3.seq;
        v3.apply(buf(delta), positions);
        const out = {};
        for (const id of keep) {
            const s = positions.slotOf(id);
            out[id] = Array.from(positions.xyz.subarray(3 * s, 3 * s + 3));
        }
        return { out, refused, seqAfterRefusal, seq: v3.seq, count: positions.count };
    }""", [list(key1), list(key2), list(delta), [int(i) for i in ids]])
    assert result["refused"].startswith("FrameError"), result["refused"]
    assert result["seqAfterRefusal"] == at[1] and result["seq"] == truth.seq
    assert result["count"] == 10
    expected = truth.positions()
    for k, wire in enumerate(ids.tolist()):
        assert np.allclose(result["out"][str(wire)], expected[k], atol=1e-3), wire
    assert problems.items == []
