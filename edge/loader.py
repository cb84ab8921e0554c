"""Decode images ahead of the model in a small thread pool, with bounded read-ahead."""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import ImageError
from .imageio import read_image

Loaded = tuple[Path, "np.ndarray | ImageError"]


def _read(p: Path):
    try:
        return read_image(p)
    except ImageError as e:
        return e
    except Exception as e:  # a decoder crash must become a record, not end the run
        return ImageError(f"{p}: {type(e).__name__}: {e}")


def iter_batches(paths: list[Path], batch_size: int = 8, workers: int = 2) -> Iterator[list[Loaded]]:
    """Yield lists of (path, image-or-ImageError), in order. At most 2 batches are decoded ahead,
    so memory does not grow with the number of images."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque = deque()
        it = iter(paths)
        ahead = 2 * batch_size

        def fill():
            while len(pending) < ahead:
                try:
                    p = next(it)
                except StopIteration:
                    return
                pending.append((p, pool.submit(_read, p)))

        fill()
        while pending:
            batch = []
            while pending and len(batch) < batch_size:
                p, fut = pending.popleft()
                batch.append((p, fut.result()))
            fill()
            yield batch
