"""The daemon's own record of each swarm it was asked for: a small JSON file per swarm, written
whole and renamed into place, so that a crash at any moment leaves the last complete record.

A swarm's folder is claude-flow's (what the hive-mind has); its record is ours (what was asked,
how far the spawn or stop got, why it failed). Together they answer the questions a restart
must answer: was this spawn finished, is it in flight, did it fail and why. A record that
cannot be read is moved aside (``*.corrupt``) and reported, never fatal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from actors.hive_mind.messages import SESSION_ID, SpawnRequest

__all__ = ["RecordStore", "SwarmRecord", "now_iso"]

log = structlog.get_logger("actors.hive_mind.records")


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True, slots=True)
class SwarmRecord:
    """``status``: spawning (``stage``: queued, folder, init, task, spawn), active, stopping,
    completed or failed (``error`` says why). ``attempts`` counts spawns begun, so that one
    that keeps dying with the daemon is given up after a few."""

    id: str
    task: str
    priority: str = "medium"
    strategy: str | None = None
    max_agents: int | None = None
    status: str = "spawning"
    stage: str = "queued"
    error: str = ""
    attempts: int = 0
    idempotency_key: str = ""
    request_hash: str = ""
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def accepted(cls, session_id: str, request: SpawnRequest, key: str = "",
                 request_hash: str = "") -> SwarmRecord:
        stamp = now_iso()
        return cls(session_id, request.task, request.priority, request.strategy,
                   request.max_agents, idempotency_key=key, request_hash=request_hash,
                   created_at=stamp, updated_at=stamp)

    @property
    def request(self) -> SpawnRequest:
        return SpawnRequest(self.task, self.priority, self.strategy, self.max_agents)

    def moved(self, **changes: Any) -> SwarmRecord:
        return dataclasses.replace(self, **changes, updated_at=now_iso())


_TYPES: dict[str, tuple[type, ...]] = {
    "id": (str,), "task": (str,), "priority": (str,), "strategy": (str, type(None)),
    "max_agents": (int, type(None)), "status": (str,), "stage": (str,), "error": (str,),
    "attempts": (int,), "idempotency_key": (str,), "request_hash": (str,),
    "created_at": (str,), "updated_at": (str,),
}
STATUSES = ("spawning", "active", "stopping", "completed", "failed")


def _record(data: Any) -> SwarmRecord:
    """A record from its file's JSON, every field checked: a file edited or cut short by hand
    is refused here, never later in the middle of the actor's work."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    values: dict[str, Any] = {}
    for name, kinds in _TYPES.items():
        if name not in data:
            if name in ("id", "task"):
                raise ValueError(f"no {name}")
            continue
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise ValueError(f"{name} has the wrong type")
        values[name] = value
    record = SwarmRecord(**values)
    if not SESSION_ID.match(record.id) or record.status not in STATUSES or record.attempts < 0:
        raise ValueError("not a valid record")
    return record


class RecordStore:
    """One ``<id>.json`` per swarm in ``folder``. Thread-safe: each write is a rename."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def _path(self, session_id: str) -> Path:
        if not SESSION_ID.match(session_id):
            raise ValueError(f"not a session id: {session_id!r}")
        return self.folder / f"{session_id}.json"

    def load_all(self) -> dict[str, SwarmRecord]:
        records: dict[str, SwarmRecord] = {}
        if not self.folder.is_dir():
            return records
        for path in self.folder.glob("*.json"):
            try:
                record = _record(json.loads(path.read_text(encoding="utf-8")))
                if path.stem != record.id:
                    raise ValueError("id does not match its file")
            except Exception as exc:  # noqa: BLE001 - whatever is in the file, never fatal
                aside = path.with_suffix(".corrupt")
                with contextlib.suppress(OSError):
                    path.replace(aside)
                log.error("swarm.record_corrupt", file=str(path), moved_to=str(aside),
                          error=str(exc)[:200])
                continue
            records[record.id] = record
        return records

    def save(self, record: SwarmRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(record.id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(record), f, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def remove(self, session_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(session_id).unlink()
