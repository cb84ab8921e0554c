"""The report's plots, drawn with matplotlib (imported by edge.report only when a report is made).

Every figure is returned as PNG bytes. Numbers in legends come from metrics.json, formatted by
:func:`edge.report.numbers.fmt`, so a plot never shows a value the tables do not.
"""

from __future__ import annotations

import io
import math

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .numbers import fmt

GOOD = "#2e7d32"
THRESHOLD = "#111111"
KIND_COLOURS = ["#c62828", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#4e342e", "#558b2f"]
LEVEL_COLOURS = {"image": "#1565c0", "pixel": "#c62828"}
DPI = 110


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _square(ax, xlabel: str, ylabel: str, title: str) -> None:
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.set_aspect("equal")


def roc_figure(curves: dict, metrics: dict, prefix: str = "") -> bytes:
    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--", label="chance (AUROC 0.5)")
    for level in ("image", "pixel"):
        c = curves.get(level, {}).get("roc")
        if c:
            ax.plot(c["fpr"], c["tpr"], color=LEVEL_COLOURS[level], lw=2, drawstyle="default",
                    label=f"{level}  AUROC {fmt(metrics.get(f'{level}_auroc'))}")
    _square(ax, "false positive rate (good flagged)", "true positive rate (defects caught)", f"{prefix}ROC")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _png(fig)


def pr_figure(curves: dict, metrics: dict, prefix: str = "") -> bytes:
    fig = Figure(figsize=(5.2, 5.0))
    ax = fig.add_subplot()
    for level in ("image", "pixel"):
        c = curves.get(level, {}).get("pr")
        if c:
            ax.plot(c["recall"], c["precision"], color=LEVEL_COLOURS[level], lw=2,
                    label=f"{level}  AP {fmt(metrics.get(f'{level}_ap'))}")
    _square(ax, "recall (defects caught)", "precision (flagged that are defects)", f"{prefix}precision / recall")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return _png(fig)


def _groups(scores: list[dict]) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for r in scores:
        out.setdefault(r["kind"], []).append(float(r["score"]))
    return {k: np.asarray(v) for k, v in sorted(out.items(), key=lambda kv: (kv[0] != "good", kv[0]))}


def _bins(values: np.ndarray, log: bool, n: int = 30) -> np.ndarray:
    lo, hi = float(min(values.min(), 1.0)), float(max(values.max(), 1.0))
    if log:
        lo, hi = max(lo, 1e-3) * 0.95, hi * 1.05
        return np.geomspace(lo, hi, n + 1)
    pad = 0.03 * (hi - lo or 1.0)
    return np.linspace(lo - pad, hi + pad, n + 1)


def _threshold_line(ax, metrics: dict, with_label: bool = True) -> None:
    thr = metrics.get("threshold", {})
    label = f"threshold 1.0 (raw {fmt(thr.get('image'), 'raw')}, {thr.get('method', '?')})" if with_label \
        else "threshold"
    ax.axvline(1.0, color=THRESHOLD, lw=2, ls="-", label=label)


def _expected_note(metrics: dict) -> str | None:
    e = metrics.get("threshold", {}).get("expected_frr")
    if not isinstance(e, dict) or e.get("value") is None:
        return None
    rng = ""
    if e.get("low") is not None and e.get("high") is not None:
        rng = f" (range {fmt(e['low'], 'pct')}–{fmt(e['high'], 'pct')})"
    target = f", target {fmt(e['target'], 'pct')}" if e.get("target") is not None else ""
    measured = metrics.get("per_kind", {}).get("good", {}).get("false_reject_rate")
    seen = f"\nmeasured here: {fmt(measured, 'pct')}" if measured is not None else ""
    return f"fit expected {fmt(e['value'], 'pct')} false rejects{rng}{target}{seen}"


def _use_log(values: np.ndarray) -> bool:
    v = values[values > 0]
    return v.size > 0 and float(v.max()) / max(float(v.min()), 1e-6) > 8


def scores_figure(scores: list[dict], metrics: dict) -> bytes:
    """Good against all defects together, the threshold marked and labelled."""
    g = _groups(scores)
    good = g.get("good", np.zeros(0))
    bad = np.concatenate([v for k, v in g.items() if k != "good"] or [np.zeros(0)])
    allv = np.concatenate([good, bad])
    log = _use_log(allv)
    bins = _bins(allv, log)
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.add_subplot()
    if good.size:
        ax.hist(good, bins, color=GOOD, alpha=0.6, label=f"good ({good.size})")
    if bad.size:
        ax.hist(bad, bins, color=KIND_COLOURS[0], alpha=0.6, label=f"defective, all kinds ({bad.size})")
    _threshold_line(ax, metrics)
    _finish_hist(ax, log, metrics)
    fig.tight_layout()
    return _png(fig)


def _finish_hist(ax, log: bool, metrics: dict) -> None:
    if log:
        ax.set_xscale("log")
    ax.set_xlabel("score (1.0 = threshold; above is NG)" + (", log scale" if log else ""))
    ax.set_ylabel("images")
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, axis="y", alpha=0.3)
    note = _expected_note(metrics)
    if note:
        ax.text(0.99, 0.62, note, transform=ax.transAxes, ha="right", va="top", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "#bbbbbb", "alpha": 0.9})
    ax.legend(loc="upper center", fontsize=8, framealpha=0.95)


def scores_by_kind_figure(scores: list[dict], metrics: dict) -> bytes | None:
    """One panel per defect kind: good against that kind, same axis, threshold marked."""
    g = _groups(scores)
    kinds = [k for k in g if k != "good"]
    if not kinds:
        return None
    good = g.get("good", np.zeros(0))
    allv = np.concatenate(list(g.values()))
    log = _use_log(allv)
    bins = _bins(allv, log)
    cols = 2 if len(kinds) > 1 else 1
    rows = math.ceil(len(kinds) / cols)
    fig = Figure(figsize=(5.2 * cols, 2.9 * rows))
    for i, k in enumerate(kinds):
        ax = fig.add_subplot(rows, cols, i + 1)
        if good.size:
            ax.hist(good, bins, color=GOOD, alpha=0.6, label=f"good ({good.size})")
        ax.hist(g[k], bins, color=KIND_COLOURS[i % len(KIND_COLOURS)], alpha=0.7, label=f"{k} ({g[k].size})")
        _threshold_line(ax, metrics, with_label=False)
        if log:
            ax.set_xscale("log")
        ax.set_title(k)
        ax.set_xlabel("score (1.0 = threshold)")
        ax.set_ylabel("images")
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    return _png(fig)


def all_figures(data: dict) -> dict[str, bytes]:
    m, c, s = data["metrics"], data["curves"], data["scores"]
    out = {"roc": roc_figure(c, m), "pr": pr_figure(c, m), "scores": scores_figure(s, m)}
    by_kind = scores_by_kind_figure(s, m)
    if by_kind:
        out["scores_by_kind"] = by_kind
    return out
