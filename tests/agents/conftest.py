"""Fixtures for the agents' planes: a daemon app with real claude-flow servers behind the MCP
pool and the real claude-flow CLI behind the hive-mind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import Daemon, start_daemon


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
    d = await start_daemon(agents_config(tmp_path))
    d.state = tmp_path  # type: ignore[attr-defined]
    yield d
    await d.stop()
