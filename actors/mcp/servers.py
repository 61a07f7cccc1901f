"""Where the pool's connections come from: a TCP endpoint, or stdio server processes.

A stdio member runs in a working folder of its own (``<state>/member-<i>/gen-<g>``), because
claude-flow keeps its state in ``./.claude-flow`` and several processes sharing one folder
fight over a lock file.

Keeping a call's cost flat: claude-flow appends a receipt to ``.claude-flow/policy/state.json``
on every tool call and re-reads, re-verifies and rewrites the whole file each time (+4.7 ms per
100 calls, measured). :meth:`StdioConnector.maintain` empties that receipt list every few
hundred calls while the server runs, under the server's own lock file (``state.lock``, created
exclusively, as the server itself does), keeping every other key: agents and swarms live in
other files and are untouched. If that ever fails (another policy mode, a changed format), the
pool falls back to :meth:`StdioConnector.recycle`: a new process in a fresh folder seeded with
the old one's state minus the growing file. Details and measurements: docs/peers.md.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import structlog

from actors.mcp.errors import MaintenanceFailed
from actors.mcp.jsonrpc import JsonRpcConnection, LineChannel, ProcessChannel, SocketChannel

__all__ = [
    "GROWING_FILES",
    "LOCK_WAIT_S",
    "POLICY_LOCK",
    "POLICY_STATE",
    "STALE_LOCKS",
    "StdioConnector",
    "TcpConnector",
    "compact_policy_log",
]


log = structlog.get_logger("actors.mcp.servers")

# Files a recycled claude-flow server starts without: they grow with every call and hold no
# agent or swarm state (see docs/peers.md for the measurements).
GROWING_FILES: tuple[str, ...] = (".claude-flow/policy/state.json",)
# Lock files a killed server leaves behind; the next server in that folder would wait on them
# and fail ("policy-state-lock-timeout"). The folder is this member's alone, and its previous
# process is gone when a new one starts, so they are removed first.
STALE_LOCKS: tuple[str, ...] = (".claude-flow/policy/state.lock",)
POLICY_STATE = ".claude-flow/policy/state.json"
POLICY_LOCK = ".claude-flow/policy/state.lock"
LOCK_WAIT_S = 5.0


def compact_policy_log(folder: Path, lock_wait_s: float = LOCK_WAIT_S) -> int:
    """Empty claude-flow's receipt list in ``folder`` under the server's own lock; returns the
    bytes saved. The chain of receipts is hash-linked, so it is emptied, never trimmed."""
    state, lock = folder / POLICY_STATE, folder / POLICY_LOCK
    if not state.exists():
        return 0
    deadline = time.monotonic() + lock_wait_s
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise MaintenanceFailed(f"{lock} held for {lock_wait_s} s") from None
            time.sleep(0.005)
    try:
        os.write(fd, json.dumps({"pid": os.getpid(), "acquiredAt": int(time.time() * 1000)}).encode())
        os.close(fd)
        before = state.stat().st_size
        try:
            data = json.loads(state.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise MaintenanceFailed(f"{state} is not JSON: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("receipts", []), list):
            raise MaintenanceFailed(f"{state} has an unexpected shape")
        if data.get("mode", "legacy") not in ("legacy", None):
            raise MaintenanceFailed(f"policy mode {data.get('mode')!r} protects {state}")
        data["receipts"] = []
        tmp = state.with_name(f"state.json.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o600)
        os.replace(tmp, state)  # atomic, as the server's own writes are
        return before - state.stat().st_size
    finally:
        os.unlink(lock)


def _handshake(channel: LineChannel, index: int, timeout: float) -> JsonRpcConnection:
    """A started, initialized connection over ``channel``, or the channel closed and the error."""
    conn = JsonRpcConnection(channel, f"mcp-{index}")
    conn.start()
    try:
        conn.initialize(timeout)
    except Exception:
        conn.close()
        raise
    return conn


class TcpConnector:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port

    def connect(self, index: int, timeout: float) -> JsonRpcConnection:
        return _handshake(SocketChannel(self.host, self.port, timeout), index, timeout)

    def recycle(self, index: int, old: JsonRpcConnection, timeout: float) -> JsonRpcConnection:
        new = self.connect(index, timeout)
        old.close()
        return new

    def maintain(self, index: int, conn: JsonRpcConnection) -> None:
        """Nothing to do: a TCP server's files are not ours to touch."""

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
        channel = ProcessChannel(self.command, cwd=folder, env={"CLAUDE_FLOW_AUTO_UPDATE": "false"},
                                 stderr_path=folder.parent / "server.log")
        return _handshake(channel, index, timeout)

    def connect(self, index: int, timeout: float) -> JsonRpcConnection:
        return self._start(index, self.folder(index, self._latest(index)), timeout)

    def maintain(self, index: int, conn: JsonRpcConnection) -> None:
        compact_policy_log(self.folder(index, self._latest(index)))

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
