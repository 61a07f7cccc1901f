"""Child processes stopped as whole process groups: a command past its timeout, and a server
closed by its connection, take what they started with them (real processes: sh and sleep)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from actors.mcp.jsonrpc import ProcessChannel
from actors.processes import CommandTimeout, run_command
from actors.speech.errors import ProviderError
from actors.speech.tts import EspeakTts
from tests.conftest import alive


def gone_soon(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def grandchild_script(tmp_path: Path) -> Path:
    """A program that starts a long sleep (which ignores SIGTERM), notes its pid, and waits."""
    script = tmp_path / "parent.sh"
    script.write_text(f"#!/bin/sh\n(trap '' TERM; exec sleep 300) &\necho $! > {tmp_path}/grandchild\n"
                      "cat > /dev/null\nwait\n")
    script.chmod(0o755)
    return script


def grandchild(tmp_path: Path) -> int:
    path = tmp_path / "grandchild"
    deadline = time.monotonic() + 10
    while not path.exists() or not path.read_text().strip():
        assert time.monotonic() < deadline, "the script did not start its child"
        time.sleep(0.02)
    return int(path.read_text())


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    with pytest.raises(CommandTimeout, match="process group was killed"):
        run_command([str(grandchild_script(tmp_path))], cwd=str(tmp_path), env=os.environ,
                    timeout=1.0, stdin=b"")
    assert gone_soon(grandchild(tmp_path))


def test_a_closed_stdio_server_takes_what_it_started_with_it(tmp_path: Path) -> None:
    """Found by reading: close() signalled the server's own pid only, so what it had started
    (npx, node workers) could outlive it."""
    channel = ProcessChannel([str(grandchild_script(tmp_path))], cwd=tmp_path)
    child = grandchild(tmp_path)
    assert alive(child)
    channel.close()
    assert channel.process.poll() is not None and gone_soon(child)


def test_a_speech_engine_past_its_timeout_is_killed_with_its_group(tmp_path: Path) -> None:
    """espeak-ng (here a stand-in that never finishes) ran under subprocess.run, whose timeout
    kills the child alone."""
    fake = tmp_path / "espeak-ng"
    fake.write_text(f"#!/bin/sh\n(trap '' TERM; exec sleep 300) &\necho $! > {tmp_path}/grandchild\n"
                    "cat > /dev/null\nsleep 300\n")
    fake.chmod(0o755)
    tts = EspeakTts("en", binary=str(fake), timeout_s=1.0)
    with pytest.raises(ProviderError, match="took longer"):
        tts.synthesize("hello")
    assert gone_soon(grandchild(tmp_path))


def test_the_parent_death_signal_is_asked_for(tmp_path: Path) -> None:
    """A command run to completion dies with the thread that started it (setpriv --pdeathsig):
    a SIGKILLed daemon leaves no CLI run behind (tests/hive/test_daemon_process.py kills one)."""
    out = run_command([sys.executable, "-c", "import ctypes, signal; libc = ctypes.CDLL(None); "
                       "s = ctypes.c_int(); libc.prctl(2, ctypes.byref(s)); print(s.value)"],
                      cwd=str(tmp_path), env=os.environ, timeout=30)
    assert out.code == 0 and int(out.stdout) == 9  # PR_GET_PDEATHSIG: SIGKILL
