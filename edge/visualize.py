"""Pictures: heat-map overlays, ROC curves and score histograms, drawn with OpenCV only."""

from __future__ import annotations

import cv2
import numpy as np


def heat_overlay(img_bgr: np.ndarray, amap: np.ndarray, mask: np.ndarray | None, threshold: float,
                 label: str | None = None) -> np.ndarray:
    """Heat map over the image (red = anomalous), mask boundary in white, optional caption.

    Colours are scaled so that the image threshold sits at 2/3 of the colour bar: anything
    orange-red or hotter is above the threshold.
    """
    scale = np.clip(amap / (1.5 * threshold), 0, 1)
    heat = cv2.applyColorMap((scale * 255).astype(np.uint8), cv2.COLORMAP_JET)
    out = cv2.addWeighted(img_bgr, 0.55, heat, 0.45, 0)
    if mask is not None and mask.any():
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), max(1, min(out.shape[:2]) // 200))
    if label:
        _caption(out, label)
    return out


def _caption(img: np.ndarray, text: str) -> None:
    s = max(0.4, min(img.shape[:2]) / 500)
    t = max(1, int(round(s * 2)))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, s, t)
    cv2.rectangle(img, (0, 0), (w + 8, h + base + 8), (0, 0, 0), -1)
    cv2.putText(img, text, (4, h + 4), cv2.FONT_HERSHEY_SIMPLEX, s, (255, 255, 255), t, cv2.LINE_AA)


def _axes(size: int, title: str, xlabel: str, ylabel: str):
    img = np.full((size, size, 3), 255, np.uint8)
    m = 50
    x0, y0, x1, y1 = m, size - m, size - 20, 30
    cv2.rectangle(img, (x0, y1), (x1, y0), (0, 0, 0), 1)
    cv2.putText(img, title, (x0, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, xlabel, (x0 + (x1 - x0) // 2 - 40, size - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(img, ylabel, (4, y1 - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img, (x0, y0, x1, y1)


def roc_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], size: int = 420) -> np.ndarray:
    """ROC curves: {label: (fpr, tpr, auroc)} → BGR image."""
    img, (x0, y0, x1, y1) = _axes(size, "ROC", "false positive rate", "true positive rate")
    cv2.line(img, (x0, y0), (x1, y1), (180, 180, 180), 1, cv2.LINE_AA)
    colours = [(200, 80, 0), (0, 0, 200), (0, 150, 0), (150, 0, 150)]
    for i, (name, (fpr, tpr, auc)) in enumerate(curves.items()):
        pts = np.stack([x0 + fpr * (x1 - x0), y0 - tpr * (y0 - y1)], axis=1).astype(np.int32)
        c = colours[i % len(colours)]
        cv2.polylines(img, [pts], False, c, 2, cv2.LINE_AA)
        cv2.putText(img, f"{name}  AUROC {auc:.3f}", (x0 + 60, y0 - 15 - 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, c,
                    1, cv2.LINE_AA)
    return img


def histogram_plot(groups: dict[str, np.ndarray], threshold: float, size: int = 420, bins: int = 30) -> np.ndarray:
    """Normalised-score histograms per group with the threshold (1.0) marked."""
    allv = np.concatenate([np.asarray(v, float) for v in groups.values() if len(v)])
    lo, hi = float(min(allv.min(), threshold)), float(max(allv.max(), threshold))
    hi = hi + 1e-9 + 0.02 * (hi - lo)
    img, (x0, y0, x1, y1) = _axes(size, "score distribution (line = threshold)", "score", "count")
    edges = np.linspace(lo, hi, bins + 1)
    counts = {k: np.histogram(v, edges)[0] for k, v in groups.items()}
    top = max(1, max(c.max() for c in counts.values()))
    colours = [(0, 150, 0), (0, 0, 200), (200, 80, 0), (150, 0, 150)]
    bw = (x1 - x0) / bins
    for i, (k, c) in enumerate(counts.items()):
        col = colours[i % len(colours)]
        for j, n in enumerate(c):
            if n:
                xa = int(x0 + j * bw + i * bw / len(counts))
                xb = int(xa + bw / len(counts))
                cv2.rectangle(img, (xa, int(y0 - n / top * (y0 - y1))), (xb, y0), col, -1)
        cv2.putText(img, k, (x1 - 120, y1 + 18 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, col, 1, cv2.LINE_AA)
    tx = int(x0 + (threshold - lo) / (hi - lo) * (x1 - x0))
    cv2.line(img, (tx, y0), (tx, y1), (0, 0, 0), 2)
    return img
