"""A supervised model's raw outputs → probabilities, read as the bundle's manifest says.

Nothing here guesses a convention: which index is a good part (``ok_class``), which mask channel
is background (``background_class``) and the activation all come from the manifest's ``outputs``
(:class:`edge.bundle.OutputSpec`). Teams differ: defect may be class 0.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..bundle import OutputSpec
from ..errors import BundleError


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    z = x - x.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def check_class_head(spec: OutputSpec, where: str) -> None:
    """Refuse a class head the runtime cannot turn into P(NG), saying what to re-export."""
    if spec.ok_class is None:
        raise BundleError(f"{where}: output {spec.name!r} does not say which class is a good part "
                          f"(labels {', '.join(n for _, n in spec.labels)})",
                          hint="re-export with `--ok-label NAME` so the runtime knows what OK means")


def class_probabilities(spec: OutputSpec, logits: np.ndarray) -> np.ndarray:
    """(B, channels) logits → (B, n_labels) probabilities, columns in label-index order.

    A single sigmoid logit is P(label 1), so it gives two columns (label 0, label 1). Activation
    "none" declares raw scores whose largest wins; they are read as logits (softmax), which keeps
    that order.
    """
    x = np.asarray(logits, np.float64).reshape(len(logits), -1)
    if x.shape[1] != spec.channels:
        raise BundleError(f"output {spec.name!r} gives {x.shape[1]} values per image; the manifest says "
                          f"{spec.channels}", hint="the model and its manifest do not match; re-export the bundle")
    if spec.activation == "sigmoid" and spec.channels == 1:
        p1 = _sigmoid(x[:, 0])
        return np.stack([1.0 - p1, p1], axis=1)
    if spec.activation == "sigmoid":  # independent labels: normalise so the columns read as shares
        p = _sigmoid(x)
        return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    return _softmax(x, 1)


def p_ng(spec: OutputSpec, probs: np.ndarray) -> np.ndarray:
    """P(not good) per image: one minus the probability of the ``ok_class`` column."""
    idx = [i for i, _ in spec.labels].index(spec.ok_class)
    return 1.0 - probs[:, idx]


def defect_channels(spec: OutputSpec) -> list[tuple[int, str]]:
    """(channel, class name) of every mask channel that is a defect class (background left out)."""
    return [(i, n) for i, n in spec.labels if i != spec.background_class]


def mask_probabilities(spec: OutputSpec, logits: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """One image's (channels, h, w) mask logits → (channels, H, W) float32 probabilities at the
    input image's size: the logits resized bilinearly (half-pixel centres), then the activation,
    as the trainer's validation does when it sets the thresholds."""
    x = np.asarray(logits, np.float32)
    if x.ndim != 3 or x.shape[0] != spec.channels:
        raise BundleError(f"output {spec.name!r} gives shape {x.shape} per image; the manifest says "
                          f"{spec.channels} channels", hint="re-export the bundle")
    h, w = shape
    if x.shape[1:] != (h, w):
        x = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in x])
    return (_softmax(x, 0) if spec.activation == "softmax" else _sigmoid(x)).astype(np.float32)


def class_masks(spec: OutputSpec, probs: np.ndarray, mask_threshold: float) -> dict[str, np.ndarray]:
    """Per defect class, the boolean mask of its pixels: probability ≥ ``mask_threshold``; with a
    softmax head the class must also be the pixel's most probable one (one class per pixel)."""
    best = probs.argmax(axis=0) if spec.activation == "softmax" else None
    out = {}
    for ch, name in defect_channels(spec):
        m = probs[ch] >= mask_threshold
        if best is not None:
            m &= best == ch
        out[name] = m
    return out
