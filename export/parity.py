"""How far an exported variant is from torch FP32, in the terms that matter downstream.

Per output: max abs difference (and the reference's own magnitude) and cosine similarity.
Backbones: the effect on PaDiM image scores, as Spearman rank correlation (1.0: the variant orders
parts exactly as FP32 does); see :class:`QuickPadim` for the two ways it is measured.
Supervised models: how often the decision (top class, or mask pixel) agrees with FP32.
"""

from __future__ import annotations

import numpy as np

from edge.bundle import Tap
from edge.padim.embed import embed, make_spec
from edge.padim.moments import Moments
from edge.padim.score import full_res_map, image_score, mahalanobis
from edge.padim.stats import gaussian_from_moments

# Embedding size of the quick PaDiM. Its fit costs ~d³ per position (the precision factor), and it runs
# twice per variant: 50 keeps a 224 px export with 32 images to seconds; it is recorded as "d".
PADIM_D = 50
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
    """PaDiM with edge's own code, fitted on torch FP32 tap outputs, to see what a variant does to scores.

    Two questions, two numbers:

    * ``spearman``: fit with the variant, as a device does when it builds its inspector with that
      variant. Each side (FP32 and the variant) fits its own PaDiM on every other image and scores
      the images left out; the rank correlation of those held-out scores.
    * ``spearman_fp32_stats``: keep statistics fitted on FP32 features (an inspector fitted with
      the FP32 model) and score all images with the variant's features instead.
    """

    def __init__(self, ref: dict[str, np.ndarray], taps: list[Tap], input_hw: tuple[int, int], seed: int = 0):
        total = sum(t.channels for t in taps)
        probe = make_spec(tuple(taps), input_hw, None)
        by_memory = int(np.sqrt(PADIM_MEMORY / (8 * 4 * probe.positions)))
        self.d = max(1, min(PADIM_D, total, by_memory))
        self.spec = make_spec(tuple(taps), input_hw, self.d, seed)
        self.input_hw = input_hw
        n = len(next(iter(ref.values())))
        self.fit_idx, self.held_idx = np.arange(0, n, 2), np.arange(1, n, 2)
        ref_emb = embed(ref, self.spec)
        self.all_stats = self._fit(ref_emb)
        self.ref_all = self._scores(ref_emb, self.all_stats)
        self.ref_held = self._held_out_scores(ref_emb)

    def _fit(self, emb: np.ndarray):
        m = Moments.empty(emb.mean(axis=0).T)
        m.add(emb)
        return gaussian_from_moments(m, self.spec.channel_idx, self.spec.grid, eps=0.01, shrinkage="auto")

    def _scores(self, emb: np.ndarray, stats) -> np.ndarray:
        maps = mahalanobis(emb, stats)
        return np.array([image_score(full_res_map(g, self.input_hw)) for g in maps], dtype=np.float64)

    def _held_out_scores(self, emb: np.ndarray) -> np.ndarray:
        if len(self.held_idx) == 0:
            return np.zeros(0)
        return self._scores(emb[self.held_idx], self._fit(emb[self.fit_idx]))

    def effect(self, outputs: dict[str, np.ndarray]) -> dict:
        emb = embed(outputs, self.spec)
        held = self._held_out_scores(emb)
        swapped = self._scores(emb, self.all_stats)
        rel = np.abs(swapped - self.ref_all) / np.maximum(np.abs(self.ref_all), 1e-12)
        return {"spearman": spearman(self.ref_held, held), "fit_images": len(self.fit_idx),
                "held_out_images": len(self.held_idx),
                "spearman_fp32_stats": spearman(self.ref_all, swapped),
                "max_rel_score_diff_fp32_stats": float(rel.max()), "d": self.d}


def decision_agreement(ref: np.ndarray, got: np.ndarray, activation: str) -> float:
    """Share of decisions (top class per row, or per mask pixel) that agree with the reference."""
    if activation == "sigmoid":
        return float(np.mean((ref > 0) == (got > 0)))
    return float(np.mean(ref.argmax(axis=1) == got.argmax(axis=1)))
