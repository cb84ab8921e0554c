"""The native Mahalanobis kernel (``_mahal.c``) and the blocked factor layout it reads.

Scoring is bound by reading the per-position factors (see factor.py). The C kernel reads them
in row blocks of 8 (~58% of the dense bytes) and, by default, in fp16 with fp32 arithmetic
(~29%), and fuses the centring and the norm. It is built with the package when a C compiler is
present (``pip install`` does it; no Python headers needed) and loaded with ctypes, which releases
the GIL, so position ranges run on several cores at once. Without it, scoring falls back to the
numpy bands of :class:`~edge.padim.factor.BlockRows` (fp32), with the same results.

fp16 storage keeps each position's factor scaled to a maximum of 1 (the scale is kept in fp32), so
the precision does not depend on the feature scale: distances differ from fp32 by ~1e-4
relative, far below what moves a decision (tests pin it, and the benchmark compares AUROC).
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import ConfigError

LIBRARY = "libedge_mahal.so.1"  # built by setup.py from _mahal.c
ROWS = 8
PRECISIONS = ("auto", "fp16", "fp32")
ISA_NAMES = {2: "x86 AVX2/FMA/F16C", 1: "portable C, native fp16 (aarch64)", 0: "portable C"}
MIN_POSITIONS_PER_THREAD = 256  # below this a thread hand-off costs more than it saves
KERNEL_VERSION = 2  # _mahal.c's EI_VERSION; a library built from an older source reports less (or nothing: 1)
REBUILD = "python setup.py build_ext --inplace (or pip install -e . again)"

_lib = None
_lib_error: str | None = None
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _find_library() -> tuple[str | None, str]:
    """(path, why not) — EDGE_INSPECT_KERNEL names another build, or disables the kernel when empty."""
    override = os.environ.get("EDGE_INSPECT_KERNEL")
    if override is not None:
        return (override or None), "disabled (EDGE_INSPECT_KERNEL is empty)"
    path = Path(__file__).with_name(LIBRARY)
    return (str(path) if path.is_file() else None), ("not built (there was no C compiler when edge-inspect was "
                                                    "installed; install gcc and reinstall for faster scoring)")


def library():
    """The loaded kernel (ctypes.CDLL), or None when it was not built (see :func:`status`)."""
    global _lib, _lib_error
    if _lib is not None or _lib_error is not None:  # decided: no lock on the per-frame path
        return _lib
    with _lock:
        if _lib is None and _lib_error is None:
            path, why_not = _find_library()
            if path is None:
                _lib_error = why_not
            else:
                try:
                    lib = ctypes.CDLL(path)
                    lib.ei_isa.restype = ctypes.c_int
                    lib.isa = lib.ei_isa()  # the CPU does not change: ask once
                    lib.version = _built_version(lib)
                    lib.ei_block_elems.restype = ctypes.c_size_t
                    lib.ei_block_elems.argtypes = [ctypes.c_int]
                    lib.ei_mahalanobis.restype = ctypes.c_int
                    lib.ei_mahalanobis.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                                   ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                   ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
                    _lib = lib
                except (OSError, AttributeError) as e:
                    _lib_error = f"could not be loaded from {path}: {e}"
        return _lib


def _built_version(lib) -> int:
    try:
        f = lib.ei_version
    except AttributeError:  # built before the kernel had a version
        return 1
    f.restype = ctypes.c_int
    return int(f())


def status() -> str:
    """One line for ``edge-inspect info`` and logs: which Mahalanobis path scoring uses (and, when the
    library was built from an older _mahal.c than this package's, that it should be rebuilt: an editable
    install keeps the library it was built with, the same distances at an older speed)."""
    lib = library()
    if lib is None:
        return f"numpy bands, fp32 (native kernel {_lib_error})"
    line = f"native kernel, {ISA_NAMES.get(lib.isa, '?')}; factors {resolve_precision('auto')} by default"
    version = getattr(lib, "version", KERNEL_VERSION)
    if version != KERNEL_VERSION:
        line += (f"; WARNING: built from an older source (version {version}, this package's is {KERNEL_VERSION}):"
                 f" same distances, older speed; rebuild it: {REBUILD}")
    return line


def resolve_precision(precision: str) -> str:
    """``auto`` → fp16 where the CPU converts it natively (x86 F16C, aarch64), else fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"factor precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    lib = library()
    return "fp16" if lib is not None and lib.isa >= 1 else "fp32"


def block_elems(d: int) -> int:
    return sum(ROWS * min(r0 + ROWS, d) for r0 in range(0, d, ROWS))


def _pool_for(n: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool._max_workers < n:  # noqa: SLF001 - grow only
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="edge-mahal")
        return _pool


class BlockedFactor:
    """Per-position factors in the kernel's layout, with the means; computes distances."""

    def __init__(self, data: np.ndarray, scale: np.ndarray | None, mean: np.ndarray, force_generic: bool = False):
        self.data = data  # (P, S) float16 or float32
        self.scale = scale  # (P,) float32 for fp16, else None
        self.mean = np.ascontiguousarray(mean, dtype=np.float32)  # (P, d)
        self.d = int(mean.shape[1])
        self.force_generic = force_generic
        if data.shape != (mean.shape[0], block_elems(self.d)):
            raise ValueError(f"blocked factor shape {data.shape} does not fit mean {mean.shape}")

    @property
    def precision(self) -> str:
        return "fp16" if self.data.dtype == np.float16 else "fp32"

    @property
    def buffers(self) -> list[np.ndarray]:
        """Every array scoring reads for each image."""
        return [self.data, self.mean] + ([self.scale] if self.scale is not None else [])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.buffers)

    @classmethod
    def from_dense(cls, factor: np.ndarray, mean: np.ndarray, precision: str = "fp16", chunk: int = 512,
                   **kw) -> "BlockedFactor":
        """(P, d, d) lower-triangular factors → blocked layout, fp16 (scaled per position) or fp32."""
        if precision not in ("fp16", "fp32"):
            raise ValueError(precision)
        p, d, _ = factor.shape
        dtype = np.float16 if precision == "fp16" else np.float32
        out = np.empty((p, block_elems(d)), dtype)
        scale = np.empty(p, np.float32) if precision == "fp16" else None
        for a in range(0, p, chunk):
            f = factor[a:a + chunk]
            parts = []
            for r0 in range(0, d, ROWS):
                nc, rows = min(r0 + ROWS, d), min(ROWS, d - r0)
                blk = np.zeros((f.shape[0], nc, ROWS), np.float32)
                blk[:, :, :rows] = f[:, r0:r0 + rows, :nc].transpose(0, 2, 1)
                parts.append(blk.reshape(f.shape[0], -1))
            block = np.concatenate(parts, axis=1)
            if scale is not None:
                s = np.abs(block).max(axis=1)
                s[s == 0] = 1.0
                scale[a:a + chunk] = s
                block /= s[:, None]
            out[a:a + chunk] = block
        return cls(out, scale, mean, **kw)

    def distances(self, emb: np.ndarray, threads: int | None = None) -> np.ndarray:
        """Embedding (B, d, P) float32 → distances (B, P) float32, on ``threads`` cores (default: all)."""
        lib = library()
        if lib is None:
            raise RuntimeError(f"the native Mahalanobis kernel is {_lib_error}")
        x = np.ascontiguousarray(emb, dtype=np.float32)
        b, d, p = x.shape
        if d != self.d or p != self.data.shape[0]:
            raise ValueError(f"embedding {x.shape} does not fit statistics (d={self.d}, P={self.data.shape[0]})")
        out = np.empty((b, p), np.float32)
        args = (self.data.ctypes.data, int(self.data.dtype == np.float16),
                self.scale.ctypes.data if self.scale is not None else None, self.mean.ctypes.data, x.ctypes.data,
                b, d, p)

        def run(p0: int, p1: int) -> int:
            return lib.ei_mahalanobis(*args, p0, p1, out.ctypes.data, int(self.force_generic))

        n = max(1, min(threads or os.cpu_count() or 1, p // MIN_POSITIONS_PER_THREAD))
        if n == 1:
            rcs = [run(0, p)]
        else:
            edges = [p * i // n for i in range(n + 1)]
            futs = [_pool_for(n - 1).submit(run, a, z) for a, z in zip(edges[1:-1], edges[2:])]
            rcs = [run(edges[0], edges[1])] + [f.result() for f in futs]  # this thread takes the first range
        if any(rcs):
            raise MemoryError("the Mahalanobis kernel could not allocate its work buffer")
        return out
