"""Swarm lifecycle backends for the hive-mind actor: the same session logic over two runners.

A session is one hive-mind in a folder of its own (``<root>/<uuid>``), driven with the
claude-flow CLI: ``hive-mind init`` (topology, max agents), ``hive-mind task`` (the task text,
priority), ``hive-mind spawn`` (workers), ``hive-mind status --format json``, and
``hive-mind shutdown``. The folder *is* the session's record: listing folders and asking each
for its status rebuilds everything after a restart, so a crash of the actor loses no swarm.

The runner decides where the commands run: :class:`LocalRunner` (a subprocess on this host,
the embedded default) or :class:`DockerRunner` (``exec_run`` in the agents' container). Every
command is an argv list; a task text is one argument, never shell.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from actors.hive_mind.errors import BackendError, CommandFailed, UnknownSession
from actors.hive_mind.messages import STRATEGY_TOPOLOGY, Session, SpawnRequest, normalise_priority

__all__ = [
    "CLI_PRIORITY",
    "QUIET_CLI_ENV",
    "DockerRunner",
    "LocalRunner",
    "Result",
    "Runner",
    "SessionManager",
    "map_status",
]


log = structlog.get_logger("actors.hive_mind.backend")

CLI_PRIORITY = {"low": "low", "medium": "normal", "high": "high"}  # claude-flow's words
# The CLI's environment: no colour codes in what we parse, no update checks writing to $HOME.
QUIET_CLI_ENV = {"NO_COLOR": "1", "CLAUDE_FLOW_AUTO_UPDATE": "false"}
_SESSION_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def map_status(raw: str | None) -> str:
    """The original system's mapping, plus claude-flow's own words."""
    value = (raw or "").lower()
    if value in ("created", "starting", "initialized", "initializing", "spawning"):
        return "spawning"
    if value in ("running", "active"):
        return "active"
    if value in ("paused", "completing", "completed", "failed"):
        return value
    if value in ("offline", "shutdown", "stopped", "terminated"):
        return "completed"
    if value in ("error", "crashed"):
        return "failed"
    return "unknown"


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    stderr: str = ""


class Runner(Protocol):
    """Runs argv lists somewhere (here or in a container) and reads small files there."""

    def run(self, argv: Sequence[str], cwd: str, timeout: float) -> Result: ...

    def make_dir(self, path: str) -> None: ...

    def list_dir(self, path: str) -> list[str]: ...

    def read_text(self, path: str) -> str | None: ...

    def remove_dir(self, path: str) -> None: ...

    def health(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


class LocalRunner:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = {**os.environ, **QUIET_CLI_ENV, **(env or {})}

    def run(self, argv: Sequence[str], cwd: str, timeout: float) -> Result:
        try:
            done = subprocess.run(list(argv), cwd=cwd, env=self.env, capture_output=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError as exc:
            raise BackendError(f"cannot run {argv[0]}: {exc}") from None
        except subprocess.TimeoutExpired:
            raise BackendError(f"{posixpath.basename(argv[0])} timed out after {timeout} s") from None
        return Result(done.returncode, done.stdout.decode(errors="replace"),
                      done.stderr.decode(errors="replace"))

    def make_dir(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def list_dir(self, path: str) -> list[str]:
        p = Path(path)
        return sorted(c.name for c in p.iterdir() if c.is_dir()) if p.is_dir() else []

    def read_text(self, path: str) -> str | None:
        try:
            return Path(path).read_text(encoding="utf-8")
        except OSError:
            return None

    def remove_dir(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def health(self) -> dict[str, Any]:
        usage = shutil.disk_usage(".")
        return {"running": True, "disk_free_gb": round(usage.free / 1e9, 2), "where": "local"}

    def describe(self) -> str:
        return "local"


class DockerRunner:
    """``docker exec`` through the Docker Engine API (podman's works the same)."""

    def __init__(self, container: str, base_url: str = "", timeout: float = 30.0) -> None:
        import docker

        self.container_name = container
        self.timeout = timeout
        try:
            self.client = (docker.DockerClient(base_url=base_url, timeout=int(timeout))
                           if base_url else docker.from_env(timeout=int(timeout)))
        except Exception as exc:  # noqa: BLE001 - the engine may be absent: say so later
            raise BackendError(f"Docker engine unreachable: {exc}") from None

    def _container(self) -> Any:
        import docker

        try:
            return self.client.containers.get(self.container_name)
        except docker.errors.NotFound:
            raise BackendError(f"container {self.container_name!r} not found") from None
        except Exception as exc:  # noqa: BLE001 - requests/docker errors of every kind
            raise BackendError(f"Docker engine unreachable: {exc}") from None

    def run(self, argv: Sequence[str], cwd: str, timeout: float) -> Result:
        container = self._container()
        try:
            code, (out, err) = container.exec_run(list(argv), workdir=cwd or None, demux=True,
                                                  environment=QUIET_CLI_ENV)
        except Exception as exc:  # noqa: BLE001 - the engine failed mid-call
            raise BackendError(f"docker exec failed: {exc}") from None
        return Result(int(code if code is not None else -1), (out or b"").decode(errors="replace"),
                      (err or b"").decode(errors="replace"))

    def make_dir(self, path: str) -> None:
        result = self.run(["mkdir", "-p", path], "/", self.timeout)
        if result.code:
            raise BackendError(f"mkdir {path} failed in the container: {result.stderr.strip()}")

    def list_dir(self, path: str) -> list[str]:
        result = self.run(["ls", "-1", path], "/", self.timeout)
        return sorted(line for line in result.stdout.splitlines() if line) if result.code == 0 else []

    def read_text(self, path: str) -> str | None:
        result = self.run(["cat", path], "/", self.timeout)
        return result.stdout if result.code == 0 else None

    def remove_dir(self, path: str) -> None:
        self.run(["rm", "-rf", path], "/", self.timeout)

    def health(self) -> dict[str, Any]:
        """Running, CPU < 90 %, memory < 90 %, disk > 1 GB, and an answer within 10 s."""
        started = time.monotonic()
        container = self._container()
        info: dict[str, Any] = {"running": container.status == "running", "where": "docker",
                                "container": self.container_name}
        try:
            stats = container.stats(stream=False)
            cpu = stats.get("cpu_stats", {})
            pre = stats.get("precpu_stats", {})
            delta = cpu.get("cpu_usage", {}).get("total_usage", 0) - pre.get("cpu_usage", {}).get(
                "total_usage", 0)
            system = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
            info["cpu_percent"] = round(100.0 * delta / system * cpu.get("online_cpus", 1), 2) \
                if system > 0 else 0.0
            mem = stats.get("memory_stats", {})
            if mem.get("limit"):
                info["memory_percent"] = round(100.0 * mem.get("usage", 0) / mem["limit"], 2)
        except Exception as exc:  # noqa: BLE001 - stats are best effort
            info["stats_error"] = str(exc)[:200]
        df = self.run(["df", "-k", "/"], "/", self.timeout)
        if df.code == 0 and len(df.stdout.splitlines()) > 1:
            fields = df.stdout.splitlines()[1].split()
            if len(fields) >= 4 and fields[3].isdigit():
                info["disk_free_gb"] = round(int(fields[3]) * 1024 / 1e9, 2)
        info["response_s"] = round(time.monotonic() - started, 3)
        info["healthy"] = bool(
            info["running"] and info.get("cpu_percent", 0) < 90
            and info.get("memory_percent", 0) < 90 and info.get("disk_free_gb", 2) > 1
            and info["response_s"] < 10)
        return info

    def describe(self) -> str:
        return f"docker:{self.container_name}"


@dataclass
class SessionManager:
    """Hive-mind sessions in folders, over any runner."""

    runner: Runner
    cli: Sequence[str]  # e.g. ["node", "/path/cli.js"] or ["claude-flow"]
    root: str
    timeout: float = 30.0
    workers: int = 2
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def _cli(self, args: Sequence[str], cwd: str) -> Result:
        result = self.runner.run([*self.cli, *args], cwd, self.timeout)
        if result.code != 0:
            raise CommandFailed([*self.cli, *args], result.code, result.stderr or result.stdout)
        return result

    def _folder(self, session_id: str) -> str:
        if not _SESSION_ID.match(session_id):
            raise UnknownSession(session_id)
        return posixpath.join(self.root, session_id)

    def spawn(self, request: SpawnRequest) -> Session:
        session_id = str(uuid.uuid4())
        folder = posixpath.join(self.root, session_id)
        self.runner.make_dir(folder)
        topology = STRATEGY_TOPOLOGY.get(request.strategy or "", "hierarchical")
        max_agents = request.max_agents or 8
        try:
            self._cli(["hive-mind", "init", "-t", topology, "-m", str(max_agents)], folder)
            # "--description=<task>", not "-d <task>": a task such as "--help" stays the value
            self._cli(["hive-mind", "task", f"--description={request.task}",
                       "-p", CLI_PRIORITY[request.priority]], folder)
            workers = max(1, min(self.workers, max_agents))
            self._cli(["hive-mind", "spawn", "-n", str(workers)], folder)
        except BaseException:  # no half-made session left behind, whatever went wrong
            self.runner.remove_dir(folder)
            raise
        log.info("swarm.spawned", session=session_id, priority=request.priority,
                 topology=topology, where=self.runner.describe())
        return self.status(session_id)

    def status(self, session_id: str) -> Session:
        folder = self._folder(session_id)
        if self.runner.read_text(posixpath.join(folder, ".claude-flow", "hive-mind", "state.json")) is None:
            raise UnknownSession(session_id)
        result = self._cli(["hive-mind", "status", "--format", "json"], folder)
        try:
            data = json.loads(result.stdout[result.stdout.index("{"):])
        except ValueError:
            return Session(session_id, "unknown", raw_status="unparseable status output")
        task, priority = self._task(folder)
        workers = tuple(
            {"id": str(w.get("id", "")), "type": str(w.get("type", "")),
             "status": str(w.get("status", ""))}
            for w in data.get("workers", []) if isinstance(w, dict)
        )
        return Session(
            session_id, map_status(data.get("status")), task, priority,
            str(data.get("topology", "")), workers, str(data.get("createdAt", "")),
            str(data.get("updatedAt", "")), str(data.get("status", "")),
        )

    def _task(self, folder: str) -> tuple[str, str]:
        text = self.runner.read_text(posixpath.join(folder, ".claude-flow", "tasks", "store.json"))
        try:
            tasks = json.loads(text or "{}").get("tasks", {})
            first = min(tasks.values(), key=lambda t: t.get("createdAt", ""))
            return str(first.get("description", "")), normalise_priority(first.get("priority"))
        except (ValueError, AttributeError, TypeError):
            return "", "medium"

    def list(self) -> list[Session]:
        sessions = []
        for name in self.runner.list_dir(self.root):
            if not _SESSION_ID.match(name):
                continue
            try:
                sessions.append(self.status(name))
            except UnknownSession:
                continue
            except CommandFailed as exc:
                sessions.append(Session(name, "unknown", raw_status=str(exc)[:200]))
        return sessions

    def stop(self, session_id: str) -> Session:
        folder = self._folder(session_id)
        self.status(session_id)  # raises UnknownSession
        self._cli(["hive-mind", "shutdown", "--force"], folder)
        log.info("swarm.stopped", session=session_id)
        return self.status(session_id)
