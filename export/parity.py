"""How far an exported variant is from torch FP32, in the terms that matter downstream.

Per output: max abs difference (and the reference's own magnitude) and cosine similarity.
Backbones: the effect on PaDiM image scores, as Spearman rank correlation: a quick PaDiM is fitted
on the torch FP32 features of the same images, then every image is scored with the FP32 features
and with the variant's; rank correlation 1.0 means the variant orders parts exactly as FP32 does.
Supervised models: how often the decision (top class, or mask pixel) agrees with FP32.
"""

from __future__ import annotations

import numpy as np

from edge.bundle import Tap
from edge.padim.embed import embed, make_spec
from edge.padim.moments import Moments
from edge.padim.score import full_res_map, mahalanobis
from edge.padim.stats import gaussian_from_moments

PADIM_D = 100
PADIM_MEMORY = 1.5e9  # bytes the quick fit may use (the moments are P x d x d float64, a few copies)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float(np.array_equal(a, b))


def output_stats(ref: np.ndarray, got: np.ndarray) -> dict:
    ref, got = ref.astype(np.float32), got.astype(np.float32)
    return {"max_abs_diff": float(np.max(np.abs(ref - got))), "max_abs_ref": float(np.max(np.abs(ref))),
            "cosine": cosine(ref, got)}


def rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties get their average rank."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    """Spearman rank correlation; None when it is undefined (fewer than 3 values, or all tied)."""
    if len(a) < 3:
        return None
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra @ ra) * (rb @ rb))
    return float(ra @ rb / den) if den > 0 else None


class QuickPadim:
    """PaDiM fitted on reference tap outputs with edge's own code; scores images from any features."""

    def __init__(self, ref: dict[str, np.ndarray], taps: list[Tap], input_hw: tuple[int, int], seed: int = 0):
        total = sum(t.channels for t in taps)
        probe = make_spec(tuple(taps), input_hw, None)
        by_memory = int(np.sqrt(PADIM_MEMORY / (8 * 4 * probe.positions)))
        self.d = max(1, min(PADIM_D, total, by_memory))
        self.spec = make_spec(tuple(taps), input_hw, self.d, seed)
        self.input_hw = input_hw
        emb = embed(ref, self.spec)
        m = Moments.empty(emb.mean(axis=0).T)
        m.add(emb)
        self.n = m.n
        self.stats = gaussian_from_moments(m, self.spec.channel_idx, self.spec.grid, eps=0.01, shrinkage="auto")

    def image_scores(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        maps = mahalanobis(embed(outputs, self.spec), self.stats)
        return np.array([full_res_map(g, self.input_hw).max() for g in maps], dtype=np.float64)

    def effect(self, ref_scores: np.ndarray, outputs: dict[str, np.ndarray]) -> dict:
        s = self.image_scores(outputs)
        rel = np.abs(s - ref_scores) / np.maximum(np.abs(ref_scores), 1e-12)
        return {"spearman": spearman(ref_scores, s), "max_rel_score_diff": float(rel.max()),
                "d": self.d, "n_images": self.n, "fitted_on": "torch fp32 features of the same images"}


def decision_agreement(ref: np.ndarray, got: np.ndarray, activation: str) -> float:
    """Share of decisions (top class per row, or per mask pixel) that agree with the reference."""
    if activation == "sigmoid":
        return float(np.mean((ref > 0) == (got > 0)))
    return float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1)))
