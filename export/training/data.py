"""The labelled folder in memory: every image preprocessed as the device does, its label, its mask;
a seeded stratified validation split; oversampled, flipped and rotated training batches.

All of the folder trains: ``train/good``, ``test/good`` and every ``test/<kind>`` (with
``ground_truth/<kind>/<name>_mask.png``), read with :func:`edge.dataset.load_category`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from edge.bundle import InputSpec
from edge.dataset import load_category
from edge.errors import DataError, EdgeError
from edge.imageio import read_image, read_mask
from edge.preprocess import to_tensor

from .request import AUGMENT_MODES

MIN_PER_SIDE = 2  # good and defect images each: one to train on, one to validate with


@dataclass(frozen=True)
class TrainingSet:
    """N images as the model sees them, with labels and per-pixel mask classes."""

    x: np.ndarray  # (N, 3, H, W) float32, normalised exactly as edge.preprocess.to_tensor does
    is_defect: np.ndarray  # (N,) bool
    kinds: tuple[str, ...]  # per image: "good" or its defect kind
    mask: np.ndarray | None  # (N, H, W) uint8: 0 background, c + 1 for mask class c; None without masks
    mask_class_names: tuple[str, ...]  # e.g. ("defect",) or ("crack", "hole")
    paths: tuple[Path, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx: np.ndarray) -> TrainingSet:
        return TrainingSet(self.x[idx], self.is_defect[idx], tuple(self.kinds[i] for i in idx),
                           None if self.mask is None else self.mask[idx], self.mask_class_names,
                           tuple(self.paths[i] for i in idx))


def load_training_set(root: str | Path, spec: InputSpec, need_masks: bool, per_kind: bool) -> TrainingSet:
    """Read the whole folder at the model's input size; clear errors for what training cannot use."""
    cat = load_category(root, need_train=False)
    items = [(p, "good", None) for p in cat.train_good] + [(t.path, t.kind, t.mask) for t in cat.test]
    n_good = sum(k == "good" for _, k, _ in items)
    defect_kinds = sorted({k for _, k, _ in items if k != "good"})
    n_defect = len(items) - n_good
    if n_good < MIN_PER_SIDE or n_defect < MIN_PER_SIDE:
        raise DataError(f"{root}: training needs at least {MIN_PER_SIDE} good and {MIN_PER_SIDE} defect images "
                        f"(found {n_good} good, {n_defect} defect)",
                        hint="put good images in train/good or test/good and defect images in test/<kind>; "
                             "for good-only data fit a PaDiM inspector instead (edge-inspect fit)")
    if need_masks:
        missing = [str(p) for p, k, m in items if k != "good" and m is None]
        if missing:
            raise DataError(f"{len(missing)} defect image(s) have no ground-truth mask, e.g. {missing[0]}",
                            hint="a segmenter learns from masks: add ground_truth/<kind>/<name>_mask.png for "
                                 "each, or train a classifier")
    names = tuple(defect_kinds) if per_kind else ("defect",)
    x = np.empty((len(items), 3, spec.height, spec.width), np.float32)
    mask = np.zeros((len(items), spec.height, spec.width), np.uint8) if need_masks else None
    for i, (path, kind, mpath) in enumerate(items):
        try:
            to_tensor(read_image(path), spec, x[i])
            if mask is not None and mpath is not None:
                cls = names.index(kind) + 1 if per_kind else 1
                mask[i][read_mask(mpath, (spec.height, spec.width))] = cls
        except EdgeError as e:
            raise DataError(f"cannot use {path}: {e.message}", hint="fix or remove the file, then train again") from None
    if mask is not None:
        empty = [str(items[i][0]) for i in range(len(items)) if items[i][1] != "good" and not mask[i].any()]
        if empty:
            raise DataError(f"{len(empty)} defect mask(s) are empty at {spec.height}x{spec.width}, e.g. {empty[0]}",
                            hint="check the masks (white = defect) or train at a larger --size")
    kinds = tuple(k for _, k, _ in items)
    return TrainingSet(x, np.array([k != "good" for k in kinds]), kinds, mask, names,
                       tuple(p for p, _, _ in items))


def stratified_split(kinds: tuple[str, ...], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: about ``fraction`` of every kind held out, at least one of each
    side (good / defect) in both parts; kinds with a single image stay in training."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for kind in sorted(set(kinds)):
        idx = np.array([i for i, k in enumerate(kinds) if k == kind])
        rng.shuffle(idx)
        n_val = int(round(fraction * len(idx))) if len(idx) > 1 else 0
        n_val = min(max(n_val, 1 if len(idx) > 1 else 0), len(idx) - 1)
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    is_defect = np.array([k != "good" for k in kinds])
    for side in (False, True):  # a defect kind of one image each: move one to validation
        if not any(is_defect[i] == side for i in val):
            cand = [i for i in train if is_defect[i] == side]
            val.append(cand[0])
            train.remove(cand[0])
    return np.array(sorted(train)), np.array(sorted(val))


PASTE_FEATHER = 1.5  # px: the pasted region's edge is blended over about this width


def transplant(ts: TrainingSet, n: int, rng: np.random.Generator) -> TrainingSet:
    """``n`` more defect images, each a training defect (its masked pixels and a feathered rim) pasted at
    the same place onto a good training image of the same folder, with the defect's mask.

    A part photographed in place keeps its defects where they were, so the pasted region fits its new
    background; the model then sees the same defect among other good surroundings and learns the defect,
    not the rest of the image it came with. Training split only (validation stays real). The images are
    blended in the model's input space (the normalisation is affine, so this is the blend of the photos)."""
    bad, good = np.flatnonzero(ts.is_defect), np.flatnonzero(~ts.is_defect)
    if n <= 0 or not len(bad) or not len(good):
        return ts.subset(np.arange(0, dtype=int))
    if ts.mask is None:
        raise DataError("pasting defects needs their masks", hint="train a segmenter or multitask model, or --paste 0")
    x = np.empty((n, *ts.x.shape[1:]), np.float32)
    mask = np.empty((n, *ts.mask.shape[1:]), np.uint8)
    kinds, paths = [], []
    for k in range(n):
        d, g = int(rng.choice(bad)), int(rng.choice(good))
        alpha = cv2.GaussianBlur((ts.mask[d] > 0).astype(np.float32), (0, 0), PASTE_FEATHER)
        alpha = np.maximum(alpha, (ts.mask[d] > 0).astype(np.float32))[None]  # every mask pixel is the defect's
        x[k] = ts.x[g] * (1 - alpha) + ts.x[d] * alpha
        mask[k] = ts.mask[d]
        kinds.append(ts.kinds[d])
        paths.append(Path(f"{ts.paths[d]}+{ts.paths[g].name}"))
    return TrainingSet(x, np.ones(n, bool), tuple(kinds), mask, ts.mask_class_names, tuple(paths))


def concat(a: TrainingSet, b: TrainingSet) -> TrainingSet:
    if not len(b):
        return a
    return TrainingSet(np.concatenate([a.x, b.x]), np.concatenate([a.is_defect, b.is_defect]), a.kinds + b.kinds,
                       None if a.mask is None else np.concatenate([a.mask, b.mask]), a.mask_class_names,
                       a.paths + b.paths)


def epoch_order(is_defect: np.ndarray, defect_share: float, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Indices for one epoch: every image once, defect images repeated until they make about
    ``defect_share`` of the epoch. Returns (order, repeat factor of defect images)."""
    good, bad = np.flatnonzero(~is_defect), np.flatnonzero(is_defect)
    repeat = 1
    if len(bad) and defect_share > 0:
        want = defect_share / (1 - defect_share) * len(good)  # defect samples wanted
        repeat = max(1, int(round(want / len(bad))))
    order = np.concatenate([good] + [bad] * repeat)
    rng.shuffle(order)
    return order, repeat


def augmentations(mode: str, square: bool) -> tuple[str, ...]:
    """The transforms ``--augment MODE`` applies: right-angle rotations only for square inputs."""
    return tuple(op for op in AUGMENT_MODES[mode] if op != "rot90" or square)


Variant = tuple[bool, bool, int]  # (flip left-right, flip up-down, quarter turns)


def variants(ops: tuple[str, ...]) -> list[Variant]:
    """Every distinct combination of the transforms, the identity first."""
    hs = (False, True) if "hflip" in ops else (False,)
    vs = (False, True) if "vflip" in ops else (False,)
    ks = (0, 1, 2, 3) if "rot90" in ops else (0,)
    out = [(h, v, k) for k in ks for v in vs for h in hs]
    if "rot90" in ops and "hflip" in ops and "vflip" in ops:  # both flips = a half turn: keep 8, not 16
        out = [(h, False, k) for k in ks for h in hs]
    return out


def apply_variant(t: torch.Tensor, v: Variant) -> torch.Tensor:
    """One variant on (..., H, W) tensors: image batches and mask batches alike."""
    h, vf, k = v
    if h:
        t = t.flip(-1)
    if vf:
        t = t.flip(-2)
    return t.rot90(k, (-2, -1)) if k else t


def augment(x: torch.Tensor, m: torch.Tensor | None, rng: np.random.Generator, ops: tuple[str, ...]
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A random variant of ``ops`` per sample. ``m``: (B, H, W) mask classes, moved with the image."""
    vs = variants(ops)
    if len(vs) == 1:
        return x, m
    pick = rng.integers(0, len(vs), size=x.shape[0])
    xs = torch.stack([apply_variant(x[i], vs[j]) for i, j in enumerate(pick)])
    return xs, None if m is None else torch.stack([apply_variant(m[i], vs[j]) for i, j in enumerate(pick)])
