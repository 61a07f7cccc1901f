"""The claude-flow peer, as every actor that drives it knows it: where the project's copy is
installed (``make agents``) and its vocabulary of agent types."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["AGENT_TYPES", "default_claude_flow", "repo_root"]


# The agent types claude-flow knows (and the original system's telemetry used).
AGENT_TYPES = ("coordinator", "researcher", "coder", "analyst", "architect", "tester",
               "reviewer", "optimizer", "documenter", "generic")


def repo_root() -> Path:
    """The checkout this daemon runs from (``.agents/`` lives there)."""
    return Path(__file__).resolve().parents[1]


def default_claude_flow() -> list[str] | None:
    """``[node, cli.js]`` of the project-local claude-flow (``make agents``), if installed."""
    cli = repo_root() / ".agents" / "node_modules" / "claude-flow" / "bin" / "cli.js"
    node = shutil.which("node")
    if cli.is_file() and node:
        return [node, str(cli)]
    return None
