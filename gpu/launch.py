"""CUDA launch sizing and error reporting.

Block size comes from the compiled kernel and the device: the largest-occupancy multiple of the
warp size that the kernel's register use allows (asked of the driver's occupancy calculator),
and the grid is capped at SMs x resident blocks x 2 since every kernel uses grid-stride loops.
Until a kernel has been compiled (its first launch) its register use is unknown, so the first
launch uses a conservative four warps.

Every launch and every synchronising copy goes through here so that a CUDA error (launch
failure, illegal address found at the next sync, ...) becomes a ``CudaKernelError`` naming
the kernel, instead of a bare driver error far from its cause.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import cuda

__all__ = ["CudaKernelError", "Launcher"]


class CudaKernelError(RuntimeError):
    """A CUDA kernel failed; the message names the kernel (and the launch shape)."""


class Launcher:
    """Launches kernels with occupancy-derived shapes; turns CUDA errors into CudaKernelError."""

    def __init__(self, sync_each_launch: bool = False) -> None:
        dev = cuda.get_current_device()
        # The simulator's fake device has none of these attributes: fall back to one warp on
        # one SM, which is also what keeps the simulator (one Python thread per GPU thread)
        # fast enough for tests.
        self.warp = int(getattr(dev, "WARP_SIZE", 32))
        self.sm_count = int(getattr(dev, "MULTIPROCESSOR_COUNT", 1))
        self.max_block = int(getattr(dev, "MAX_THREADS_PER_BLOCK", self.warp))
        self.max_sm_threads = int(getattr(dev, "MAX_THREADS_PER_MULTI_PROCESSOR", self.max_block))
        self.sync_each_launch = sync_each_launch
        self._shape: dict[str, tuple[int, int]] = {}  # name -> (block, resident blocks per SM)
        self.last_kernel = "(none)"

    def _first_shape(self) -> tuple[int, int]:
        block = min(self.max_block, 4 * self.warp)
        return block, max(1, self.max_sm_threads // block)

    def _tuned_shape(self, kernel: Any) -> tuple[int, int]:
        """Best (block, blocks per SM) for a compiled kernel, from the occupancy calculator."""
        try:
            limit = kernel.get_max_threads_per_block()
            if isinstance(limit, dict):
                limit = min(limit.values())
            limit = min(int(limit), self.max_block)
        except Exception:  # noqa: BLE001 - simulator, or an API change: stay with device limits
            return self._first_shape()
        limit = max(self.warp, limit - limit % self.warp)
        try:
            overload = next(iter(kernel.overloads.values()))
            cufunc = overload._codelibrary.get_cufunc()
            ctx = cuda.current_context()
            best = (0, limit, 1)
            for block in range(self.warp, limit + 1, self.warp):
                per_sm = int(ctx.get_active_blocks_per_multiprocessor(cufunc, block, 0))
                threads = per_sm * block
                # Most resident threads; on a tie the smaller block (more blocks to balance).
                if threads > best[0]:
                    best = (threads, block, max(1, per_sm))
            if best[0] > 0:
                return best[1], best[2]
        except Exception:  # noqa: BLE001 - occupancy API unavailable: the register-derived limit is safe
            pass
        return limit, max(1, self.max_sm_threads // limit)

    def launch(self, name: str, kernel: Any, n_items: int, *args: Any) -> None:
        """Launch ``kernel`` over ``n_items`` work items (grid-stride) with ``args``."""
        block, per_sm = self._shape.get(name) or self._first_shape()
        grid = max(1, min((max(n_items, 1) + block - 1) // block, self.sm_count * per_sm * 2))
        self.last_kernel = name
        try:
            kernel[grid, block](*args)
        except Exception as exc:
            raise CudaKernelError(
                f"CUDA kernel {name} failed (grid={grid}, block={block}): {exc}"
            ) from exc
        if name not in self._shape:
            self._shape[name] = self._tuned_shape(kernel)
        if self.sync_each_launch:
            self.sync(name)

    def sync(self, what: str) -> None:
        """Wait for the device; an asynchronous error is reported against the last kernel."""
        try:
            cuda.synchronize()
        except Exception as exc:
            raise CudaKernelError(
                f"CUDA error at {what} (last kernel launched: {self.last_kernel}): {exc}"
            ) from exc

    def copy_to_host(self, device_array: Any, n: int, out: np.ndarray) -> None:
        """Copy the first ``n`` items to ``out`` (synchronises, so errors surface here)."""
        try:
            device_array[:n].copy_to_host(out[:n])
        except Exception as exc:
            raise CudaKernelError(
                f"CUDA error copying results (last kernel launched: {self.last_kernel}): {exc}"
            ) from exc
