"""Smoke tests for the real podman peer: the Docker API works, and it cleans up after itself.

These do not skip when podman is missing: the fixture installs it (scripts/install-podman.sh)
and a failure to do so fails the test with the reason, because a skipped peer test looks
green while the container backend went untested.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import docker
import pytest

from tests.peers.podman import AGENTS_DIR, REPO_ROOT, PodmanError, PodmanService, host_runtime_binds

IMAGE = "hive-busybox"
CLAUDE_FLOW_CLI = AGENTS_DIR / "node_modules" / "claude-flow" / "bin" / "cli.js"


def test_exec_echo_and_clean_teardown(podman_service: PodmanService) -> None:
    svc = podman_service
    assert svc.base_url is not None
    client = docker.DockerClient(base_url=svc.base_url)
    try:
        assert client.ping() is True
        tag = svc.build_image(IMAGE)
        assert tag == f"localhost/{IMAGE}:latest"
        container = svc.run_container("smoke", IMAGE)
        container.reload()
        assert container.status == "running"

        result = container.exec_run(["echo", "hi"])
        assert result.exit_code == 0
        assert result.output == b"hi\n"

        failing = container.exec_run(["sh", "-c", "exit 3"])
        assert failing.exit_code == 3
        # Something runs inside the namespace now (service, conmon, the sleep).
        assert len(svc.leftover_pids()) >= 2
    finally:
        client.close()

    # Explicit stop here (the fixture's second stop is a no-op) to check the result now.
    svc.stop()
    assert svc.leftover_pids() == []
    assert svc.state_dir is not None and not svc.state_dir.exists()


def test_stop_cleans_up_after_a_failed_start(tmp_path: Path) -> None:
    """A service that cannot start (socket path too long) leaves no process or folder."""
    svc = PodmanService()
    deep = tmp_path / ("x" * 120)
    with pytest.raises(PodmanError, match="too long"):
        svc.start(deep)
    svc.stop()
    assert svc.proc is None
    assert not deep.exists()


@pytest.fixture(scope="module")
def claude_flow_installed() -> Path:
    """claude-flow in .agents/, installed by the project's own (cached) script if needed."""
    if not CLAUDE_FLOW_CLI.exists() or not (AGENTS_DIR / ".stamp-claude-flow").exists():
        if shutil.which("npm") is None:
            pytest.fail("npm is missing: apt-get install nodejs npm", pytrace=False)
        proc = subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "install-agents.sh")],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"scripts/install-agents.sh failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}", pytrace=False
            )
    return CLAUDE_FLOW_CLI


def test_container_runs_host_node_and_claude_flow(podman_service: PodmanService, claude_flow_installed: Path) -> None:
    """The hive-mind backend runs `node .../claude-flow/bin/cli.js ...` inside a container
    with the host's runtime bound read-only; the busybox image holds no node of its own."""
    svc = podman_service
    svc.build_image(IMAGE)
    binds = host_runtime_binds()
    assert all(b["mode"] == "ro" for b in binds.values())
    container = svc.run_container("node-runner", IMAGE, binds)

    node = shutil.which("node")
    assert node is not None
    version = container.exec_run(["node", "--version"], demux=True)
    assert version.exit_code == 0, version.output
    host_version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    assert version.output[0].decode() == host_version

    cli = container.exec_run(["node", str(claude_flow_installed), "--version"], demux=True)
    assert cli.exit_code == 0, cli.output
    assert b"v3." in cli.output[0]

    # Read-only really means read-only: the backend must not be able to corrupt .agents.
    write = container.exec_run(["touch", str(AGENTS_DIR / "probe-write")])
    assert write.exit_code != 0
    assert not (AGENTS_DIR / "probe-write").exists()
