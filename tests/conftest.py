"""Shared fixtures: a real daemon app (tree + aiohttp) on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from hive.config import load_config
from hive.daemon import assemble
from hive.tree import build_root
from supervisor import SupervisionTree
from tests.peers.podman import PodmanError, PodmanService
from transport.services import SERVICES, Services

TOKEN = "test-admin-token"
JSON = {"Content-Type": "application/json"}  # changes take JSON only (transport.security)
# The front-end tests run without the agents' planes and speech (they have tests of their own,
# with real peers): no claude-flow processes or speech decoders for every app started here.
WITHOUT_AGENTS = ("[actors.mcp]\nenabled = false\n[actors.hive_mind]\nenabled = false\n"
                  "[actors.speech]\nenabled = false\n")


@dataclass
class Daemon:
    url: str
    ws_url: str
    tree: SupervisionTree
    app: web.Application
    session: aiohttp.ClientSession
    server: TestServer

    async def stop(self) -> None:
        """Client session, then the server, then the actor tree (in reverse order)."""
        await self.session.close()
        await self.server.close()
        await asyncio.get_running_loop().run_in_executor(None, self.tree.stop, 10.0)

    @property
    def services(self) -> Services:
        return self.app[SERVICES]

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKEN}"}


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> aiohttp.WSMessage:
    """The next message within ``timeout`` seconds. Not ``ws.receive(timeout=...)``: that restarts
    its timer after every server ping it answers, so it never times out while the server pings
    more often than the timeout."""
    async with asyncio.timeout(timeout):
        return await ws.receive()


async def start_daemon(config_text: str = WITHOUT_AGENTS, **server: Any) -> Daemon:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as f:
        f.write(config_text)
    try:
        config = load_config(f.name, env={}, overrides={"server": {"admin_token": TOKEN, **server}})
    finally:
        os.unlink(f.name)
    tree = SupervisionTree(build_root(config))
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, tree.start)
    app = assemble(tree, config, loop)
    server_ = TestServer(app, host="127.0.0.1", port=0)
    await server_.start_server()
    base = f"http://127.0.0.1:{server_.port}"
    session = aiohttp.ClientSession()
    return Daemon(base, base.replace("http", "ws"), tree, app, session, server_)


@pytest.fixture
async def daemon() -> AsyncIterator[Daemon]:
    d = await start_daemon(WITHOUT_AGENTS + "[actors.health]\ninterval_s = 0.2\n")
    yield d
    await d.stop()


# -- the real claude-flow MCP server (installed by scripts/install-agents.sh, cached) ----------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def claude_flow() -> list[str]:
    """``[node, cli.js]`` of the project's claude-flow; installs it on first use (minutes)."""
    import shutil
    import subprocess

    script = os.path.join(REPO, "scripts", "install-agents.sh")
    done = subprocess.run(["bash", script], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"make agents failed:\n{done.stdout}\n{done.stderr}"
    node = shutil.which("node")
    assert node, "node is not on PATH (apt-get install nodejs npm)"
    return [node, os.path.join(REPO, ".agents", "node_modules", "claude-flow", "bin", "cli.js")]


# -- podman's Docker Engine API (installed by scripts/install-podman.sh) ----------------------


@pytest.fixture
def podman_service(tmp_path: Path) -> Iterator[PodmanService]:
    """A started service in its own state folder; always torn down, also when a test fails."""
    svc = PodmanService()
    try:
        svc.start(tmp_path / "podman")
    except PodmanError as exc:
        pytest.fail(f"podman peer unavailable: {exc}", pytrace=False)
    try:
        yield svc
    finally:
        svc.stop()
        # stop() raises on stragglers; this guards against a regression in stop() itself.
        assert svc.leftover_pids() == [], "podman namespace processes survived stop()"
        assert not (tmp_path / "podman").exists(), "state folder survived stop()"
