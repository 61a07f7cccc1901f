"""One real daemon for the fuzzers (a subprocess on loopback, with real claude-flow behind the
MCP and hive-mind actors, pocketsphinx and espeak-ng behind speech), shared by a module and
checked healthy afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, spawn

__all__ = ["EXAMPLES", "FuzzTarget"]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))  # per operation; `make chaos`: 300

# max_queued: `make chaos` posts hundreds of valid swarms, and a full queue answers 503 with
# Retry-After by design (tests/transport/routes/test_swarms.py holds that); here every valid
# request must be taken
CONFIG = """
[actors.mcp]
pool_size = 1
[actors.hive_mind]
max_queued = 10000
[actors.health]
interval_s = 0.5
"""


class FuzzTarget:
    def __init__(self, daemon: DaemonProcess, url: str) -> None:
        self.daemon = daemon
        self.url = url
        self.ws_url = url.replace("http", "ws")


@pytest.fixture(scope="module")
def target(claude_flow: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzTarget]:
    folder: Path = tmp_path_factory.mktemp("fuzz")
    (folder / "hive.toml").write_text(CONFIG)
    daemon = DaemonProcess(spawn("--config", str(folder / "hive.toml"), cwd=folder))
    try:
        ready = daemon.wait_event("daemon.ready", 180)
        yield FuzzTarget(daemon, f"http://127.0.0.1:{ready['port']}")
    finally:
        daemon.stop()
