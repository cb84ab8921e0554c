"""Inputs for parity checks and INT8 calibration: good images preprocessed exactly as the
device does (``edge.preprocess.to_tensor``), or smooth random images when none are given."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.bundle import InputSpec
from edge.errors import EdgeError
from edge.imageio import list_images, read_image
from edge.preprocess import to_tensor

from .errors import ExportError

DEFAULT_RANDOM = 16


def smooth_random_images(spec: InputSpec, n: int = DEFAULT_RANDOM, seed: int = 0) -> np.ndarray:
    """n normalised inputs with image-like statistics: coarse noise in 0..1, upsampled bilinearly."""
    rng = np.random.default_rng(seed)
    h, w = spec.height, spec.width
    out = []
    for _ in range(n):
        small = rng.random((max(h // 8, 1), max(w // 8, 1), 3), dtype=np.float32)
        img = (cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) * 255).round().astype(np.uint8)
        out.append(to_tensor(img, spec))  # BGR/RGB order does not matter for noise
    return np.stack(out)


def calibration_set(spec: InputSpec, calib_dir: str | Path | None, count: int, seed: int = 0
                    ) -> tuple[np.ndarray, dict]:
    """(N, 3, H, W) float32 inputs and a description of where they came from, for the manifest."""
    if calib_dir is None:
        x = smooth_random_images(spec, min(count, DEFAULT_RANDOM), seed)
        return x, {"source": "smooth random images", "seed": seed, "n_images": len(x)}
    try:
        paths = list_images([calib_dir])
    except EdgeError as e:
        raise ExportError(f"--calib-images: {e.message}") from None
    if not paths:
        raise ExportError(f"--calib-images {calib_dir}: no images found",
                          hint="point it at a folder of good images, e.g. train/good")
    if len(paths) > count:  # spread the pick over the whole folder (it is often sorted by time)
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, count).round().astype(int)]
    try:
        x = np.stack([to_tensor(read_image(p), spec) for p in paths])
    except EdgeError as e:
        raise ExportError(f"--calib-images: {e.message}") from None
    return x, {"source": f"good images from {Path(calib_dir).name}/", "n_images": len(x),
               "files": [p.name for p in paths][:64]}
