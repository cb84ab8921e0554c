"""Losses for rare defects: class-weighted cross-entropy for the class head; per-class BCE (positive
pixels up-weighted) plus soft Dice for mask heads, against masks pooled to the logits' resolution.

Soft Dice is taken per image (``dice_over="image"``, the default) and averaged over the images that
hold the class: the mean Dice over defective images that `eval` reports weighs a 150-pixel scratch
as much as a 2,000-pixel stain, where one Dice over the whole batch (``"batch"``) is ruled by the
large ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

MAX_POS_WEIGHT = 10.0
DICE_OVER = ("image", "batch")


def class_weights(n_good: int, n_defect: int) -> tuple[float, float]:
    """(good, defect) weights that balance the two classes as one epoch samples them."""
    total = n_good + n_defect
    return total / (2.0 * max(n_good, 1)), total / (2.0 * max(n_defect, 1))


def pixel_pos_weight(mask: np.ndarray, n_classes: int) -> list[float]:
    """Per mask class: sqrt(background / defect pixels), capped, so thin defects still pull."""
    out = []
    for c in range(n_classes):
        pos = float((mask == c + 1).sum())
        neg = float(mask.size) - pos
        out.append(float(min(MAX_POS_WEIGHT, max(1.0, np.sqrt(neg / max(pos, 1.0))))))
    return out


def mask_targets(mask_idx: torch.Tensor, n_classes: int, size: tuple[int, int]) -> torch.Tensor:
    """(B, H, W) class indices → (B, C, h, w) share of each class's pixels in every logit cell."""
    onehot = torch.stack([(mask_idx == c + 1) for c in range(n_classes)], 1).float()
    if tuple(onehot.shape[-2:]) != tuple(size):
        onehot = F.adaptive_avg_pool2d(onehot, size)
    return onehot


@dataclass(frozen=True)
class Objective:
    """The training loss of one model kind; ``outputs`` is the model's tuple of tensors."""

    kind: str
    class_weight: tuple[float, ...] | None = None  # indexed by class index
    pos_weight: tuple[float, ...] | None = None  # per mask class
    dice_weight: float = 1.0
    mask_weight: float = 1.0
    dice_over: str = "image"  # DICE_OVER: soft Dice per image (mean over images with the class), or per batch

    def class_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        w = torch.tensor(self.class_weight, dtype=logits.dtype) if self.class_weight else None
        return F.cross_entropy(logits, target, weight=w)

    def mask_loss(self, logits: torch.Tensor, mask_idx: torch.Tensor) -> torch.Tensor:
        tgt = mask_targets(mask_idx, logits.shape[1], logits.shape[-2:])
        pw = torch.tensor(self.pos_weight, dtype=logits.dtype).view(1, -1, 1, 1)
        bce = F.binary_cross_entropy_with_logits(logits, tgt, pos_weight=pw)
        p = torch.sigmoid(logits)
        if self.dice_over == "batch":
            inter, denom = (p * tgt).sum((0, 2, 3)), p.sum((0, 2, 3)) + tgt.sum((0, 2, 3))
            dice = 1 - (2 * inter + 1) / (denom + 1)  # per class over the batch; 0 when perfect
            return bce + self.dice_weight * dice.mean()
        inter, denom = (p * tgt).sum((2, 3)), p.sum((2, 3)) + tgt.sum((2, 3))  # (B, C)
        has = tgt.sum((2, 3)) > 0
        if not has.any():  # a batch of good parts: BCE alone keeps their masks empty
            return bce
        dice = 1 - (2 * inter + 1) / (denom + 1)
        return bce + self.dice_weight * dice[has].mean()

    def __call__(self, outputs: tuple[torch.Tensor, ...], target: torch.Tensor,
                 mask_idx: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "classifier":
            return self.class_loss(outputs[0], target)
        if self.kind == "segmenter":
            return self.mask_loss(outputs[0], mask_idx)
        return self.class_loss(outputs[0], target) + self.mask_weight * self.mask_loss(outputs[1], mask_idx)

    def describe(self) -> dict:
        d: dict = {"kind": self.kind}
        if self.class_weight:
            d["class_loss"] = "cross-entropy"
            d["class_weight"] = [round(w, 4) for w in self.class_weight]
        if self.pos_weight:
            d["mask_loss"] = f"BCE(pos_weight) + {self.dice_weight:g} x soft Dice per {self.dice_over}"
            d["pos_weight"] = [round(w, 3) for w in self.pos_weight]
        if self.kind == "multitask":
            d["mask_weight"] = self.mask_weight
        return d
