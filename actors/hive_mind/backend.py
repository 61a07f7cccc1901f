"""Swarm sessions over two runners: commands to make and stop them, and files to read them by.

A session is one hive-mind in a folder of its own (``<root>/<uuid>``), made with the claude-flow
CLI: ``hive-mind init`` (topology, max agents), ``hive-mind task`` (the task text, priority),
``hive-mind spawn`` (workers), and stopped with ``hive-mind shutdown``. Reading a session never
starts a process: ``hive-mind status`` only reads three files of the folder
(``.claude-flow/hive-mind/state.json``, ``agents.json``, ``tasks/store.json``), and so does
:func:`session_from_files`, the same way, in microseconds instead of a Node.js start (about 1 s).
A scan of every folder re-reads only the folders whose files changed (local) or reads them all
in one ``exec`` (docker).

The runner decides where this happens: :class:`LocalRunner` (subprocesses and files on this
host, the embedded default) or :class:`DockerRunner` (``exec_run`` in the agents' container).
Every command is an argv list; a task text is one argument, never shell.
"""

from __future__ import annotations

import json
import os
import posixpath
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import structlog

from actors.hive_mind.errors import BackendError, CommandFailed, UnknownSession
from actors.hive_mind.messages import (
    SESSION_ID,
    STRATEGY_TOPOLOGY,
    Session,
    SpawnRequest,
    normalise_priority,
)
from actors.hive_mind.settings import HiveMindSettings
from actors.processes import CommandTimeout, ProcessGroups, run_command

__all__ = [
    "CLI_PRIORITY",
    "QUIET_CLI_ENV",
    "SESSION_FILES",
    "DockerRunner",
    "LocalRunner",
    "Result",
    "Runner",
    "Scan",
    "SessionManager",
    "map_status",
    "session_from_files",
]

log = structlog.get_logger("actors.hive_mind.backend")

CLI_PRIORITY = {"low": "low", "medium": "normal", "high": "high"}  # claude-flow's words
# The CLI's environment: no colour codes in what we parse, no update checks writing to $HOME.
QUIET_CLI_ENV = {"NO_COLOR": "1", "CLAUDE_FLOW_AUTO_UPDATE": "false"}
# What a session's state is read from, relative to its folder.
SESSION_FILES = {
    "state": ".claude-flow/hive-mind/state.json",
    "agents": ".claude-flow/agents.json",
    "tasks": ".claude-flow/tasks/store.json",
}
Stamp = tuple[int, ...]
# One exec prints the three files of each session folder given (or of every folder under the
# root, with --all), each framed by a marker line; paths come as arguments, never in the script.
_SCAN_SCRIPT = r"""
if [ "$1" = "--all" ]; then root="$2"; set -- "$root"/*/; fi
for d in "$@"; do
  d="${d%/}"
  [ -d "$d" ] || continue
  id=$(basename "$d")
  for f in hive-mind/state.json agents.json tasks/store.json; do
    echo "@@hive-scan@@ $id $f"
    cat "$d/.claude-flow/$f" 2>/dev/null
    echo
  done
done
"""
_MARK = "@@hive-scan@@ "


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


def _json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def session_from_files(session_id: str, files: Mapping[str, str | None]) -> Session | None:
    """A session as ``hive-mind status`` would describe it, from its folder's files; None when
    the folder holds no hive-mind (no readable state.json)."""
    state = _json(files.get("state"))
    if not isinstance(state, dict):
        return None
    agents = _json(files.get("agents"))
    found = agents.get("agents") if isinstance(agents, dict) else None
    store: dict[str, Any] = found if isinstance(found, dict) else {}
    listed = state.get("workers")
    worker_ids: list[Any] = listed if isinstance(listed, list) else []
    workers = []
    for worker in worker_ids:
        entry = store.get(str(worker))
        agent: dict[str, Any] = entry if isinstance(entry, dict) else {}
        workers.append({"id": str(worker), "type": str(agent.get("agentType") or "worker"),
                        "status": str(agent.get("status") or "unknown")})
    initialized = bool(state.get("initialized"))
    raw = "active" if initialized else "offline"
    status, error = map_status(raw), ""
    if initialized and not workers:  # made by init, never given workers: not a live swarm
        status, error = "failed", "the hive-mind has no workers (its spawn did not finish)"
    task, priority = _first_task(_json(files.get("tasks")))
    return Session(
        session_id, status, task, priority, str(state.get("topology") or ""), tuple(workers),
        str(state.get("createdAt") or ""), str(state.get("updatedAt") or ""), raw, error)


def _first_task(store: Any) -> tuple[str, str]:
    try:
        tasks = store.get("tasks", {})
        first = min(tasks.values(), key=lambda t: t.get("createdAt", ""))
        return str(first.get("description", "")), normalise_priority(first.get("priority"))
    except (ValueError, AttributeError, TypeError):
        return "", "medium"


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    stdout: str
    stderr: str = ""


@dataclass(frozen=True)
class Scan:
    """One pass over the sessions' root: the sessions whose files changed since ``stamps`` were
    taken, every id present, and the new stamps."""

    changed: tuple[Session, ...]
    present: frozenset[str]
    stamps: Mapping[str, Stamp]
    took_s: float = 0.0
    lost: Mapping[str, str] = field(default_factory=dict)  # swarm id -> why (an engine down)


class Runner(Protocol):
    """Runs argv lists somewhere (here or in a container) and reads the sessions there."""

    def run(self, argv: Sequence[str], cwd: str, timeout: float) -> Result: ...

    def make_dir(self, path: str) -> None: ...

    def remove_dir(self, path: str) -> None: ...

    def read_session(self, root: str, session_id: str) -> dict[str, str | None]: ...

    def scan(self, root: str, stamps: Mapping[str, Stamp]) -> tuple[
        dict[str, dict[str, str | None]], dict[str, Stamp], dict[str, str]]: ...

    def kill_all(self) -> int: ...

    def health(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


class LocalRunner:
    """Commands as subprocesses of this daemon (process groups, killed on timeout) and files
    read straight from the disk."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = {**os.environ, **QUIET_CLI_ENV, **(env or {})}
        self.groups = ProcessGroups()

    def run(self, argv: Sequence[str], cwd: str, timeout: float) -> Result:
        if cwd and not os.path.isdir(cwd):  # an answer about the session, not a broken backend
            raise CommandFailed(argv, 127, f"no folder {posixpath.basename(cwd)}")
        try:
            done = run_command(argv, cwd=cwd, env=self.env, timeout=timeout, groups=self.groups)
        except FileNotFoundError as exc:
            raise BackendError(f"cannot run {argv[0]}: {exc}") from None
        except CommandTimeout as exc:
            raise BackendError(str(exc)) from None
        if done.code < 0:
            raise BackendError(f"{posixpath.basename(argv[0])} was killed (signal {-done.code})")
        return Result(done.code, done.stdout, done.stderr)

    def make_dir(self, path: str) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)

    def remove_dir(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)

    def read_session(self, root: str, session_id: str) -> dict[str, str | None]:
        folder = os.path.join(root, session_id)
        return {name: _read(os.path.join(folder, rel)) for name, rel in SESSION_FILES.items()}

    def scan(self, root: str, stamps: Mapping[str, Stamp]) -> tuple[
            dict[str, dict[str, str | None]], dict[str, Stamp], dict[str, str]]:
        """Stat every session's files; read only those whose stamp (mtime, size) moved (and no
        swarm is ever lost to an engine here: the last mapping is empty).

        Plain ``os.path`` strings, not ``Path``: Python 3.11's pathlib interns every part, so
        each scan (every 2 s) interned ~300 fresh strings that died at once; their slots are
        never reused, and the interpreter rebuilt its 3.8 MB table of interned strings every
        few minutes, each rebuild a step in the churn soak's RSS (found with tracemalloc)."""
        changed: dict[str, dict[str, str | None]] = {}
        new: dict[str, Stamp] = {}
        try:
            entries = [e for e in os.scandir(root)
                       if SESSION_ID.match(e.name) and e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return changed, new, {}
        for count, entry in enumerate(entries):
            if count % 64 == 63:
                time.sleep(0)  # let the event loop's thread in: a scan never holds the GIL long
            folder = entry.path
            stamp = tuple(_stamp(os.path.join(folder, rel)) for rel in SESSION_FILES.values())
            flat = tuple(v for pair in stamp for v in pair)
            new[entry.name] = flat
            if stamps.get(entry.name) != flat:
                changed[entry.name] = {name: _read(os.path.join(folder, rel))
                                       for name, rel in SESSION_FILES.items()}
        return changed, new, {}

    def kill_all(self) -> int:
        return self.groups.kill_all()

    def health(self) -> dict[str, Any]:
        usage = shutil.disk_usage(".")
        return {"running": True, "disk_free_gb": round(usage.free / 1e9, 2), "where": "local",
                "healthy": usage.free > 1e9}

    def describe(self) -> str:
        return "local"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _stamp(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (0, -1)
    return (st.st_mtime_ns, st.st_size)


class DockerRunner:
    """``docker exec`` through the Docker Engine API (podman's works the same). One client per
    thread: the worker pool's threads never share a connection."""

    def __init__(self, container: str, base_url: str = "",
                 timeout: float = HiveMindSettings.command_timeout_s) -> None:
        self.container_name = container
        self.base_url = base_url
        self.timeout = timeout
        self._local = threading.local()
        self._client()  # fail now (BackendError) when the engine cannot even be configured

    def _client(self) -> Any:
        client = getattr(self._local, "client", None)
        if client is None:
            try:  # the [docker] extra
                import docker
            except ImportError:
                raise BackendError("the docker package is not installed: pip install "
                                   "'hive-supervisor[docker]' (make run installs it)") from None
            try:
                client = (docker.DockerClient(base_url=self.base_url, timeout=int(self.timeout))
                          if self.base_url else docker.from_env(timeout=int(self.timeout)))
            except Exception as exc:  # noqa: BLE001 - the engine may be absent: say so later
                raise BackendError(f"Docker engine unreachable: {exc}") from None
            self._local.client = client
        return client

    def answers(self) -> bool:
        """Whether the engine answers a ping now (a failed command is not a dead engine)."""
        try:
            return bool(self._client().ping())
        except Exception:  # noqa: BLE001 - unreachable, in every way the SDK can say it
            return False

    def _container(self) -> Any:
        client = self._client()
        import docker

        try:
            return client.containers.get(self.container_name)
        except docker.errors.NotFound:
            raise BackendError(f"container {self.container_name!r} not found") from None
        except BackendError:
            raise
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

    def remove_dir(self, path: str) -> None:
        self.run(["rm", "-rf", path], "/", self.timeout)

    def read_session(self, root: str, session_id: str) -> dict[str, str | None]:
        files = self._read([posixpath.join(root, session_id)])
        return files.get(session_id, dict.fromkeys(SESSION_FILES))

    def scan(self, root: str, stamps: Mapping[str, Stamp]) -> tuple[
            dict[str, dict[str, str | None]], dict[str, Stamp], dict[str, str]]:
        """Every session's files in one exec; a session is "changed" when its text is (the
        last mapping, swarms lost with their engine, is the engine pool's: empty here)."""
        files = self._read(["--all", root])
        new: dict[str, Stamp] = {sid: (hash(tuple(f.get(n) for n in SESSION_FILES)),)
                                 for sid, f in files.items()}
        changed = {sid: f for sid, f in files.items() if stamps.get(sid) != new[sid]}
        return changed, new, {}

    def _read(self, args: list[str]) -> dict[str, dict[str, str | None]]:
        result = self.run(["sh", "-c", _SCAN_SCRIPT, "sh", *args], "/", self.timeout)
        if result.code != 0:
            raise BackendError(f"reading the sessions in the container failed: "
                               f"{result.stderr.strip()[-200:]}")
        out: dict[str, dict[str, str | None]] = {}
        current: tuple[str, str] | None = None
        lines: list[str] = []

        def flush() -> None:
            if current is not None and SESSION_ID.match(current[0]):
                name = next((n for n, r in SESSION_FILES.items() if r.endswith(current[1])), None)
                if name is not None:
                    text = "\n".join(lines).strip()
                    out.setdefault(current[0], dict.fromkeys(SESSION_FILES))[name] = text or None

        for line in result.stdout.splitlines():
            if line.startswith(_MARK):
                flush()
                parts = line[len(_MARK):].split(" ", 1)
                current = (parts[0], parts[1]) if len(parts) == 2 else None
                lines = []
            else:
                lines.append(line)
        flush()
        return out

    def kill_all(self) -> int:
        return 0  # commands run in the container; an exec ends with the container's process

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
    """Hive-mind sessions in folders under ``root``, over any runner. Thread-safe: every
    method works on one session's folder, and the runner keeps no shared state per call."""

    runner: Runner
    cli: Sequence[str]  # e.g. ["node", "/path/cli.js"] or ["claude-flow"]
    root: str
    timeout: float = HiveMindSettings.command_timeout_s
    workers: int = HiveMindSettings.workers
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def _cli(self, args: Sequence[str], cwd: str) -> Result:
        result = self.runner.run([*self.cli, *args], cwd, self.timeout)
        if result.code != 0:
            raise CommandFailed([*self.cli, *args], result.code, result.stderr or result.stdout)
        return result

    def folder(self, session_id: str) -> str:
        if not SESSION_ID.match(session_id):
            raise UnknownSession(session_id)
        return posixpath.join(self.root, session_id)

    def create(self, session_id: str, request: SpawnRequest,
               stage: Callable[[str], None] = lambda _stage: None) -> Session:
        """Make the hive-mind: folder, init, task, spawn; ``stage(name)`` is called before
        each. Whatever goes wrong, the folder is removed before the error is raised: no
        half-made session is left behind."""
        folder = self.folder(session_id)
        topology = STRATEGY_TOPOLOGY.get(request.strategy or "", "hierarchical")
        max_agents = request.max_agents or 8
        try:
            stage("folder")
            self.runner.make_dir(folder)
            stage("init")
            self._cli(["hive-mind", "init", "-t", topology, "-m", str(max_agents)], folder)
            stage("task")
            # "--description=<task>", not "-d <task>": a task such as "--help" stays the value
            self._cli(["hive-mind", "task", f"--description={request.task}",
                       "-p", CLI_PRIORITY[request.priority]], folder)
            stage("spawn")
            workers = max(1, min(self.workers, max_agents))
            self._cli(["hive-mind", "spawn", "-n", str(workers)], folder)
            session = self.read(session_id)
            if session is None or not session.workers:
                raise CommandFailed([*self.cli, "hive-mind", "spawn"], 0,
                                    "the hive-mind reports no workers after spawn")
        except BaseException:
            self.remove(session_id)
            raise
        log.info("swarm.spawned", session=session_id, priority=request.priority,
                 topology=topology, where=self.runner.describe())
        return session

    def shutdown(self, session_id: str) -> Session | None:
        folder = self.folder(session_id)
        if self.read(session_id) is None:
            raise UnknownSession(session_id)
        self._cli(["hive-mind", "shutdown", "--force"], folder)
        log.info("swarm.stopped", session=session_id)
        return self.read(session_id)

    def read(self, session_id: str) -> Session | None:
        return session_from_files(session_id, self.runner.read_session(self.root, session_id))

    def remove(self, session_id: str) -> None:
        self.runner.remove_dir(self.folder(session_id))

    def scan(self, stamps: Mapping[str, Stamp]) -> Scan:
        started = time.perf_counter()
        changed, new, lost = self.runner.scan(self.root, stamps)
        sessions = []
        for session_id, files in changed.items():
            session = session_from_files(session_id, files)
            sessions.append(session or Session(session_id, "unknown",
                                               raw_status="no readable state.json"))
        return Scan(tuple(sessions), frozenset(new), new, time.perf_counter() - started, lost)
