"""Run every ``bench/bench_*.py`` module's ``main()`` in turn (``make bench``).

``python -m bench NAME ...`` runs only the named modules (``supervision``, ``layout``, ...).
Each benchmark measures its own baseline in the same run and prints a ratio: machines here are
noisy, so only ratios are comparable between runs.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    wanted = {f"bench_{a.removeprefix('bench_')}" for a in argv}
    failed = 0
    for name in names:
        if wanted and name not in wanted:
            continue
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        failed += int(module.main() or 0)
        print(f"--- {name} took {time.perf_counter() - started:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
