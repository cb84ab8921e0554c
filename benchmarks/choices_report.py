"""The choices benchmark's tables: per category and configuration, means per configuration, verdicts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the bar for proposing a new default (lane choices9 of issue #9): clearly better on BOTH N
MIN_IMAGE_GAIN = 0.02
MAX_SCORING_RATIO = 1.5


@dataclass(frozen=True)
class ChoiceRow:
    """One configuration fitted with the product's defaults on one category's first ``n`` good images."""

    config: str  # label, e.g. "lite0 d=100"
    backbone: str  # bundle folder
    d: int
    category: str
    kind: str  # aligned | surface (how the data set made it)
    n: int
    image_auroc: float
    pixel_auroc: float
    frr: float  # good test images rejected at the product's threshold
    recall: float  # defective test images caught at that threshold
    n_good: int
    n_defect: int
    chosen: str  # the model fit chose (aligned | texture) and its aggregation
    fit_s: float  # wall seconds of `edge-inspect fit` (a subprocess, niced, on a shared machine)
    scoring_ms: float  # median ms per image, batch 1, interleaved with the run's other configurations
    scoring_ratio: float  # scoring_ms over the run's first configuration's, on the same images, same run
    stats_mb: float  # stats.npz: what scoring loads
    inspector_mb: float  # the inspector folder without its backbone copy (stats + moments for fit --update)
    run: str  # the command that measured this row
    taps: str = ""  # the bundle's taps: name=layer (channels), ...
    product: str = ""  # the commit the product was at when this row was measured


def _mean(rows: list[ChoiceRow], key: str) -> float:
    return float(np.mean([getattr(r, key) for r in rows]))


def configs_in(rows: list[ChoiceRow]) -> list[str]:
    seen: list[str] = []
    for r in rows:
        if r.config not in seen:
            seen.append(r.config)
    return seen


def configurations(rows: list[ChoiceRow]) -> list[str]:
    """One line per configuration: its bundle, taps and d."""
    first = {}
    for r in rows:
        first.setdefault(r.config, r)
    return [f"{c}: bundle `{r.backbone}`, taps {r.taps or '?'}, d={r.d}" for c, r in first.items()]


def per_category_table(rows: list[ChoiceRow]) -> str:
    head = ("category", "configuration", "fit chose", "image AUROC", "pixel AUROC", "good rejected",
            "defects caught", "fit s", "scoring ms/image", "× first", "stats MB")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    kinds = {r.category: r.kind for r in rows}
    for cat in sorted(kinds, key=lambda c: (kinds[c] != "aligned", c)):
        for r in (r for r in rows if r.category == cat):
            lines.append(f"| {r.category} ({r.kind}) | {r.config} | {r.chosen} | {r.image_auroc:.3f} | "
                         f"{r.pixel_auroc:.3f} | {r.frr:.1%} | {r.recall:.1%} | {r.fit_s:.0f} | "
                         f"{r.scoring_ms:.1f} | {r.scoring_ratio:.2f} | {r.stats_mb:.0f} |")
    return "\n".join(lines)


def means_table(rows: list[ChoiceRow]) -> str:
    head = ("configuration", "categories", "image AUROC", "pixel AUROC", "image AUROC aligned / surface",
            "good rejected", "defects caught", "fit s", "scoring ms/image", "× first (same run)", "stats MB")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in configs_in(rows):
        sel = [r for r in rows if r.config == c]
        al = [r for r in sel if r.kind == "aligned"]
        su = [r for r in sel if r.kind != "aligned"]
        split = " / ".join(f"{_mean(p, 'image_auroc'):.3f}" if p else "—" for p in (al, su))
        lines.append(f"| {c} | {len(sel)} | **{_mean(sel, 'image_auroc'):.3f}** | **{_mean(sel, 'pixel_auroc'):.3f}** | "
                     f"{split} | {_mean(sel, 'frr'):.1%} | {_mean(sel, 'recall'):.1%} | {_mean(sel, 'fit_s'):.0f} | "
                     f"{_mean(sel, 'scoring_ms'):.1f} | {_mean(sel, 'scoring_ratio'):.2f} | "
                     f"{_mean(sel, 'stats_mb'):.0f} |")
    return "\n".join(lines)


def verdicts(rows: list[ChoiceRow], baseline: str) -> list[str]:
    """Each configuration against ``baseline`` on the categories both have: the gains and the bar.

    The speed is each row's ratio to its own run's first configuration, so ``baseline`` must lead
    every run (the presets do)."""
    base = {r.category: r for r in rows if r.config == baseline}
    out = []
    for c in configs_in(rows):
        if c == baseline:
            continue
        pairs = [(r, base[r.category]) for r in rows if r.config == c and r.category in base]
        if not pairs:
            continue
        di = float(np.mean([r.image_auroc - b.image_auroc for r, b in pairs]))
        dp = float(np.mean([r.pixel_auroc - b.pixel_auroc for r, b in pairs]))
        # each row's own ratio, measured side by side with its run's first configuration (the baseline
        # leads every run): rows of different runs saw different loads, so their ms are not compared
        ratio = float(np.mean([r.scoring_ratio for r, _ in pairs]))
        wins = sum(r.image_auroc > b.image_auroc for r, b in pairs)
        clear = di >= MIN_IMAGE_GAIN and dp >= 0 and ratio <= MAX_SCORING_RATIO
        out.append(f"{c} vs {baseline} ({len(pairs)} categories): image AUROC {di:+.3f} (higher on {wins} of "
                   f"{len(pairs)}), pixel AUROC {dp:+.3f}, scoring {ratio:.2f}x — "
                   + ("clearly better (image ≥ +0.02, pixel not worse, scoring ≤ 1.5x)" if clear else
                      "not clearly better by that bar"))
    return out
