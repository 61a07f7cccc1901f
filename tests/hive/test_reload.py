"""The reload's decisions on a real tree and app (the SIGHUP path end to end is in
tests/hive/test_service.py): what is applied, what waits for a restart, and a reload that
turns an actor off while changing it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hive.config import Config, load_config
from hive.reload import Reloader
from tests.conftest import TOKEN, WITHOUT_AGENTS, start_daemon

BASE = WITHOUT_AGENTS + "[actors.health]\ninterval_s = 0.2\n"


def config_of(text: str, tmp_path: Path, state_dir: Path) -> Config:
    path = tmp_path / "hive.toml"
    path.write_text(text)
    return load_config(path, env={}, overrides={"server": {"admin_token": TOKEN,
                                                           "state_dir": str(state_dir)}})


async def test_an_actor_turned_off_and_changed_at_once_waits_and_the_next_reload_works(
        tmp_path: Path) -> None:
    """Found by review: the changed key went to the actor, which the new file leaves out, and
    the StopIteration that followed left the reload unfinished, and every later one behind it."""
    d = await start_daemon(BASE)
    try:
        assert d.scratch is not None
        started = config_of(BASE, tmp_path, d.scratch)
        files = [BASE.replace("0.2", "0.3") + "enabled = false\n"
                 "[actors.gpu_layout.params]\nrepel_k = 111.0\n",
                 BASE.replace("0.2", "0.5")]
        reloader = Reloader(lambda: config_of(files.pop(0), tmp_path, d.scratch),  # type: ignore[arg-type]
                            started, d.services, lambda n: n)
        loop = asyncio.get_running_loop()
        first = await loop.run_in_executor(None, reloader.reload)
        assert first.error == "" and first.needs_restart == ("actors.health.enabled",
                                                             "actors.health.interval_s")
        assert first.applied == ("actors.gpu_layout.params.repel_k",) and not first.restarted
        assert d.tree.describe("root/health")["state"] == "running"  # off only at a restart
        second = await loop.run_in_executor(None, reloader.reload)
        assert second.restarted == ("health",) and second.needs_restart == ()
        assert set(second.applied) == {"actors.gpu_layout.params.repel_k", "actors.health.enabled",
                                       "actors.health.interval_s"}  # all back to what runs, or new
        assert d.tree.describe("root/health")["incarnation"] == 2
    finally:
        await d.stop()
