"""`eval --cascade`: a cascade on a labelled MVTec-layout test set, mixed so that most parts are good.

Reports the cascade's metrics, each stage's (on the images it ran on), the share of images each
gate let through, the last stage alone on the same images, and the time per image of both,
measured side by side in one run (alternating which goes first on each batch).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..bundle import write_json
from ..dataset import TestItem, load_category
from ..errors import DataError
from ..imageio import read_mask
from ..loader import iter_batches
from ..metrics import auroc, binomial_interval, confusion, dice_iou, f1_scores
from ..scoring import ResultWriter, common_root
from ..stage import Inspection, held_out_good, run_stage
from ..config.cascade_spec import LINE_GOOD_SHARE, SHARE_BUDGET
from .stage import Cascade


@dataclass(frozen=True)
class CascadeEval:
    metrics: dict
    out: Path


def mix_items(items: list[TestItem], good_share: float | None, seed: int = 0) -> list[TestItem]:
    """The test items, with defective (or good) ones left out at random so that ``good_share`` of
    them are good; ``None`` keeps the set as it is. Order stays as in the folder."""
    if good_share is None:
        return list(items)
    if not 0 < good_share < 1:
        raise DataError(f"--good-share {good_share}: give a share between 0 and 1, e.g. 0.9")
    good = [i for i, t in enumerate(items) if not t.is_defect]
    bad = [i for i, t in enumerate(items) if t.is_defect]
    if not good or not bad:
        raise DataError("the test set needs good and defective images to mix", hint="CATEGORY/test/good and "
                        "CATEGORY/test/<defect kind>")
    n_bad = round(len(good) * (1 - good_share) / good_share)
    rng = np.random.default_rng(seed)
    if n_bad <= len(bad):
        keep = good + sorted(rng.choice(bad, max(1, n_bad), replace=False).tolist())
    else:  # not enough defects for that many good parts: drop good ones instead
        n_good = round(len(bad) * good_share / (1 - good_share))
        keep = sorted(rng.choice(good, max(1, n_good), replace=False).tolist()) + bad
    return [items[i] for i in sorted(keep)]


def image_metrics(scores, pred, labels, kinds, dices) -> dict:
    """Image-level metrics of one set of decisions (scores normalised: 1.0 = threshold)."""
    s, p, y = np.asarray(scores, float), np.asarray(pred, bool), np.asarray(labels, bool)
    f1, macro = f1_scores(p, y)
    per_kind = {}
    for k in sorted(set(kinds)):
        sel = np.asarray([kk == k for kk in kinds])
        per_kind[k] = {"n": int(sel.sum()), "ng": int(p[sel].sum()),
                       ("false_reject_rate" if k == "good" else "detection_rate"): float(p[sel].mean())}
    both = y.any() and (~y).any()
    d = [v for v in dices if v is not None]
    return {"n": int(s.size), "image_auroc": auroc(s, y) if both else None, "f1": f1, "macro_f1": macro,
            "confusion": confusion(p, y), "per_kind": per_kind, "dice": float(np.mean(d)) if d else None}


def evaluate_cascade(category: str | Path, cascade: Cascade, out: str | Path, good_share: float | None = None,
                     batch_size: int = 8, seed: int = 0, progress: Callable[[int], None] | None = None,
                     share_budget: float = SHARE_BUDGET) -> CascadeEval:
    out = Path(out)
    items = mix_items(load_category(category, need_train=False).test, good_share, seed)
    by_path = {t.path: t for t in items}
    last, last_name = cascade.stages[-1], cascade.names[-1]
    writer = ResultWriter(out / "test-results", cascade.id, cascade.threshold,
                          names_root=common_root([t.path for t in items]))
    rows: list[tuple[TestItem, Inspection, Inspection, np.ndarray]] = []
    spent = {"cascade": 0.0, "alone": 0.0}
    warmed = False
    try:
        for b, batch in enumerate(iter_batches([t.path for t in items], batch_size)):
            imgs = [(p, im) for p, im in batch if isinstance(im, np.ndarray)]
            for p, im in batch:
                if not isinstance(im, np.ndarray):
                    writer.write(str(p), None, None, error=str(im))
            if imgs:
                if not warmed:  # first inferences allocate: keep them out of both timings
                    run_stage(cascade, [imgs[0][1]])
                    run_stage(last, [imgs[0][1]])
                    warmed = True
                got = {}
                for which in (("cascade", "alone") if b % 2 == 0 else ("alone", "cascade")):
                    stage = cascade if which == "cascade" else last
                    t0 = time.perf_counter()
                    got[which] = run_stage(stage, [im for _, im in imgs])
                    spent[which] += time.perf_counter() - t0
                for (p, im), rc, ra in zip(imgs, got["cascade"], got["alone"]):
                    writer.write(str(p), im, rc)
                    t = by_path[p]
                    gt = read_mask(t.mask, im.shape[:2]) if t.mask else np.zeros(im.shape[:2], bool)
                    rows.append((t, rc, ra, gt))
            if progress:
                progress(len(batch))
    finally:
        writer.close()
    if not rows:
        raise DataError("no test image could be scored")
    metrics = _metrics(category, cascade, last_name, rows, spent, len(items) - len(rows), good_share, share_budget)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "metrics.json", metrics)
    _pictures(out, rows, last_name, metrics)
    return CascadeEval(metrics, out)


def _dice(res: Inspection, item: TestItem, gt: np.ndarray) -> float | None:
    if not item.is_defect or item.mask is None or res.mask is None:
        return None
    return dice_iou(res.mask > 0, gt)[0]


SWEEP = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1, 1.25)


def _sent_by_fit(fit_good: np.ndarray | None, g: float) -> dict:
    """The share of fit's held-out good scores at or above the gate, and its 90% interval: with 80
    good images, 20% seen may be 13-29% on the line."""
    if fit_good is None or not len(fit_good):
        return {"good_sent_by_fit": None}
    k, n = int((fit_good >= g).sum()), int(len(fit_good))
    return {"good_sent_by_fit": k / n, "good_sent_by_fit_90": [round(v, 4) for v in binomial_interval(k, n)]}


def gate_sweep(first_scores: np.ndarray, labels: np.ndarray, caught: np.ndarray,
               fit_good: np.ndarray | None = None) -> list[dict]:
    """For gates on the first stage's score: the share of images the second stage would see, the
    defects the gate would pass as clean without showing them to it, and of those the ones the
    second stage alone catches (``caught``: its NG decisions on defective images), i.e. the
    detections the cascade would lose against it (to choose ``gate``). With ``fit_good`` (the first
    stage's normalised held-out good scores, :func:`edge.stage.held_out_good`), also the share of good parts it
    would send on by those (``good_sent_by_fit``, with its 90% interval ``good_sent_by_fit_90``)."""
    return [{"gate": g, "share_ran": float((first_scores >= g).mean()),
             "defects_not_reached": int((labels & (first_scores < g)).sum()),
             "caught_not_reached": int((caught & (first_scores < g)).sum()),
             **_sent_by_fit(fit_good, g)} for g in SWEEP]


def gate_keeping_catches(first_scores: np.ndarray, labels: np.ndarray, caught: np.ndarray,
                         fit_good: np.ndarray | None = None) -> dict | None:
    """The highest gate (3 decimals, rounded down) that still passes every defect the second stage
    alone catches here, and the share of these images, of the good ones and of the defective ones
    it would send on (and of good parts by fit's held-out scores, with ``fit_good``); None when the
    second stage catches none."""
    if not caught.any():
        return None
    g = float(np.floor(first_scores[caught].min() * 1000) / 1000)
    ran = first_scores >= g
    return {"gate": g, "share_ran": float(ran.mean()), "good_ran": float(ran[~labels].mean()) if (~labels).any()
            else None, "defects_ran": float(ran[labels].mean()), "caught": int(caught.sum()),
            **_sent_by_fit(fit_good, g)}


def gate_within_budget(first_scores: np.ndarray, labels: np.ndarray, caught: np.ndarray,
                       fit_good: np.ndarray | None, budget: float = SHARE_BUDGET,
                       line_good_share: float = LINE_GOOD_SHARE, at_top: bool = True) -> dict | None:
    """The lowest gate that sends at most ``budget`` of a line's parts on (``line_good_share`` of
    them good) even at the top of the estimate's 90% range: the good parts' rate from fit's held-out
    good scores (``fit_good``) or, without them, from these good images; the defects' from these
    defective images; each rate at the top of its exact binomial interval. An estimate from 80 good
    images is ±4 points, so a gate picked on the estimate itself often sends more than the budget on
    (measured on ten unseen folders of a real-photo part: over 30% on 2 of 5 with the estimate at
    28%, on none of 10 with this rule, at most one catch lost). The lowest such gate
    shows the second stage the most defects. ``at_top=False`` budgets on the estimate itself (the
    earlier rule, kept for the benchmark's comparison). With too few images no gate may keep to the budget at
    the top of its range (``within`` false; the gate is then above every score). None without good
    or defective images."""
    good = fit_good if fit_good is not None and len(fit_good) else first_scores[~labels]
    bad = first_scores[labels]
    if not len(good) or not len(bad):
        return None

    def share(g: float, top: bool) -> float:
        rates = []
        for scores in (good, bad):
            k = int((scores >= g).sum())
            rates.append(binomial_interval(k, len(scores))[1] if top else k / len(scores))
        return line_good_share * rates[0] + (1 - line_good_share) * rates[1]

    cands = np.unique(np.concatenate([good, bad]))  # the share falls as the gate rises: bisect them
    lo, hi = 0, len(cands)  # the first candidate within budget is in [lo, hi]; hi: none
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if share(float(cands[mid]), at_top) <= budget else (mid + 1, hi)
    g = float(cands[lo]) if lo < len(cands) else float(cands[-1]) * 1.0001 + 1e-9
    top = share(g, True)
    return {"budget": budget, "line_good_share": line_good_share, "gate": g,
            "within": bool(share(g, at_top) <= budget),
            "share": share(g, False), "share_top": top, "n_good": int(len(good)), "n_defect": int(len(bad)),
            "good_from": "fit" if good is fit_good else "this set",
            "defects_not_reached": int((labels & (first_scores < g)).sum()),
            "caught_not_reached": int((caught & (first_scores < g)).sum())}


def _metrics(category, cascade: Cascade, last_name: str, rows, spent, n_errors, good_share,
             share_budget: float = SHARE_BUDGET) -> dict:
    items = [r[0] for r in rows]
    labels = [t.is_defect for t in items]
    kinds = [t.kind for t in items]
    n = len(rows)

    def of(results, idx):
        return image_metrics([results[i].score for i in idx], [results[i].decision == "NG" for i in idx],
                             [labels[i] for i in idx], [kinds[i] for i in idx],
                             [_dice(results[i], items[i], rows[i][3]) for i in idx])

    casc = [r[1] for r in rows]
    alone = [r[2] for r in rows]
    stages = []
    for k, name in enumerate(cascade.names):
        ran = [i for i in range(n) if casc[i].stages[k]["ran"]]
        entry = {"name": name, "ran": len(ran), "share_ran": len(ran) / n}
        if ran:
            ys = np.asarray([labels[i] for i in ran], bool)
            sc = np.asarray([casc[i].stages[k]["score"] for i in ran])
            pred = np.asarray([casc[i].stages[k]["decision"] == "NG" for i in ran])
            entry.update(image_metrics(sc, pred, ys, [kinds[i] for i in ran], []))
            entry.pop("dice")
        if k:
            entry["defects_not_reached"] = int(sum(labels[i] and not casc[i].stages[k]["ran"] for i in range(n)))
        stages.append(entry)
    first = np.asarray([casc[i].stages[0]["score"] for i in range(n)])
    y = np.asarray(labels, bool)
    caught = y & np.asarray([a.decision == "NG" for a in alone])
    fit_good = held_out_good(cascade.stages[0])
    ms_c, ms_a = 1000 * spent["cascade"] / n, 1000 * spent["alone"] / n
    n_good = int(sum(not y for y in labels))
    return {
        "category": str(Path(category)), "cascade": cascade.id, "n_images": n, "n_errors": n_errors,
        "n_good": n_good, "n_defect": n - n_good, "good_share": n_good / n, "good_share_requested": good_share,
        "stage_names": cascade.names, "vote": cascade.spec.vote,
        **of(casc, range(n)),
        "stages": stages,
        "gate_pass_share": stages[1]["share_ran"],
        "first_stage_held_out_good": None if fit_good is None else int(fit_good.size),
        "gate_sweep": gate_sweep(first, y, caught, fit_good) if cascade.spec.vote is None else None,
        "gate_keeping_catches": gate_keeping_catches(first, y, caught, fit_good) if cascade.spec.vote is None
        else None,
        "gate_within_budget": gate_within_budget(first, y, caught, fit_good, share_budget,
                                                 good_share or LINE_GOOD_SHARE) if cascade.spec.vote is None
        else None,
        "alone": {"stage": last_name, **of(alone, range(n))},
        "time_ms_per_image": {"cascade": round(ms_c, 3), "alone": round(ms_a, 3),
                              "ratio": round(ms_c / ms_a, 4) if ms_a else None},
    }


def _pictures(out: Path, rows, last_name: str, m: dict) -> None:
    """scores.jsonl and curves.json (the cascade's score), and the report when matplotlib is there."""
    from ..evaluate import _curves
    from ..report import report_available, write_report

    labels = np.asarray([r[0].is_defect for r in rows], bool)
    s = np.asarray([r[1].score for r in rows])
    if labels.any() and (~labels).any():
        write_json(out / "curves.json", {"image": _curves(s, labels)})
    (out / "scores.jsonl").write_text("".join(
        json.dumps({"image": str(r[0].path), "kind": r[0].kind, "raw_score": float(r[1].raw_score),
                    "score": float(r[1].score), "first_stage_score": float(r[1].stages[0]["score"]),
                    "last_stage_ran": next(e["name"] for e in reversed(r[1].stages) if e["ran"]),
                    f"{last_name}_alone": float(r[2].score)}) + "\n" for r in rows))
    if report_available():
        write_report(out)
