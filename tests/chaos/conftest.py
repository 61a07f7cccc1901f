"""What a process holds, read from /proc (no psutil): its threads, open files, resident memory
and every process below it. Chaos tests compare these before and after faults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Holdings", "descendants", "holdings"]


def descendants(pid: int) -> set[int]:
    """Every live process whose chain of parents reaches ``pid`` (zombies left out)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: the fields start after the last ')'
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] == "Z":
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


@dataclass(frozen=True)
class Holdings:
    threads: int
    fds: int
    rss_mb: float
    children: frozenset[int]

    def __str__(self) -> str:
        return (f"{self.threads} threads, {self.fds} fds, {self.rss_mb:.0f} MB RSS, "
                f"{len(self.children)} processes below")


def holdings(pid: int) -> Holdings:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return Holdings(len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd")),
                    rss_kb / 1024, frozenset(descendants(pid)))
