"""The epochs: first the heads alone on cached trunk features (head_phase.py), then the whole
network; oversampled, augmented batches; AdamW with a slower pretrained trunk, warm-up and a cosine
schedule in each phase; validation after every epoch; the best epoch's weights of either phase kept."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import TrainingError
from .data import TrainingSet, augment, augmentations, epoch_order, variants
from .head_phase import build_cache, cache_steps, head_outputs, split_network, tta_variants
from .network import Trainable
from .objectives import Objective
from .request import TrainRequest
from .validation import calibrate, collect, predict, selection_score


@dataclass(frozen=True)
class EpochRecord:
    epoch: int
    loss: float  # mean training loss
    score: float  # selection score on the validation split
    calibration: dict
    seconds: float  # wall clock
    cpu_seconds: float  # CPU time of this process (all threads): wall time on an idle machine ~ this / threads
    phase: str = "all"  # "heads": trunk frozen, on cached features; "all": the whole network trains

    def as_manifest(self) -> dict:
        v = self.calibration["validation"]
        return {"epoch": self.epoch, "phase": self.phase, "loss": round(self.loss, 5), "score": round(self.score, 4),
                **{k: v[k] for k in ("f1", "image_auroc", "dice") if k in v}, "seconds": round(self.seconds, 1),
                "cpu_seconds": round(self.cpu_seconds, 1)}


@dataclass(frozen=True)
class Fitted:
    history: tuple[EpochRecord, ...]
    best: EpochRecord
    oversample_repeat: int
    head_epochs: int  # heads-only epochs that ran (0 for a module:factory model)
    cache_seconds: float  # wall time spent computing the cached trunk features


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


def _minibatches(order: np.ndarray, batch_size: int):
    """An epoch's minibatches of image indices; a last batch of one is skipped (BatchNorm needs more
    than one sample), unless the whole epoch is that small."""
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        if len(idx) < 2 and len(order) > 2:
            continue
        yield idx


def _lr_factor(step: int, total: int, warmup: int) -> float:
    return min(1.0, (step + 1) / max(warmup, 1)) * 0.5 * (1 + math.cos(math.pi * step / max(total, 1)))


def fit(t: Trainable, train: TrainingSet, val: TrainingSet, req: TrainRequest, objective: Objective,
        ok_class: int, ng_class: int, progress: Progress | None = None, on_epoch: EpochLog | None = None) -> Fitted:
    rng = np.random.default_rng(req.seed)
    torch.manual_seed(req.seed)
    module = t.model.module
    ops = augmentations(req.augment, train.x.shape[-1] == train.x.shape[-2])
    split = split_network(module.net) if req.head_epochs else None
    head_epochs = req.head_epochs if split else 0
    per_epoch = steps_per_epoch(len(train), int(train.is_defect.sum()), req)
    vs = variants(ops)
    tta = getattr(module, "tta", "none") == "flips"  # the exported model answers with the mean over flips
    n_cache = cache_steps(len(train), len(vs)) + cache_steps(len(val), 4 if tta else 1) if head_epochs else 0
    total = n_cache + per_epoch * (head_epochs + req.epochs)
    state = {"step": 0, "best": None, "best_state": None, "repeat": 1}
    history: list[EpochRecord] = []

    def tick(text: str, n: int = 1) -> None:
        state["step"] += n
        if progress:
            progress(state["step"], total, text)

    def record(epoch, phase, losses, pred, t0, c0) -> None:
        cal = calibrate(req.kind, pred, val.is_defect, val.mask, val.mask_class_names, req.line_good_share)
        rec = EpochRecord(epoch, float(np.mean(losses)) if losses else float("nan"), selection_score(req.kind, cal),
                          cal, time.perf_counter() - t0, time.process_time() - c0, phase)
        history.append(rec)
        best = state["best"]
        is_best = best is None or (rec.score, -rec.loss) > (best.score, -best.loss)
        if is_best:
            state["best"], state["best_state"] = rec, copy.deepcopy(module.state_dict())
        if on_epoch:
            on_epoch(rec, is_best)

    def step(loss: torch.Tensor, opt, epoch: int) -> float:
        if not torch.isfinite(loss):
            raise TrainingError(f"the training loss became {loss.item()} in epoch {epoch}",
                                hint="lower --lr (e.g. by 10x) and train again")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    cache_seconds = 0.0
    if head_epochs:  # phase 1: the heads alone, on the frozen trunk's cached features
        t0 = time.perf_counter()
        module.eval()
        cache = build_cache(split, train.x, train.mask, vs, lambda n: tick("trunk features", n))
        vvs = tta_variants() if tta else vs[:1]  # validation sees what the exported model will answer
        vcache = build_cache(split, val.x, val.mask, vvs, lambda n: tick("trunk features", n))
        cache_seconds = time.perf_counter() - t0
        t.set_trunk_trainable(False)
        opt = torch.optim.AdamW(t.heads, lr=req.lr, weight_decay=req.weight_decay)
        n_steps, k = per_epoch * head_epochs, 0
        for epoch in range(1, head_epochs + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            t.train_mode()
            order, state["repeat"] = epoch_order(train.is_defect, req.defect_share, rng)
            losses = []
            for idx in _minibatches(order, req.batch_size):
                feats, mb = cache.batch(idx, rng.integers(0, len(vs), size=len(idx)))
                y, _ = _targets(train, idx, ok_class, ng_class)
                opt.param_groups[0]["lr"] = req.lr * _lr_factor(k, n_steps, per_epoch)
                losses.append(step(objective(split.heads(feats), y, mb), opt, epoch))
                k += 1
                tick(f"heads {epoch}/{head_epochs} loss {np.mean(losses[-8:]):.3f}")
            module.eval()
            record(epoch, "heads", losses,
                   collect(head_outputs(split, vcache, tta), req.kind, ng_class, val.x.shape[-2:]), t0, c0)
        del cache, vcache
    if req.epochs:  # phase 2: the whole network (the early, fixed blocks excepted)
        # trained heads on a pretrained trunk: full-size steps would undo the heads (measured: the loss
        # jumped back to its level at epoch 1), so the whole network then learns at a smaller rate
        lr0 = req.lr * (req.finetune_lr_scale if head_epochs else 1.0)
        groups = [{"params": t.heads, "lr": lr0}]
        if t.trunk:
            groups.append({"params": t.trunk, "lr": lr0 * req.trunk_lr_scale})
        t.set_trunk_trainable(True)
        opt = torch.optim.AdamW(groups, weight_decay=req.weight_decay)
        base = [g["lr"] for g in opt.param_groups]
        n_steps, k = per_epoch * req.epochs, 0
        for epoch in range(head_epochs + 1, head_epochs + req.epochs + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            t.train_mode()
            order, state["repeat"] = epoch_order(train.is_defect, req.defect_share, rng)
            losses = []
            for idx in _minibatches(order, req.batch_size):
                y, m = _targets(train, idx, ok_class, ng_class)
                xb, mb = augment(torch.from_numpy(train.x[idx]), m, rng, ops)
                for g, lr in zip(opt.param_groups, base):
                    g["lr"] = lr * _lr_factor(k, n_steps, per_epoch if head_epochs else per_epoch // 2)
                losses.append(step(objective(module.outputs(xb), y, mb), opt, epoch))  # one pass, no flips
                k += 1
                tick(f"epoch {epoch - head_epochs}/{req.epochs} loss {np.mean(losses[-8:]):.3f}")
            record(epoch, "all", losses, predict(module, val.x, req.kind, ng_class), t0, c0)
    module.load_state_dict(state["best_state"])
    module.eval()
    return Fitted(tuple(history), state["best"], state["repeat"], head_epochs, cache_seconds)
