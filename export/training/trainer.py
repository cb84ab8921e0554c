"""Train a model on a labelled folder and write it as a normal bundle.

The bundle's manifest gains two blocks (what the device reads is ``calibration``):

* ``calibration``: ``method``, ``ng_threshold`` (class head), ``mask_threshold`` and ``min_area``
  (mask head, per mask label), and ``validation`` metrics, all from the held-out split;
* ``training``: the full ``recipe`` (every option, losses, augmentations), the ``data`` used, the
  per-epoch ``history``, the chosen epoch and the ``seconds`` it took.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from edge.bundle import InputSpec
from edge.dataset import load_category

from ..exporter import ExportResult, export_bundle
from ..outputs import class_output
from ..request import ExportRequest, ModelRequest
from .data import augmentations, concat, epoch_order, load_training_set, stratified_split, transplant
from .loop import EpochLog, Fitted, Progress, fit
from .network import build_trainable, trained_export_model
from .objectives import Objective, class_weights, pixel_pos_weight
from .request import TrainRequest


@dataclass(frozen=True)
class TrainResult:
    export: ExportResult
    weights_path: Path
    fitted: Fitted
    n_train: int
    n_val: int
    seconds: float


def default_weights_path(out: Path) -> Path:
    """Where the trained state dict goes: beside the bundle (``verify --weights`` needs it)."""
    return out.parent / f"{out.name}.pth"


def model_request(req: TrainRequest, mask_names: tuple[str, ...]) -> ModelRequest:
    return ModelRequest(req.kind, req.arch, req.weights, req.width_scale, req.factory_kwargs,
                        num_classes=2 if req.has_class_head else None, labels=req.labels, ok_label=req.ok_label,
                        mask_classes=len(mask_names) if req.has_mask_head else None,
                        mask_labels=dict(enumerate(mask_names)) if req.has_mask_head else None,
                        fpn_channels=req.fpn_channels, tta=req.tta_mode)


def _class_indices(req: TrainRequest) -> tuple[int, int]:
    """(ok_class, ng_class) from the label map; training is binary, so the other label is NG."""
    spec = class_output("class", 2, req.labels, "softmax", req.ok_label, option="--labels")
    ok = spec["ok_class"]
    return ok, 1 - ok


def _mask_names(req: TrainRequest) -> tuple[str, ...]:
    if req.mask_classes == "one":
        return ("defect",)
    cat = load_category(req.category, need_train=False)
    return tuple(sorted({t.kind for t in cat.test if t.is_defect}))


def train_bundle(req: TrainRequest, out: ExportRequest, weights_path: Path | None = None,
                 progress: Progress | None = None, on_epoch: EpochLog | None = None) -> TrainResult:
    t_start, c_start = time.perf_counter(), time.process_time()
    threads = torch.get_num_threads()
    torch.set_num_threads(req.threads)
    try:
        ok_class, ng_class = _class_indices(req) if req.has_class_head else (0, 1)
        mask_names = _mask_names(req) if req.has_mask_head else ()
        spec = model_request(req, mask_names)
        heads = spec.heads()  # label-map mistakes stop here, before any image is read
        trainable = build_trainable(spec, req.fixed_stride)
        m = trainable.model
        input_spec = InputSpec("image", req.size[0], req.size[1], m.mean, m.std, "RGB")
        data = load_training_set(req.category, input_spec, req.has_mask_head, req.mask_classes == "per-kind")
        tr_idx, val_idx = stratified_split(data.kinds, req.val_fraction, req.seed)
        train, val = data.subset(tr_idx), data.subset(val_idx)
        pasted = transplant(train, int(round(req.paste * train.is_defect.sum())), np.random.default_rng(req.seed))
        train = concat(train, pasted)
        _, repeat = epoch_order(train.is_defect, req.defect_share, np.random.default_rng(0))
        n_def = int(train.is_defect.sum())
        cw = class_weights(len(train) - n_def, n_def * repeat)
        objective = Objective(
            req.kind,
            class_weight=(tuple(cw[::-1]) if ok_class == 1 else tuple(cw)) if req.has_class_head else None,
            pos_weight=tuple(pixel_pos_weight(train.mask, len(mask_names))) if req.has_mask_head else None,
            dice_weight=req.dice_weight, mask_weight=req.mask_weight, dice_over=req.dice_over)
        fitted = fit(trainable, train, val, req, objective, ok_class, ng_class, progress, on_epoch)
        wpath = weights_path or default_weights_path(out.out)
        model = trained_export_model(trainable, wpath)
        seconds = time.perf_counter() - t_start
        training = {
            "recipe": {**req.recipe(), "loss": objective.describe(), "oversample_defects_x": repeat,
                       "augmentations": list(augmentations(req.augment, req.size[0] == req.size[1])),
                       "head_epochs_run": fitted.head_epochs, "tta_run": req.tta_mode,
                       "phases": (f"{fitted.head_epochs} heads-only epochs on cached trunk features "
                                  f"({fitted.cache_seconds:.0f} s to compute them), then " if fitted.head_epochs
                                  else "") + f"{req.epochs} whole-network epochs",
                       "optimizer": f"AdamW (trunk lr x{req.trunk_lr_scale:g}; whole-network epochs after heads-only ones at "
                                    f"x{req.finetune_lr_scale:g}), warm-up then cosine in each phase",
                       "batchnorm": ("pretrained statistics frozen" if trainable.frozen_bn else "trained"),
                       "init": trainable.init, "fixed_parameters": trainable.n_fixed},
            "data": {"category": req.category.name, "n_images": len(data), "n_defect": int(data.is_defect.sum()),
                     "kinds": {k: data.kinds.count(k) for k in sorted(set(data.kinds))},
                     "n_train": len(train), "n_validation": len(val),
                     "n_pasted": len(pasted),
                     "validation_files": [str(p.relative_to(req.category)) for p in val.paths]},
            "best_epoch": fitted.best.epoch, "history": [r.as_manifest() for r in fitted.history],
            "seconds": round(seconds, 1), "cpu_seconds": round(time.process_time() - c_start, 1),
            "threads": req.threads,
        }
        calib_dir = out.calib_dir or _good_dir(req.category)
        out = replace(out, calib_dir=calib_dir,
                      manifest_extra={**out.manifest_extra, "calibration": fitted.best.calibration,
                                      "training": training})
        res = export_bundle(model, out, heads)
    finally:
        torch.set_num_threads(threads)
    return TrainResult(res, wpath, fitted, len(train), len(val), time.perf_counter() - t_start)


def _good_dir(root: Path) -> Path | None:
    """Parity is measured on real good images from the folder when it has them."""
    for d in (root / "train" / "good", root / "test" / "good"):
        if d.is_dir() and any(d.iterdir()):
            return d
    return None
