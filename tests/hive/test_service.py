"""The daemon as a service, each point against the real process: ``--version``,
``--check-config``, the ``supervisor`` name clash, systemd's readiness protocol over a real
``AF_UNIX`` datagram socket, SIGHUP, and no child outliving a SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hive.version import version
from tests.conftest import (
    PROCESS_TOKEN,
    REPO,
    DaemonProcess,
    alive,
    child_pids,
    server_pids,
    spawn,
    wait_for,
)

QUIET = {"HIVE_ACTORS_MCP_ENABLED": "false", "HIVE_ACTORS_HIVE_MIND_ENABLED": "false",
         "HIVE_ACTORS_SPEECH_ENABLED": "false"}


def run_cli(*args: str, env: dict[str, str] | None = None,
            cwd: Path | str = REPO) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HIVE_")}
    environment.update({"PYTHONPATH": REPO, **(env or {})})
    return subprocess.run([sys.executable, "-m", "hive", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env=environment)


def test_version() -> None:
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"hive-supervisor {version()}"
    assert version() != "unknown"  # make test installs the project


def test_check_config_prints_the_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    config = tmp_path / "hive.toml"
    config.write_text('[server]\nport = 9123\napi_token = "s3cret-api-token-value"\n'
                      "[actors.gpu_layout.params]\nrepel_k = 250.0\n[log]\nlevel = \"debug\"\n")
    out = run_cli("--check-config", str(config), env={"HIVE_ACTORS_HEALTH_INTERVAL_S": "3"})
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["config_file"] == str(config) and shown["server"]["port"] == 9123
    assert shown["server"]["api_token"] == "(set)" and "s3cret" not in out.stdout + out.stderr
    assert shown["server"]["admin_token"].startswith("(made at the first start")
    assert shown["actors"]["gpu_layout"]["params"]["repel_k"] == 250.0
    assert shown["actors"]["health"]["interval_s"] == 3.0 and shown["log"]["level"] == "debug"
    assert not (tmp_path / ".hive-state").exists()  # a check writes nothing


@pytest.mark.parametrize(("text", "env", "message"), [
    ("[server]\nport = 70000\n", {}, "[server] port"),
    ("[actors.nope]\n", {}, "[actors.nope]: unknown actor"),
    ("", {"HIVE_SERVER_PROT": "1"}, "$HIVE_SERVER_PROT"),
    ('[server]\nhost = "0.0.0.0"\n', {}, "API token"),
])
def test_check_config_exits_2_for_what_a_start_refuses(
        tmp_path: Path, text: str, env: dict[str, str], message: str) -> None:
    config = tmp_path / "hive.toml"
    config.write_text(text)
    out = run_cli("--check-config", str(config), env=env)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_check_config_checks_the_tokens_as_a_start_does(tmp_path: Path) -> None:
    """Found by review: a missing token file or a token a start refuses passed the check."""
    out = run_cli("--check-config", "--api-token-file", str(tmp_path / "missing"))
    assert out.returncode == 2 and "API token" in out.stderr and "Traceback" not in out.stderr
    out = run_cli("--check-config", env={"HIVE_API_TOKEN": "short"})
    assert out.returncode == 2 and "API token" in out.stderr and "short" not in out.stderr
    good = tmp_path / "api-token"
    good.write_text("a" * 40 + "\n")
    good.chmod(0o600)
    out = run_cli("--check-config", "--api-token-file", str(good), cwd=tmp_path)
    assert out.returncode == 0 and json.loads(out.stdout)["server"]["api_token"] == f"(from {good})"
    assert not (tmp_path / ".hive-state").exists()  # no admin token made by a check


def test_supervisord_in_the_same_environment_is_named_with_the_fix(tmp_path: Path) -> None:
    """The PyPI package ``supervisor`` (supervisord) is a package of the same name, which wins
    over our module: before, every import of ours failed with an ImportError naming neither."""
    fake = tmp_path / "site" / "supervisor"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("# supervisord\n")
    out = run_cli("--version", env={"PYTHONPATH": f"{tmp_path / 'site'}:{REPO}"}, cwd=tmp_path)
    assert out.returncode == 2, out
    assert "supervisord" in out.stderr and "environment of its own" in out.stderr, out.stderr
    assert str(fake) in out.stderr and "Traceback" not in out.stderr


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """What systemd gives a Type=notify service: an AF_UNIX datagram socket to write to."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield sock, path
    sock.close()


def messages(sock: socket.socket, until: str, timeout: float = 60) -> list[dict[str, str]]:
    """Datagrams as ``{KEY: value}``, up to the first holding ``until``."""
    out: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = sock.recv(4096).decode()
        out.append(dict(line.split("=", 1) for line in data.splitlines()))
        if until in out[-1]:
            return out
    raise AssertionError(f"no {until} in {out}")


def test_systemd_ready_watchdog_and_stopping(tmp_path: Path, procs: list,
                                             notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    proc = spawn(cwd=tmp_path, env={**QUIET, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    procs.append(proc)
    daemon = DaemonProcess(proc)
    ready = messages(sock, "READY")[-1]
    assert ready["READY"] == "1" and ready["MAINPID"] == str(proc.pid)
    assert daemon.wait_event("daemon.ready")["systemd"] is True
    started = time.monotonic()
    for _ in range(3):
        assert messages(sock, "WATCHDOG")[-1]["WATCHDOG"] == "1"
    assert time.monotonic() - started < 3  # every 0.2 s (half of 0.4)
    proc.send_signal(signal.SIGTERM)
    assert "STOPPING" in messages(sock, "STOPPING")[-1]
    proc.send_signal(signal.SIGTERM)  # systemd's second one, or a user's impatient Ctrl-C
    assert proc.wait(30) == 0
    assert daemon.wait_event("daemon.already_stopping")


async def test_sighup_applies_what_can_change_and_names_what_cannot(tmp_path: Path, procs: list) -> None:
    """Before, SIGHUP killed the daemon at once, with no shutdown and no log line."""
    config = tmp_path / "hive.toml"
    config.write_text("[actors.health]\ninterval_s = 2.0\n")
    proc = spawn("--config", str(config), cwd=tmp_path, env=QUIET)
    procs.append(proc)
    daemon = DaemonProcess(proc)
    url = f"http://127.0.0.1:{daemon.wait_event('daemon.ready')['port']}"
    origin = {"Origin": "http://console.example:4000", "Content-Type": "application/json"}
    admin = {"Authorization": f"Bearer {PROCESS_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{url}/api/graph", json={"nodes": []}, headers=origin) as r:
            assert r.status == 403  # a foreign origin
        config.write_text(
            "[server]\nallowed_origins = [\"http://console.example:4000\"]\nstate_dir = \"elsewhere\"\n"
            "[log]\nlevel = \"debug\"\naccess = true\n"
            "[actors.health]\ninterval_s = 0.5\n"
            "[actors.gpu_layout.params]\nrepel_k = 123.0\n")
        proc.send_signal(signal.SIGHUP)
        reloaded = await asyncio.get_running_loop().run_in_executor(
            None, daemon.wait_event, "config.reloaded")
        assert set(reloaded["applied"]) >= {
            "server.allowed_origins", "log.level", "log.access", "actors.health.interval_s",
            "actors.gpu_layout.params.repel_k"}
        assert reloaded["restarted"] == ["health"] and reloaded["needs_restart"] == ["server.state_dir"]
        mark = len(daemon.records)
        async with session.put(f"{url}/api/graph", json={"nodes": [{"id": 1}]}, headers=origin) as r:
            assert r.status == 200, await r.text()  # the new allow-list, at once
        saved = daemon.wait_event("layout.saved", after=mark, timeout=10)  # a debug event
        assert saved["level"] == "debug" and saved["logger"] == "actors.layout_store"
        async with session.get(f"{url}/admin/actors/root/health", headers=admin) as r:
            assert (await r.json())["incarnation"] == 2  # restarted with its new settings
        async with session.get(f"{url}/admin/actors/root/gpu_layout", headers=admin) as r:
            assert (await r.json())["incarnation"] == 1  # new physics, no restart
        seen = len(daemon.records)
        async with session.get(f"{url}/api/health?token=never-logged") as r:
            assert r.status == 200
        access = wait_for(lambda: next((r for r in daemon.records[seen:] if r.get("event") ==
                                        "http.access" and r["route"] == "/api/health"), None),
                          10, what="the access line")
        assert access["logger"] == "transport.access" and access["status"] == 200
        assert "never-logged" not in json.dumps(access)
        config.write_text("[server\nport = ")  # broken: logged, nothing changes
        proc.send_signal(signal.SIGHUP)
        failed = await asyncio.get_running_loop().run_in_executor(
            None, daemon.wait_event, "config.reload_failed")
        assert "not valid TOML" in failed["error"]
        async with session.put(f"{url}/api/graph", json={"nodes": []}, headers=origin) as r:
            assert r.status == 200
    assert daemon.stop() == 0


async def test_no_child_outlives_a_sigkill_of_the_daemon(tmp_path: Path, procs: list,
                                                         claude_flow: list[str]) -> None:
    """Every actor on (the MCP servers, speech's engines): SIGKILL, and nothing of it stays."""
    proc = spawn(cwd=tmp_path)
    procs.append(proc)
    daemon = DaemonProcess(proc)
    daemon.wait_event("daemon.ready")
    wait_for(lambda: len(server_pids(tmp_path)) >= 2, 60, what="the MCP servers")
    descendants = child_pids(proc.pid)
    assert descendants
    proc.kill()
    proc.wait()
    wait_for(lambda: not [p for p in descendants if alive(p)] and not server_pids(tmp_path), 10,
             what="no child left after the daemon's SIGKILL")


ABSENT = '''
import sys


class _Absent:
    """The extras not installed: importing one fails as it would."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pocketsphinx", "docker", "numba_cuda"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None


sys.meta_path.insert(0, _Absent())
'''


async def test_the_daemon_runs_without_its_extras(tmp_path: Path, procs: list) -> None:
    """[speech], [docker] and [cuda] are extras: without them the daemon serves, and the parts
    that need one say which to install."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(ABSENT)
    proc = spawn(cwd=tmp_path, env={"PYTHONPATH": f"{site}:{REPO}", "HIVE_ACTORS_MCP_ENABLED": "false",
                                    "HIVE_ACTORS_HIVE_MIND_BACKEND": "docker"})
    procs.append(proc)
    daemon = DaemonProcess(proc)
    url = f"http://127.0.0.1:{daemon.wait_event('daemon.ready')['port']}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/health?refresh=true") as r:
            components = (await r.json())["components"]
        async with session.get(f"{url}/readyz") as r:
            assert r.status == 200
    assert components["gpu_layout"]["health"] == "healthy"
    assert "hive-supervisor[docker]" in components["hive_mind"]["reason"]
    assert "hive-supervisor[speech]" in components["speech"]["reason"]
    assert daemon.stop() == 0


def test_the_unit_file_asks_for_what_the_daemon_does() -> None:
    unit = (Path(REPO) / "deploy" / "hive-supervisor.service").read_text()
    lines = [line.strip() for line in unit.replace("\\\n", " ").splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    settings: dict[str, list[str]] = {}
    for line in lines:
        if "=" in line and not line.startswith("["):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert "-HUP $MAINPID" in settings["ExecReload"][0] and settings["WatchdogSec"]
    assert settings["NoNewPrivileges"] == ["yes"] and settings["ProtectSystem"] == ["strict"]
    flags = [word for word in settings["ExecStart"][0].split() if word.startswith("--")]
    assert flags and all(flag in run_cli("--help").stdout for flag in flags), flags


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze (Debian's systemd package) is not installed; the unit's "
                           "own checks in test_the_unit_file_asks_for_what_the_daemon_does still run")
def test_systemd_itself_accepts_the_unit_and_rates_its_sandbox(tmp_path: Path) -> None:
    """systemd's own checks on the unit (its ExecStart pointed at this installation)."""
    unit = (Path(REPO) / "deploy" / "hive-supervisor.service").read_text()
    here = Path(sys.executable).parent / "hive-supervisor"
    assert here.exists()
    copy = tmp_path / "hive-supervisor.service"
    copy.write_text(unit.replace("/opt/hive-supervisor/bin/hive-supervisor", str(here)))
    verify = subprocess.run(["systemd-analyze", "verify", "--man=no", str(copy)],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0 and not verify.stdout.strip() and not verify.stderr.strip(), \
        verify.stdout + verify.stderr
    security = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(copy)],
                              capture_output=True, text=True, timeout=60)
    level = float(security.stdout.rsplit("Overall exposure level", 1)[1].split(":", 1)[1].split()[0])
    assert level < 3.0, security.stdout[-500:]  # 1.8 ("OK") when written; 10 is unprotected
