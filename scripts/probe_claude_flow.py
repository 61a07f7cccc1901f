#!/usr/bin/env python3
"""Probe the real claude-flow MCP server (stdio) installed by scripts/install-agents.sh.

A raw asyncio client (newline-delimited JSON-RPC 2.0) so the figures are the server's, not
an SDK's. Three probes:

  shapes    print the result of swarm_init, agent_spawn, agent_list, swarm_status,
            swarm_shutdown and an unknown tool (the wire shapes a backend must parse)
  slowdown  latency of calls 1-100 vs calls N..N+100 in one working folder (the server
            rewrites .claude-flow/policy/state.json on every call, so calls slow down)
  flat      keep calling for --calls calls, compacting the receipt ledger live every 250
            calls, and print latency per 1,000 calls (is the cost flat?)
  recycle   find which files hold agent/swarm state and which one grows, then restart the
            server in a fresh folder seeded with the state minus the growing file and
            check that agents survive and latency is back to the first-hundred level

Usage: .venv/bin/python scripts/probe_claude_flow.py {shapes|slowdown|recycle|flat|all} [--calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / ".agents" / "node_modules" / "claude-flow" / "bin" / "cli.js"


class McpStdio:
    """One `claude-flow mcp start` child process with its own working folder."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.proc: asyncio.subprocess.Process | None = None
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.stray: list[str] = []  # lines that are neither our responses nor JSON

    async def start(self) -> float:
        t0 = time.perf_counter()
        self.proc = await asyncio.create_subprocess_exec(
            "node",
            str(CLI),
            "mcp",
            "start",
            cwd=self.cwd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            limit=64 * 1024 * 1024,
        )
        self._reader = asyncio.create_task(self._read())
        await self.request(
            "initialize",
            {
                "protocolVersion": "2024-11-05",
                "capabilities": {},
                "clientInfo": {"name": "hive-probe", "version": "0"},
            },
        )
        await self.notify("notifications/initialized")
        return time.perf_counter() - t0

    async def _read(self) -> None:
        assert self.proc and self.proc.stdout
        while line := await self.proc.stdout.readline():
            try:
                msg = json.loads(line)
            except ValueError:
                self.stray.append(line.decode(errors="replace").rstrip())
                continue
            msg_id = msg.get("id") if isinstance(msg, dict) else None
            fut = self._pending.pop(msg_id, None) if isinstance(msg_id, int) else None
            if fut is None:
                self.stray.append(line.decode(errors="replace").rstrip()[:200])
            elif not fut.done():
                fut.set_result(msg)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("server closed stdout"))

    async def _send(self, msg: dict[str, Any]) -> None:
        assert self.proc and self.proc.stdin
        self.proc.stdin.write(json.dumps(msg).encode() + b"\n")
        await self.proc.stdin.drain()

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self._send({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})

    async def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = fut
        await self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params or {}})
        return await asyncio.wait_for(fut, 60)

    async def call(self, tool: str, args: dict[str, Any] | None = None) -> Any:
        """tools/call; returns the decoded JSON text of the result, or the raw error object."""
        msg = await self.request("tools/call", {"name": tool, "arguments": args or {}})
        if "error" in msg:
            return {"__jsonrpc_error__": msg["error"]}
        content = msg["result"].get("content") or [{}]
        text = content[0].get("text", "")
        try:
            return json.loads(text)
        except ValueError:
            return {"__text__": text, "__isError__": msg["result"].get("isError")}

    async def stop(self) -> None:
        if not self.proc:
            return
        if self.proc.stdin:
            self.proc.stdin.close()  # the server exits when stdin closes
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self._reader:
            await self._reader


def tree(root: Path) -> dict[str, int]:
    """Every file under root with its size (relative paths)."""
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


async def timed_calls(srv: McpStdio, n: int, tool: str = "agent_list") -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await srv.call(tool, {})
        out.append((time.perf_counter() - t0) * 1000)
    return out


def summary(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20)
    return f"median {statistics.median(ms):.1f} ms, p95 {q[18]:.1f} ms, mean {statistics.fmean(ms):.1f} ms"


async def probe_shapes(work: Path) -> None:
    srv = McpStdio(work)
    print(f"spawn+initialize: {await srv.start():.2f} s")
    tools = await srv.request("tools/list")
    print(f"tools: {len(tools['result']['tools'])}")
    calls: list[tuple[str, dict[str, Any]]] = [
        ("swarm_init", {"topology": "hierarchical", "maxAgents": 8}),
        ("agent_spawn", {"agentType": "researcher"}),
        ("agent_spawn", {"agentType": "coder"}),
        ("agent_list", {}),
        ("swarm_status", {}),
        ("agent_spawn", {}),
        ("swarm_shutdown", {}),
        ("agent_list", {}),
        ("swarm_status", {}),
        ("no_such_tool", {}),
    ]
    for tool, args in calls:
        print(f"\n== {tool} {json.dumps(args)}")
        print(json.dumps(await srv.call(tool, args), indent=1)[:3000])
    print("\nstray stdout lines:", srv.stray)
    await srv.stop()
    print("\nfiles after:", json.dumps(tree(work), indent=1))


async def probe_slowdown(work: Path, calls: int) -> None:
    srv = McpStdio(work)
    await srv.start()
    await srv.call("swarm_init", {"topology": "mesh", "maxAgents": 8})
    first = await timed_calls(srv, 100)
    print(f"calls 1-100: {summary(first)}")
    done = 100
    while done < calls:
        n = min(500, calls - done)
        chunk = await timed_calls(srv, n)
        done += n
        print(f"  after {done} calls: last {n} {summary(chunk)}")
    late = await timed_calls(srv, 100)
    print(f"calls {done + 1}-{done + 100}: {summary(late)}")
    await srv.stop()
    sizes = tree(work)
    print("largest files:", sorted(sizes.items(), key=lambda kv: -kv[1])[:6])


POLICY = Path(".claude-flow") / "policy"


def compact_policy_state(root: Path) -> tuple[int, int]:
    """(bytes before, after) of the project's own compaction (actors.mcp.servers)."""
    from actors.mcp.servers import compact_policy_log

    state = root / POLICY / "state.json"
    before = state.stat().st_size
    compact_policy_log(root)
    return before, state.stat().st_size


async def snapshot(srv: McpStdio) -> tuple[list[str], Any, Any]:
    agents = await srv.call("agent_list", {})
    status = await srv.call("swarm_status", {})
    return sorted(a["agentId"] for a in agents["agents"]), status.get("swarmId"), status.get("status")


async def probe_recycle(base: Path, calls: int) -> None:
    old = base / "gen0"
    old.mkdir()
    srv = McpStdio(old)
    await srv.start()
    print("swarm_init:", (await srv.call("swarm_init", {"topology": "mesh", "maxAgents": 8}))["swarmId"])
    for t in ("researcher", "coder", "tester"):
        await srv.call("agent_spawn", {"agentType": t})
    before = tree(old)
    snap0 = await snapshot(srv)
    print("gen0 state:", snap0)
    first = await timed_calls(srv, 100)
    await timed_calls(srv, calls)
    late = await timed_calls(srv, 100)
    after = tree(old)
    await srv.stop()
    print(f"gen0 calls 1-100: {summary(first)}")
    print(f"gen0 after {calls} more: {summary(late)}")
    print("files that changed during the polling (bytes before -> after):")
    for k in sorted(set(before) | set(after)):
        if before.get(k) != after.get(k):
            print(f"  {k}: {before.get(k)} -> {after.get(k)}")
    print("all files:", after)

    async def check(label: str, folder: Path) -> None:
        srv = McpStdio(folder)
        t = await srv.start()
        snap = await snapshot(srv)
        lat = await timed_calls(srv, 100)
        await srv.stop()
        print(f"{label}: start {t:.2f} s; same agents+swarm: {snap == snap0}; next 100: {summary(lat)}")
        if snap != snap0:
            print("   got", snap)

    # A: new process, fresh folder seeded with everything except policy/state.json.
    a = base / "A-fresh-without-policy"
    shutil.copytree(old, a, ignore=shutil.ignore_patterns("state.json", "state.lock", "*.tmp"))
    print("A seeded without:", sorted(set(after) - set(tree(a))))
    await check("A fresh folder, no policy/state.json", a)

    # A2: only the two state files agents/store.json + swarm/swarm-state.json (no graph db).
    a2 = base / "A2-only-agents-swarm-json"
    for rel in ("agents/store.json", "swarm/swarm-state.json"):
        (a2 / ".claude-flow" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(old / ".claude-flow" / rel, a2 / ".claude-flow" / rel)
    await check("A2 fresh folder, only agents/store.json + swarm/swarm-state.json", a2)

    # B: fresh folder, full copy with the receipt ledger emptied (keeps mode/rules/approvals).
    b = base / "B-fresh-truncated"
    shutil.copytree(old, b)
    print("B compact:", compact_policy_state(b))
    await check("B fresh folder, policy receipts emptied", b)

    # C: no restart at all: compact the ledger under the server's lock while it runs.
    c = base / "C-live"
    shutil.copytree(old, c)
    srv = McpStdio(c)
    await srv.start()
    slow = await timed_calls(srv, 100)
    sizes = compact_policy_state(c)
    snap = await snapshot(srv)
    fast = await timed_calls(srv, 100)
    await srv.stop()
    print(
        f"C live compaction {sizes}: before {summary(slow)}; after {summary(fast)}; same agents+swarm: {snap == snap0}"
    )


async def probe_flat(work: Path, calls: int, every: int = 250) -> None:
    """Live compaction (variant C) over many calls: is the per-call cost flat?"""
    srv = McpStdio(work)
    await srv.start()
    await srv.call("swarm_init", {"topology": "mesh", "maxAgents": 8})
    for t in ("researcher", "coder"):
        await srv.call("agent_spawn", {"agentType": t})
    snap0 = await snapshot(srv)
    window: list[float] = []
    compact_ms: list[float] = []
    for i in range(1, calls + 1):
        window += await timed_calls(srv, 1, "swarm_status" if i % 2 else "agent_list")
        if i % every == 0:
            t0 = time.perf_counter()
            compact_policy_state(work)
            compact_ms.append((time.perf_counter() - t0) * 1000)
        if i % 1000 == 0:
            print(f"  calls {i - 999}-{i}: {summary(window)}")
            window = []
    snap = await snapshot(srv)
    await srv.stop()
    size = (work / POLICY / "state.json").stat().st_size
    print(
        f"compaction every {every} calls: {len(compact_ms)} times, median "
        f"{statistics.median(compact_ms):.1f} ms; state.json now {size} bytes; "
        f"agents+swarm unchanged: {snap == snap0}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("probe", choices=["shapes", "slowdown", "recycle", "flat", "all"])
    ap.add_argument("--calls", type=int, default=2000, help="calls before the late sample")
    ap.add_argument("--keep", action="store_true", help="keep the working folders")
    a = ap.parse_args()
    if not CLI.exists():
        print(f"{CLI} missing: run scripts/install-agents.sh", file=sys.stderr)
        return 1
    base = Path(tempfile.mkdtemp(prefix="cf-probe-"))
    try:
        for probe in ["shapes", "slowdown", "recycle", "flat"] if a.probe == "all" else [a.probe]:
            work = base / probe
            work.mkdir()
            print(f"\n######## {probe} ({work})")
            if probe == "shapes":
                asyncio.run(probe_shapes(work))
            elif probe == "slowdown":
                asyncio.run(probe_slowdown(work, a.calls))
            elif probe == "recycle":
                asyncio.run(probe_recycle(work, a.calls))
            else:
                asyncio.run(probe_flat(work, a.calls))
    finally:
        if a.keep:
            print("kept", base)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("NODE_NO_WARNINGS", "1")
    os.environ.setdefault("CLAUDE_FLOW_AUTO_UPDATE", "false")  # no update checks from probes
    sys.exit(main())
