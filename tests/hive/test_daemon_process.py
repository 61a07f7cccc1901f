"""The real daemon as a subprocess: --help, configuration errors, SIGTERM, root failure."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp

from tests.conftest import (
    PROCESS_TOKEN,
    REPO,
    child_pids,
    cli_wrapper,
    read_until,
    receive,
    spawn,
    wait_for,
)


def test_help_explains_the_options() -> None:
    out = subprocess.run([sys.executable, "-m", "hive", "--help"], cwd=REPO, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--config", "--host", "--port", "--admin-token-file", "--api-token-file",
                 "--log-format", "HIVE_"):
        assert flag in out.stdout


def test_bad_log_settings_in_the_environment_exit_2() -> None:
    out = subprocess.run([sys.executable, "-m", "hive"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "HIVE_LOG_LEVEL": "verbose"})
    assert out.returncode == 2 and "[log] level (from $HIVE_LOG_LEVEL)" in out.stderr, out.stderr
    assert "verbose" in out.stderr
    assert "Traceback" not in out.stderr


def test_config_error_exits_2_naming_the_key(tmp_path: Path, procs: list) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 80\nbogus = 1\n")
    proc = spawn("--config", str(bad), cwd=tmp_path)
    procs.append(proc)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "[server] bogus: unknown key" in out
    assert "Traceback" not in out


def test_a_misspelt_environment_variable_exits_2(tmp_path: Path, procs: list) -> None:
    proc = spawn(cwd=tmp_path, env={"HIVE_SERVER_PROT": "9000"})
    procs.append(proc)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "$HIVE_SERVER_PROT: no setting reads this variable (did you mean $HIVE_SERVER_PORT?)" in out


def test_an_actor_that_cannot_start_exits_1_with_one_line(tmp_path: Path, procs: list) -> None:
    """A setting only the actor itself can check (here: CUDA asked for on a machine without a
    GPU) fails the tree's start: one clear line, no traceback, the tree stopped."""
    proc = spawn(cwd=tmp_path, env={"HIVE_ACTORS_GPU_LAYOUT_BACKEND": "cuda", "NUMBA_ENABLE_CUDASIM": "0",
                                    "CUDA_VISIBLE_DEVICES": ""})
    procs.append(proc)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    assert "hive-supervisor: could not start: the tree failed to start: root:" in out
    assert "CudaUnavailableError" in out and "Traceback" not in out


async def test_sigterm_closes_websockets_with_1001_and_exits_0(
        procs: list, tmp_path: Path, claude_flow: list[str]) -> None:
    proc = spawn(cwd=tmp_path)
    procs.append(proc)
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, read_until, proc, "daemon.ready")
    url = f"http://127.0.0.1:{ready['port']}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/api/health?refresh=true") as r:
            assert r.status == 200
            health = await r.json()
        # the embedded defaults run every actor, with real claude-flow servers
        assert [a["name"] for a in health["actors"]["actors"]] == [
            "root", "gpu_layout", "mcp", "hive_mind", "speech", "health"]
        assert health["mcp_health"] == "connected"
        ws = await session.ws_connect(url.replace("http", "ws") + "/wss")
        await receive(ws, 5)  # connection_established
        proc.send_signal(signal.SIGTERM)
        msg = await receive(ws, 5)
        assert msg.type == aiohttp.WSMsgType.CLOSE and ws.close_code == 1001
        # the contract (issue 4): exit 0 within 5 s of SIGTERM; a later exit is TimeoutExpired
        code = await loop.run_in_executor(None, proc.wait, 5)
    assert code == 0


async def test_root_intensity_exceeded_exits_non_zero(tmp_path: Path, procs: list) -> None:
    config = tmp_path / "strict.toml"
    config.write_text("[supervisor]\nmax_restarts = 1\nwithin_seconds = 60\n")
    proc = spawn("--config", str(config), cwd=tmp_path)
    procs.append(proc)
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, read_until, proc, "daemon.ready")
    url = f"http://127.0.0.1:{ready['port']}/admin/actors/root/gpu_layout/kill"
    headers = {"Authorization": f"Bearer {PROCESS_TOKEN}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, headers=headers) as r:
            assert r.status == 200  # the first crash is restarted
        async with session.post(url, headers=headers) as r:
            assert r.status == 200  # the second is one too many: the root gives up
    failed = await loop.run_in_executor(None, read_until, proc, "daemon.root_failed")
    assert "more than 1 restarts" in failed["reason"]
    code = await loop.run_in_executor(None, proc.wait, 10)
    assert code == 1


async def test_without_node_or_espeak_the_daemon_runs_degraded(tmp_path: Path, procs: list) -> None:
    """A machine with none of the agents' or speech's programs on PATH: the daemon still
    starts, and health names what is missing instead of the actors crash-looping."""
    proc = spawn(cwd=tmp_path, env={"PATH": str(tmp_path / "empty")})
    procs.append(proc)
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, read_until, proc, "daemon.ready")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{ready['port']}/api/health?refresh=true") as r:
            assert r.status == 200
            health = await r.json()
        async with session.post(f"http://127.0.0.1:{ready['port']}/api/swarms",
                                json={"task": "x"}) as r:
            assert r.status == 503 and "make agents" in (await r.json())["error"]
    components = health["components"]
    assert health["system_status"] == "degraded"
    assert components["mcp"]["health"] == "degraded" and "make agents" in components["mcp"]["reason"]
    assert components["hive_mind"]["health"] == "degraded"
    assert components["speech"]["health"] == "degraded"
    assert "espeak-ng" in components["speech"]["reason"]
    assert all(c["restarts"] == 0 for c in components.values())
    proc.send_signal(signal.SIGTERM)
    assert await loop.run_in_executor(None, proc.wait, 10) == 0


# -- issue 10: tokens and binds --------------------------------------------------------------

def test_a_non_loopback_bind_without_an_api_token_exits_2(tmp_path: Path, procs: list) -> None:
    proc = spawn("--host", "0.0.0.0", cwd=tmp_path)
    procs.append(proc)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "hive-supervisor: listening on 0.0.0.0 reaches beyond this machine" in out
    assert "HIVE_API_TOKEN" in out and "--api-token-file" in out and "Traceback" not in out


def test_a_token_on_the_command_line_is_refused(tmp_path: Path, procs: list) -> None:
    for flag in ("--admin-token", "--api-token"):
        proc = spawn(flag, "a-secret-that-ps-would-show", cwd=tmp_path)
        procs.append(proc)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 2 and "shows in `ps`" in out and "--admin-token-file" in out


async def test_tokens_never_reach_the_log_or_the_process_list(
        tmp_path: Path, procs: list, claude_flow: list[str]) -> None:
    """Bound beyond loopback with an API token from a file and a generated admin token: both
    work, neither is in any log line or in ``ps``, and the admin token's file is 0600."""
    api_token = "api-token-from-a-file-5f2c9d"
    token_file = tmp_path / "api-token"
    token_file.write_text(api_token + "\n")
    token_file.chmod(0o600)
    proc = spawn("--host", "0.0.0.0", "--api-token-file", str(token_file), cwd=tmp_path,
                 admin_token=None, env={"HIVE_ACTORS_MCP_ENABLED": "false",
                                        "HIVE_ACTORS_HIVE_MIND_ENABLED": "false",
                                        "HIVE_ACTORS_SPEECH_ENABLED": "false"})
    procs.append(proc)
    loop = asyncio.get_running_loop()
    lines: list[str] = []
    ready = await loop.run_in_executor(None, read_until, proc, "daemon.ready", 60, lines)
    kept = tmp_path / ".hive-state" / "admin-token"
    admin_token = kept.read_text().strip()
    assert kept.stat().st_mode & 0o777 == 0o600 and len(admin_token) >= 32
    assert any('"admin.token_file"' in line and str(kept) in line for line in lines)
    assert any('"daemon.exposed"' in line for line in lines)
    url = f"http://127.0.0.1:{ready['port']}"
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{url}/api/graph", json={"nodes": [{"id": 1}]}) as r:
            assert r.status == 401
        async with session.put(f"{url}/api/graph", json={"nodes": [{"id": 1}]},
                               headers={"Authorization": f"Bearer {api_token}"}) as r:
            assert r.status == 200
        async with session.get(f"{url}/admin/actors",
                               headers={"Authorization": f"Bearer {admin_token}"}) as r:
            assert r.status == 200
    # a request aiohttp cannot parse is logged with its raw line: the token must not be in it
    reader, writer = await asyncio.open_connection("127.0.0.1", ready["port"])
    writer.write(f"GET /api/graph?token={api_token}\x01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    await reader.read()
    writer.close()
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert str(token_file) in ps  # the daemon is in the list, by its file
    proc.send_signal(signal.SIGTERM)
    rest, _ = await loop.run_in_executor(None, proc.communicate, None, 10)
    log = "".join(lines) + rest
    for token in (api_token, admin_token):
        assert token not in ps and token not in log
    assert '"bad HTTP from a client' in log and "[redacted]" in log  # it was logged, redacted
    # a restart reuses the kept admin token (a console keeps working); a token given in the
    # environment is not passed on to the children (the MCP servers, here)
    again = spawn(cwd=tmp_path, admin_token=None,
                  env={"HIVE_API_TOKEN": api_token, "HIVE_ACTORS_MCP_POOL_SIZE": "1",
                       "HIVE_ACTORS_HIVE_MIND_ENABLED": "false",
                       "HIVE_ACTORS_SPEECH_ENABLED": "false"})
    procs.append(again)
    await loop.run_in_executor(None, read_until, again, "daemon.ready")
    assert kept.read_text().strip() == admin_token
    children = wait_for(lambda: child_pids(again.pid), what="the MCP server's process")
    for pid in children:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert api_token.encode() not in environ and b"HIVE_API_TOKEN" not in environ
    again.send_signal(signal.SIGTERM)
    assert await loop.run_in_executor(None, again.wait, 10) == 0


# -- issue 12: a spawn cut short by SIGKILL ---------------------------------------------------

async def test_a_spawn_cut_by_sigkill_is_finished_by_the_next_start(
        tmp_path: Path, procs: list, claude_flow: list[str]) -> None:
    """SIGKILL 1.5 s into a spawn once left a session listed active with no workers. Now no
    CLI run outlives the daemon, and the next start spawns it again, once: two workers, one
    folder."""
    cli, log = cli_wrapper(tmp_path / "cli", claude_flow, slow_stage="spawn", slow_s=30)
    config = tmp_path / "hive.toml"
    config.write_text(f"""
[actors.mcp]
enabled = false
[actors.speech]
enabled = false
[actors.hive_mind]
cli = {json.dumps(cli)}
""")
    proc = spawn("--config", str(config), cwd=tmp_path)
    procs.append(proc)
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, read_until, proc, "daemon.ready")
    url = f"http://127.0.0.1:{ready['port']}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/api/swarms", json={"task": "cut short"}) as r:
            assert r.status == 202
            session_id = (await r.json())["id"]
        async with asyncio.timeout(30):
            while True:
                async with session.get(f"{url}/api/swarms/{session_id}") as r:
                    if (await r.json()).get("stage") == "spawn":
                        break
                await asyncio.sleep(0.05)
    wait_for(lambda: log.exists() and "hive-mind spawn" in log.read_text(), 30,
             what="the spawn command under way")
    wrapper = cli[1]
    assert any(wrapper in cmdline for cmdline in cmdlines())  # the CLI run is under way
    proc.kill()
    proc.wait()
    wait_for(lambda: not any(wrapper in cmdline for cmdline in cmdlines()), 5,
             what="no CLI run left after the daemon's SIGKILL")
    (tmp_path / "cli" / "cli.sh").write_text(  # the next attempt runs at full speed
        (tmp_path / "cli" / "cli.sh").read_text().replace("read -t 30", "read -t 0"))
    again = spawn("--config", str(config), cwd=tmp_path, env={})
    procs.append(again)
    ready = await loop.run_in_executor(None, read_until, again, "daemon.ready")
    url = f"http://127.0.0.1:{ready['port']}"
    async with aiohttp.ClientSession() as session:
        async with asyncio.timeout(60):
            while True:
                async with session.get(f"{url}/api/swarms/{session_id}") as r:
                    swarm = await r.json()
                assert not (swarm["status"] == "active" and swarm["agentCount"] == 0), swarm
                if swarm["status"] in ("active", "failed"):
                    break
                await asyncio.sleep(0.1)
    assert swarm["status"] == "active" and swarm["agentCount"] == 2, swarm
    assert sorted(p.name for p in (tmp_path / ".hive-state" / "sessions").iterdir()) == [session_id]
    assert log.read_text().count("hive-mind spawn") == 2  # the cut one, and the one that ran
    again.send_signal(signal.SIGTERM)
    assert await loop.run_in_executor(None, again.wait, 10) == 0


def cmdlines() -> list[str]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                out.append(Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return out


async def test_a_second_daemon_on_the_same_state_folder_is_refused(
        tmp_path: Path, procs: list) -> None:
    """Found by attacking the daemon: two daemons on one state folder both resumed the same
    spawns (one swarm got four workers)."""
    env = {"HIVE_ACTORS_MCP_ENABLED": "false", "HIVE_ACTORS_HIVE_MIND_ENABLED": "false",
           "HIVE_ACTORS_SPEECH_ENABLED": "false"}
    first = spawn(cwd=tmp_path, env=env)
    procs.append(first)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, read_until, first, "daemon.ready")
    second = spawn(cwd=tmp_path, env=env)
    procs.append(second)
    out, _ = await loop.run_in_executor(None, second.communicate, None, 60)
    assert second.returncode == 2, out
    assert f"another hive-supervisor (pid {first.pid}) is using the state folder" in out
    first.send_signal(signal.SIGTERM)
    assert await loop.run_in_executor(None, first.wait, 10) == 0
    third = spawn(cwd=tmp_path, env=env)  # the lock went with the first: the folder is free
    procs.append(third)
    await loop.run_in_executor(None, read_until, third, "daemon.ready")
    third.send_signal(signal.SIGTERM)
    assert await loop.run_in_executor(None, third.wait, 10) == 0
