"""The daemon as a subprocess for the benchmarks: ``python -m hive`` on a free port, its state
and configuration in a folder of the benchmark's, its log read (and dropped) as it comes so
that a full pipe never stalls it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["ROOT", "BenchDaemon", "cpu_seconds"]

ROOT = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class BenchDaemon:
    """Started with ``config`` (TOML text) written to ``<state>/hive.toml``; ``ready`` is its
    ``daemon.ready`` record, ``url`` its base URL."""

    def __init__(self, state: Path, config: str) -> None:
        path = state / "hive.toml"
        path.write_text(config)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HIVE_ADMIN_TOKEN": "bench-admin-token-0001"}
        env.pop("HIVE_API_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hive", "--port", "0", "--log-format", "json",
             "--config", str(path)], cwd=state, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.ready = self._ready()
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.ready['port']}"

    def _ready(self) -> dict[str, Any]:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "daemon.ready":
                return dict(record)
        raise SystemExit(f"the daemon exited before it was ready ({self.proc.wait()})")

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for _ in self.proc.stderr:
            pass

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
