"""What a start does with what the last run left: the hive-mind actor over real session folders
made by the real claude-flow CLI (behind a wrapper that logs each run), and records written as
a crash would have left them."""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from pathlib import Path

import pytest

from actors.hive_mind.actor import MAX_ATTEMPTS, HiveMindActor, _Scanned
from actors.hive_mind.backend import LocalRunner, Scan, SessionManager
from actors.hive_mind.messages import GetSwarm, ListSwarms, Session, SpawnRequest, SpawnSwarm
from actors.hive_mind.records import RecordStore, SwarmRecord
from actors.hive_mind.settings import HiveMindSettings
from supervisor import Address, SupervisionTree, SupervisorSpec, WorkerSpec
from tests.conftest import cli_wrapper, wait_for

ID = "5d2f3c1e-8a4b-4c6d-9e0f-1a2b3c4d5e6f"


def start(tmp_path: Path, cli: list[str]) -> tuple[SupervisionTree, Address]:
    settings = HiveMindSettings(cli=tuple(cli), sessions_dir=str(tmp_path / "sessions"),
                                records_dir=str(tmp_path / "swarms"), mcp="",
                                refresh_interval_s=0.2)
    tree = SupervisionTree(SupervisorSpec("root", (
        WorkerSpec("hive_mind", HiveMindActor, args=(settings,)),)))
    tree.start()
    return tree, tree.address("root/hive_mind")


def settled(hive: Address, wanted: tuple[str, ...] = ("active", "failed")) -> Session:
    return wait_for(lambda: next((s for s in [hive.ask(GetSwarm(ID), timeout=10)]
                                  if s.status in wanted), None), 120, what=str(wanted))


def runs(log: Path, what: str) -> int:
    return log.read_text().count(what) if log.exists() else 0


def test_a_spawn_that_got_its_workers_before_the_crash_is_recorded_active_not_redone(
        claude_flow: list[str], tmp_path: Path) -> None:
    cli, log = cli_wrapper(tmp_path / "cli", claude_flow)
    manager = SessionManager(LocalRunner(), cli, str(tmp_path / "sessions"))
    made = manager.create(ID, SpawnRequest("finished before the crash"))
    RecordStore(tmp_path / "swarms").save(SwarmRecord(
        ID, "finished before the crash", status="spawning", stage="spawn", attempts=1))
    spawns = runs(log, "hive-mind spawn")
    tree, hive = start(tmp_path, cli)
    try:
        session = settled(hive)
        assert session.status == "active" and len(session.workers) == len(made.workers)
        assert runs(log, "hive-mind spawn") == spawns  # nothing was run again
        record = RecordStore(tmp_path / "swarms").load_all()[ID]
        assert record.status == "active"
    finally:
        tree.stop(10)


def test_a_half_made_spawn_is_removed_and_spawned_again_once(
        claude_flow: list[str], tmp_path: Path) -> None:
    cli, log = cli_wrapper(tmp_path / "cli", claude_flow)
    manager = SessionManager(LocalRunner(), cli, str(tmp_path / "sessions"))
    folder = tmp_path / "sessions" / ID
    folder.mkdir(parents=True)
    manager._cli(["hive-mind", "init"], str(folder))  # the crash came after init
    RecordStore(tmp_path / "swarms").save(SwarmRecord(
        ID, "cut short", status="spawning", stage="task", attempts=1))
    tree, hive = start(tmp_path, cli)
    try:
        session = settled(hive)
        assert session.status == "active" and len(session.workers) == 2  # not 4
        assert runs(log, "hive-mind spawn") == 1
        assert sorted(p.name for p in (tmp_path / "sessions").iterdir()) == [ID]
        assert RecordStore(tmp_path / "swarms").load_all()[ID].attempts == 2
    finally:
        tree.stop(10)


def test_a_queued_spawn_runs_and_one_cut_short_too_often_is_given_up(
        claude_flow: list[str], tmp_path: Path) -> None:
    cli, log = cli_wrapper(tmp_path / "cli", claude_flow)
    other = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    store = RecordStore(tmp_path / "swarms")
    store.save(SwarmRecord(ID, "was queued", status="spawning", stage="queued"))
    store.save(SwarmRecord(other, "keeps dying", status="spawning", stage="init",
                           attempts=MAX_ATTEMPTS))
    tree, hive = start(tmp_path, cli)
    try:
        assert settled(hive).status == "active"
        given_up = hive.ask(GetSwarm(other), timeout=10)
        assert given_up.status == "failed" and "given up" in given_up.error
        assert runs(log, "hive-mind spawn") == 1
    finally:
        tree.stop(10)


@pytest.mark.parametrize("content", [
    '{"id": "' + ID + '", "task": ',  # cut mid-write
    "[]", "null", "1",  # not an object
    '{"id": "' + ID + '", "task": "t", "status": "spawning", "stage": "init", "attempts": "2"}',
    '{"id": "' + ID + '", "task": "t", "created_at": 5}',
    '{"id": "' + ID + '", "task": "t", "status": "exploded"}',
    '{"id": "someone-else", "task": "t"}',
])
def test_a_bad_record_is_set_aside_and_the_start_goes_on(
        claude_flow: list[str], tmp_path: Path, content: str) -> None:
    """Found by attacking the daemon: a record of the wrong shape once crashed every start."""
    cli, _ = cli_wrapper(tmp_path / "cli", claude_flow)
    records = tmp_path / "swarms"
    records.mkdir()
    (records / f"{ID}.json").write_text(content)
    tree, hive = start(tmp_path, cli)
    try:
        assert hive.ask(ListSwarms(), timeout=10).sessions == ()
        assert (records / f"{ID}.corrupt").exists() and not (records / f"{ID}.json").exists()
    finally:
        tree.stop(10)


def test_a_scan_that_began_before_a_job_reported_does_not_undo_it(
        claude_flow: list[str], tmp_path: Path) -> None:
    """Found by review: a slow scan read a folder mid-spawn and, arriving after the job's
    report, showed an active swarm as failed with no workers."""
    cli, _ = cli_wrapper(tmp_path / "cli", claude_flow)
    tree, hive = start(tmp_path, cli)
    try:
        hive.ask(SpawnSwarm(SpawnRequest("racing a scan")), timeout=10)
        session = wait_for(lambda: next((s for s in hive.ask(ListSwarms(), timeout=10).sessions
                                         if s.status == "active"), None), 60)
        stale = Scan((dataclasses.replace(session, status="failed", workers=()),),
                     frozenset({session.id}), {session.id: (0,)})
        hive.tell(_Scanned(stale, generation=0, reader=hive.incarnation))  # read before the job said "active"
        after = hive.ask(GetSwarm(session.id), timeout=10)
        assert after.status == "active" and len(after.workers) == 2
    finally:
        tree.stop(10)


def test_a_scan_an_earlier_incarnation_began_is_ignored(claude_flow: list[str], tmp_path: Path) -> None:
    """Found by review: a scan begun before a kill reported to the next incarnation, whose
    generations count from 0 again; its high number made every later scan look stale, and the
    table stopped following the folders."""
    cli, _ = cli_wrapper(tmp_path / "cli", claude_flow)
    tree, hive = start(tmp_path, cli)
    try:
        accepted = hive.ask(SpawnSwarm(SpawnRequest("copied")), timeout=10)
        session = wait_for(lambda: next((s for s in [hive.ask(GetSwarm(accepted.session.id),
                                                               timeout=10)]
                                         if s.status == "active"), None), 60)
        tree.kill("root/hive_mind")
        assert hive.wait_running(2, timeout=30)
        hive.tell(_Scanned(Scan((), frozenset(), {}), generation=10**6,
                           reader=hive.incarnation - 1))  # the killed one's, late
        copy = str(uuid.uuid4())
        shutil.copytree(tmp_path / "sessions" / session.id, tmp_path / "sessions" / copy)
        listed = wait_for(lambda: {s.id: s.status for s in hive.ask(ListSwarms(), timeout=10).sessions
                                   if s.id == copy}, 30, what="the copied folder listed")
        assert listed == {copy: "active"}
    finally:
        tree.stop(10)
