"""The epochs: oversampled, augmented batches; AdamW with a slower pretrained trunk and a cosine
schedule; validation after every epoch; the best epoch's weights kept."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import TrainingError
from .data import TrainingSet, augment, epoch_order
from .network import Trainable
from .objectives import Objective
from .request import TrainRequest
from .validation import calibrate, predict, selection_score


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float  # mean training loss
    score: float  # selection score on the validation split
    calibration: dict
    seconds: float  # wall clock
    cpu_seconds: float  # CPU time of this process (all threads): wall time on an idle machine ~ this / threads

    def as_manifest(self) -> dict:
        v = self.calibration["validation"]
        return {"epoch": self.epoch, "loss": round(self.loss, 5), "score": round(self.score, 4),
                **{k: v[k] for k in ("f1", "image_auroc", "dice") if k in v}, "seconds": round(self.seconds, 1),
                "cpu_seconds": round(self.cpu_seconds, 1)}


@dataclass(frozen=True)
class Fitted:
    history: tuple[EpochRecord, ...]
    best: EpochRecord
    oversample_repeat: int


# progress(step, total_steps, text): called after every optimiser step
Progress = Callable[[int, int, str], None]
EpochLog = Callable[[EpochRecord, bool], None]  # (record, is_best)


def _targets(ts: TrainingSet, idx: np.ndarray, ok_class: int, ng_class: int):
    y = torch.from_numpy(np.where(ts.is_defect[idx], ng_class, ok_class).astype(np.int64))
    m = None if ts.mask is None else torch.from_numpy(ts.mask[idx].astype(np.int64))
    return y, m


def steps_per_epoch(n_train: int, n_defect: int, req: TrainRequest) -> int:
    order, _ = epoch_order(np.r_[np.zeros(n_train - n_defect, bool), np.ones(n_defect, bool)], req.defect_share,
                           np.random.default_rng(0))
    return math.ceil(len(order) / req.batch_size)


def fit(t: Trainable, train: TrainingSet, val: TrainingSet, req: TrainRequest, objective: Objective,
        ok_class: int, ng_class: int, progress: Progress | None = None, on_epoch: EpochLog | None = None) -> Fitted:
    rng = np.random.default_rng(req.seed)
    torch.manual_seed(req.seed)
    module = t.model.module
    groups = [{"params": t.heads, "lr": req.lr}]
    if t.trunk:
        groups.append({"params": t.trunk, "lr": req.lr * req.trunk_lr_scale})
    opt = torch.optim.AdamW(groups, weight_decay=req.weight_decay)
    base = [g["lr"] for g in opt.param_groups]
    per_epoch = steps_per_epoch(len(train), int(train.is_defect.sum()), req)
    total = per_epoch * req.epochs
    square = train.x.shape[-1] == train.x.shape[-2]
    history, best, best_state, step, repeat = [], None, None, 0, 1
    for epoch in range(1, req.epochs + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        t.set_trunk_trainable(epoch > req.freeze_trunk_epochs or epoch == req.epochs)
        t.train_mode()
        order, repeat = epoch_order(train.is_defect, req.defect_share, rng)
        losses = []
        for b in range(0, len(order), req.batch_size):
            idx = order[b:b + req.batch_size]
            if len(idx) < 2 and len(order) > 2:  # BatchNorm in the heads needs more than one sample
                continue
            y, m = _targets(train, idx, ok_class, ng_class)
            xb, mb = augment(torch.from_numpy(train.x[idx]), m, rng, square)
            frac = step / max(total, 1)
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * (min(1.0, (step + 1) / max(per_epoch // 2, 1)) * 0.5 * (1 + math.cos(math.pi * frac)))
            loss = objective(module(xb), y, mb)
            if not torch.isfinite(loss):
                raise TrainingError(f"the training loss became {loss.item()} in epoch {epoch}",
                                    hint="lower --lr (e.g. by 10x) and train again")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if progress:
                progress(step, total, f"epoch {epoch}/{req.epochs} loss {np.mean(losses[-8:]):.3f}")
        pred = predict(module, val.x, req.kind, ng_class)
        cal = calibrate(req.kind, pred, val.is_defect, val.mask, val.mask_class_names)
        rec = EpochRecord(epoch, float(np.mean(losses)) if losses else float("nan"),
                          selection_score(req.kind, cal), cal, time.perf_counter() - t0, time.process_time() - c0)
        history.append(rec)
        is_best = best is None or (rec.score, -rec.loss) > (best.score, -best.loss)
        if is_best:
            best, best_state = rec, copy.deepcopy(module.state_dict())
        if on_epoch:
            on_epoch(rec, is_best)
    module.load_state_dict(best_state)
    module.eval()
    return Fitted(tuple(history), best, repeat)
