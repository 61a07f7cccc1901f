"""3D force-directed graph layout on CUDA (numba.cuda) or CPU (numba parallel), same results.

NumPy arrays in, arrays out: no actors and no I/O here. See docs/gpu.md.
"""

from gpu.engine import CudaUnavailableError, LayoutEngine, cuda_available
from gpu.params import GRID_THRESHOLD_N, SimParams

__all__ = ["GRID_THRESHOLD_N", "CudaUnavailableError", "LayoutEngine", "SimParams", "cuda_available"]
