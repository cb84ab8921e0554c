"""Timing on a shared machine: interleave the contenders, repeat, report medians and p99.

Other work on the machine comes and goes; timing A for a minute and then B for a minute would
measure the load as much as A and B. Here every repetition runs each contender once, in a
rotating order, so all of them see the same conditions.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def interleaved(fns: dict[str, Callable[[int], object]], reps: int, warmup: int = 2) -> dict[str, np.ndarray]:
    """Run each ``fn(i)`` ``reps`` times, round-robin with a rotating start; seconds per call."""
    names = list(fns)
    for i in range(warmup):
        for n in names:
            fns[n](i)
    out = {n: np.empty(reps) for n in names}
    for i in range(reps):
        k = i % len(names)
        for n in names[k:] + names[:k]:
            t0 = time.perf_counter()
            fns[n](i)
            out[n][i] = time.perf_counter() - t0
    return out


def summary_ms(samples: np.ndarray, per: int = 1) -> dict[str, float]:
    """Median and p99 in ms per item (``per`` items per call)."""
    s = np.asarray(samples) * 1000.0 / per
    return {"median_ms": float(np.median(s)), "p99_ms": float(np.percentile(s, 99)), "n": int(s.size)}


def memory_bandwidth_gbs(mib: int = 1024, reps: int = 7) -> float:
    """Read bandwidth from a buffer far larger than the caches, as one gemv (BLAS, all threads)."""
    n = mib * 2**20 // 4
    a = np.ones((n // 1024, 1024), np.float32)
    v = np.ones(1024, np.float32)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ v
        ts.append(time.perf_counter() - t0)
    return a.nbytes / float(np.median(ts)) / 1e9


def make_reader(arrays: list[np.ndarray]) -> Callable[[int], object]:
    """A function that reads every byte of ``arrays`` once (as a gemv: memory-bound, one pass)."""
    mats = [a.reshape(-1, a.shape[-1]) for a in arrays]
    vecs = [np.ones(m.shape[1], m.dtype) for m in mats]

    def read(_i: int = 0):
        return [m @ v for m, v in zip(mats, vecs)]

    return read
