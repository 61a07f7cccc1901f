"""Where the pool's connections come from: a TCP endpoint, or stdio server processes.

A stdio member runs in a working folder of its own (``<state>/member-<i>/gen-<g>``), because
claude-flow keeps its state in ``./.claude-flow`` and several processes sharing one folder
fight over a lock file. Recycling starts generation ``g+1`` in a fresh folder seeded with the
previous folder's state minus the files that only grow (claude-flow's per-call policy log),
which is what makes a call cost the same after 10,000 calls as after 10.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import structlog

from actors.jsonrpc import JsonRpcConnection, ProcessChannel, SocketChannel

log = structlog.get_logger("actors.mcp_servers")

# Files a recycled claude-flow server starts without: they grow with every call and hold no
# agent or swarm state (see docs/peers.md for the measurements).
GROWING_FILES: tuple[str, ...] = (".claude-flow/policy/state.json",)
# Lock files a killed server leaves behind; the next server in that folder would wait on them
# and fail ("policy-state-lock-timeout"). The folder is this member's alone, and its previous
# process is gone when a new one starts, so they are removed first.
STALE_LOCKS: tuple[str, ...] = (".claude-flow/policy/state.lock",)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def default_claude_flow() -> list[str] | None:
    """The project-local claude-flow (``make agents``), if installed."""
    cli = repo_root() / ".agents" / "node_modules" / "claude-flow" / "bin" / "cli.js"
    node = shutil.which("node")
    if cli.is_file() and node:
        return [node, str(cli)]
    return None


class TcpConnector:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def connect(self, index: int, timeout: float) -> JsonRpcConnection:
        conn = JsonRpcConnection(SocketChannel(self.host, self.port, timeout), f"mcp-{index}")
        conn.start()
        try:
            conn.initialize(timeout)
        except Exception:
            conn.close()
            raise
        return conn

    def recycle(self, index: int, old: JsonRpcConnection, timeout: float) -> JsonRpcConnection:
        new = self.connect(index, timeout)
        old.close()
        return new

    def close(self) -> None:
        pass


class StdioConnector:
    def __init__(self, command: Sequence[str], state_dir: Path,
                 growing_files: Sequence[str] = GROWING_FILES) -> None:
        if not command:
            raise ValueError("an MCP stdio command is needed (e.g. claude-flow mcp start)")
        self.command = list(command)
        self.state_dir = Path(state_dir)
        self.growing_files = tuple(growing_files)
        self._generation: dict[int, int] = {}

    def folder(self, index: int, generation: int) -> Path:
        return self.state_dir / f"member-{index}" / f"gen-{generation}"

    def _latest(self, index: int) -> int:
        """The newest generation folder on disk: a restarted daemon carries on from it."""
        if index not in self._generation:
            base = self.state_dir / f"member-{index}"
            gens = [int(p.name[4:]) for p in base.glob("gen-*") if p.name[4:].isdigit()]
            self._generation[index] = max(gens, default=1)
        return self._generation[index]

    def _start(self, index: int, folder: Path, timeout: float) -> JsonRpcConnection:
        folder.mkdir(parents=True, exist_ok=True)
        for name in STALE_LOCKS:
            (folder / name).unlink(missing_ok=True)
        channel = ProcessChannel(self.command, cwd=folder,
                                 stderr_path=folder.parent / "server.log")
        conn = JsonRpcConnection(channel, f"mcp-{index}")
        conn.start()
        try:
            conn.initialize(timeout)
        except Exception:
            conn.close()
            raise
        return conn

    def connect(self, index: int, timeout: float) -> JsonRpcConnection:
        return self._start(index, self.folder(index, self._latest(index)), timeout)

    def recycle(self, index: int, old: JsonRpcConnection, timeout: float) -> JsonRpcConnection:
        generation = self._latest(index)
        old_folder = self.folder(index, generation)
        new_folder = self.folder(index, generation + 1)
        if new_folder.exists():
            shutil.rmtree(new_folder)
        shutil.copytree(old_folder, new_folder, symlinks=True)
        for name in self.growing_files:
            (new_folder / name).unlink(missing_ok=True)
        new = self._start(index, new_folder, timeout)
        self._generation[index] = generation + 1
        old.close()
        shutil.rmtree(old_folder, ignore_errors=True)
        return new

    def close(self) -> None:
        pass
