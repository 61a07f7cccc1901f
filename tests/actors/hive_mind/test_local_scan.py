"""LocalRunner.scan, the hive-mind actor's refresh every 2 s: what it costs the interpreter.

Found by a tracemalloc diff of the churn soak: pathlib (3.11) interns every part of every path
it builds, so each scan interned ~300 fresh strings that died at once. Dead slots in the
interned-string table are not reused; the table (3.8 MB) was rebuilt every few minutes, and
each rebuild was a step in the daemon's RSS."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest

from actors.hive_mind.backend import SESSION_FILES, LocalRunner


def sessions(root: Path, count: int) -> list[str]:
    ids = [str(uuid.UUID(int=k + 1, version=4)) for k in range(count)]
    for session_id in ids:
        for rel in SESSION_FILES.values():
            path = root / session_id / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"id": session_id}))
    return ids


def test_a_scan_interns_no_string(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = sessions(tmp_path, 20)
    runner = LocalRunner()
    interned: list[str] = []
    real = sys.intern

    def counting(s: str) -> str:
        interned.append(s)
        return real(s)

    monkeypatch.setattr(sys, "intern", counting)
    changed, stamps, lost = runner.scan(str(tmp_path), {})
    again, _, _ = runner.scan(str(tmp_path), stamps)
    assert lost == {}
    one = runner.read_session(str(tmp_path), ids[0])
    monkeypatch.undo()
    assert interned == []
    # and it still reads what it did: every session, every file; nothing the second time
    assert sorted(changed) == sorted(ids)
    assert all(json.loads(text)["id"] == sid for sid, files in changed.items()
               for text in files.values() if text is not None)
    assert again == {} and json.loads(one["state"] or "{}")["id"] == ids[0]
