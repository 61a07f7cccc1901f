"""Run every ``bench/bench_*.py`` module's ``main()`` in turn (``make bench``), and write
``bench/REPORT.md``: the machine, the date, every ``[PASS]``/``[FAIL]`` line (each a figure next
to its in-run baseline and its target) and each benchmark's whole output.

``python -m bench NAME ...`` runs only the named modules (``supervision``, ``layout``, ...) and
leaves the report alone. Each benchmark measures its own baseline in the same run and prints a
ratio: machines here are noisy, so only ratios are comparable between runs.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import io
import os
import pkgutil
import platform
import subprocess
import sys
import time
from pathlib import Path

import bench

REPORT = Path(__file__).resolve().parent / "REPORT.md"


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy."""

    def __init__(self, out: io.TextIOBase) -> None:
        self.out = out
        self.kept = io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    wanted = {f"bench_{a.removeprefix('bench_')}" for a in argv}
    failed = 0
    outputs: list[tuple[str, float, str]] = []
    for name in names:
        if wanted and name not in wanted:
            continue
        tee = _Tee(sys.stdout)  # type: ignore[arg-type]
        with contextlib.redirect_stdout(tee):
            print(f"\n=== {name} ===", flush=True)
            started = time.perf_counter()
            module = importlib.import_module(f"bench.{name}")
            failed += int(module.main() or 0)
            took = time.perf_counter() - started
            print(f"--- {name} took {took:.1f} s", flush=True)
        outputs.append((name, took, tee.kept.getvalue()))
    if not wanted:
        REPORT.write_text(report(outputs))
        print(f"\nwrote {REPORT}")
    return 1 if failed else 0


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f", {kb / 2**20:.0f} GiB memory"
    return f"{cpu}, {os.cpu_count()} cores{memory}; {platform.platform()}; Python {platform.python_version()}"


def report(outputs: list[tuple[str, float, str]]) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=REPORT.parent).stdout.strip() or "unknown"
    lines = [
        "# Benchmark report",
        "",
        f"Written by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}`.",
        f"Machine: {machine()}.",
        "",
        "Every figure is a ratio against a baseline measured in the same run, or an absolute figure",
        "next to its target; the benchmarks ran one after another with nothing else on the machine.",
        "",
        "## Results",
        "",
    ]
    for name, took, text in outputs:
        verdicts = [line.strip() for line in text.splitlines() if line.lstrip().startswith(("[PASS]", "[FAIL]"))]
        lines.append(f"### {name.removeprefix('bench_')} ({took:.0f} s)")
        lines.append("")
        lines += [f"- {v}" for v in verdicts] or ["- (no verdict lines)"]
        lines.append("")
    lines += ["## Full output", ""]
    for name, _took, text in outputs:
        kept = [line for line in text.splitlines() if "[claude-flow-mcp]" not in line]
        lines += [f"<details><summary>{name}</summary>", "", "```", *kept, "```", "", "</details>", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
