"""actors/memory.py: the arena cap, seen in glibc's own report of its arenas.

Each case runs in a fresh interpreter: the cap only binds arenas not yet made, and this test
process has made its own long ago."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from actors.memory import ARENAS

# Eight threads allocate at once; glibc's malloc_stats() then prints one "Arena N:" per arena.
PROGRAM = f"""
import ctypes, ctypes.util, sys, threading
sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
from actors.memory import limit_arenas
print(limit_arenas() if sys.argv[1] == "cap" else None, flush=True)
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    keep = [bytearray(4096) for _ in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()
"""


def arenas(mode: str, env: dict[str, str] | None = None) -> tuple[str, int]:
    environment = {**os.environ, **(env or {})}
    environment.pop("GLIBC_TUNABLES", None)
    run = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True,
                         check=True, env=environment, timeout=60)
    return run.stdout.strip(), run.stderr.count("Arena ")


glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc")


@glibc
def test_threads_make_arenas_of_their_own_without_the_cap() -> None:
    _, count = arenas("none", {"MALLOC_ARENA_MAX": ""})
    assert count > ARENAS  # what the cap is for (glibc allows 8 per core)


@glibc
def test_the_cap_keeps_every_thread_in_few_arenas() -> None:
    said, count = arenas("cap", {"MALLOC_ARENA_MAX": ""})
    assert said == "True" and count <= ARENAS


@glibc
def test_malloc_arena_max_in_the_environment_wins() -> None:
    said, count = arenas("cap", {"MALLOC_ARENA_MAX": "3"})
    assert said == "False" and count <= 3



@glibc
def test_a_glibc_tunable_in_the_environment_wins_too() -> None:
    run = subprocess.run([sys.executable, "-c", PROGRAM, "cap"], capture_output=True, text=True,
                         check=True, timeout=60, env={**os.environ, "MALLOC_ARENA_MAX": "",
                                                       "GLIBC_TUNABLES": "glibc.malloc.arena_max=3"})
    assert run.stdout.strip() == "False" and run.stderr.count("Arena ") <= 3
