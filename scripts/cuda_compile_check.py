"""Compile every CUDA layout kernel for a real GPU (sm_90, an H100) on a machine without one.

The tests run the kernels in Numba's CUDA simulator, which executes Python and so cannot tell
whether a kernel compiles for a device. This check closes that gap as far as a GPU-less machine
can: (1) run the engine in the simulator and record each kernel's argument types from real
launches; (2) compile each kernel to PTX with the real numba-cuda target (NVVM); (3) assemble
the PTX with ptxas for sm_90 and report registers and spills. Needs the CUDA toolkit's NVVM and
ptxas (this machine kind has /usr/local/cuda-13.0) and NVRTC, which it installs from PyPI into
.cuda-check/ on first use. `make cuda-check` runs it. Not part of `make test`: it downloads
58 MB and says nothing about speed; `make bench` on a GPU machine measures that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIDE = ROOT / ".cuda-check"
TOOLKIT = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda-13.0"))
ARCH = (9, 0)

RECORD = r'''
import json, sys
import numpy as np
import gpu.launch as launch
seen = {}
original = launch.Launcher.launch
def typestr(a):
    if hasattr(a, "copy_to_host"):
        a = a.copy_to_host()
    if isinstance(a, np.ndarray):
        return f"{a.dtype}[" + ", ".join([":"] * (a.ndim - 1) + ["::1"]) + "]"
    if isinstance(a, (bool, np.bool_)):
        return "boolean"
    if isinstance(a, int):
        return "int64"
    if isinstance(a, float):
        return "float64"
    return str(np.asarray(a).dtype)
def recording(self, name, kernel, n, *args):
    seen.setdefault(name, "void(" + ", ".join(typestr(a) for a in args) + ")")
    return original(self, name, kernel, n, *args)
launch.Launcher.launch = recording
from gpu import LayoutEngine, SimParams
for threshold in (10**9, 1):  # exact mode, then grid mode
    engine = LayoutEngine(SimParams(grid_threshold=threshold), backend="cuda")
    n = 64
    engine.set_graph(np.arange(n), np.arange(n - 1), np.arange(1, n))
    engine.pin(3, (1.0, 2.0, 3.0))
    engine.step(2)
json.dump(seen, open(sys.argv[1], "w"))
'''

COMPILE = r'''
import json, sys
from types import SimpleNamespace
import numba.cuda.dispatcher as dispatcher
from numba import cuda
# No GPU here: device functions ask the current device for its compute capability.
dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=tuple(json.loads(sys.argv[3])))
import gpu.cuda as kernels
sigs = json.load(open(sys.argv[1]))
for name, sig in sorted(sigs.items()):
    ptx, _ = cuda.compile_ptx(getattr(kernels, name).py_func, sig, cc=tuple(json.loads(sys.argv[3])))
    open(f"{sys.argv[2]}/{name}.ptx", "w").write(ptx)
    print(f"PTX  {name:18s} {len(ptx):7,d} bytes  {sig}")
'''


def nvrtc_lib() -> Path:
    libs = sorted(SIDE.glob("nvidia/*/lib/libnvrtc.so.*"))
    if not libs:
        print("installing NVRTC (nvidia-cuda-nvrtc, 58 MB) into .cuda-check/ ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                        str(SIDE), "nvidia-cuda-nvrtc>=13,<14"], check=True)
        libs = sorted(SIDE.glob("nvidia/*/lib/libnvrtc.so.*"))
    return libs[0].parent


def main() -> int:
    ptxas = TOOLKIT / "bin" / "ptxas"
    if not (TOOLKIT / "nvvm").is_dir() or not ptxas.exists():
        print(f"no CUDA toolkit at {TOOLKIT} (NVVM and ptxas needed; set CUDA_HOME)")
        return 2
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{SIDE}", "CUDA_HOME": str(TOOLKIT)}
    with tempfile.TemporaryDirectory() as tmp:
        sigs = Path(tmp) / "sigs.json"
        subprocess.run([sys.executable, "-c", RECORD, str(sigs)], check=True,
                       env={**env, "NUMBA_ENABLE_CUDASIM": "1"})
        lib = nvrtc_lib()
        env["LD_LIBRARY_PATH"] = f"{lib}:{TOOLKIT / 'nvvm' / 'lib64'}"
        done = subprocess.run([sys.executable, "-c", COMPILE, str(sigs), tmp, json.dumps(ARCH)],
                              env=env)
        if done.returncode:
            print("FAIL: a kernel did not compile to PTX")
            return 1
        failures = 0
        arch = f"sm_{ARCH[0]}{ARCH[1]}"
        for ptx in sorted(Path(tmp).glob("*.ptx")):
            out = subprocess.run([str(ptxas), f"-arch={arch}", "-O3", "-v", str(ptx), "-o",
                                  os.devnull], capture_output=True, text=True)
            usage = [line.split(":", 1)[-1].strip() for line in out.stderr.splitlines()
                     if "Used" in line or "spill" in line]
            status = "SASS" if out.returncode == 0 else "FAIL"
            failures += out.returncode != 0
            print(f"{status} {ptx.stem:18s} {arch}: {'; '.join(usage[:2]) or out.stderr[:300]}")
        print(f"{'PASS' if not failures else 'FAIL'}: {len(json.loads(sigs.read_text()))} kernels "
              f"compiled to PTX and assembled for {arch}")
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
