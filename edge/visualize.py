"""Heat-map overlays drawn with OpenCV (the plots of the eval report are in edge/report/)."""

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
