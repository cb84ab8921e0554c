"""One BLAS thread around loops over thousands of small matrices.

PaDiM works on P independent d×d problems (d ≈ 100). OpenBLAS threads each tiny call, and on a
busy 2-core device the hand-offs cost more than the work: 4096 inverses of 100×100 took 10 s
with two threads and 1.5 s with one on the benchmark machine. The limit is scoped (a context
manager), so the process's other numpy code keeps its setting.
"""

from __future__ import annotations

from contextlib import nullcontext

try:
    from threadpoolctl import ThreadpoolController
except ImportError:  # optional: without it BLAS keeps its own thread count
    ThreadpoolController = None

_controller = None


def one_blas_thread():
    """Context manager: BLAS/LAPACK single-threaded inside, restored on exit."""
    global _controller
    if ThreadpoolController is None:
        return nullcontext()
    if _controller is None:
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")
