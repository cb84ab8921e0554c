"""Experiment (not a product feature): variants of the position-free (texture) model on the dev surfaces.

    python -m benchmarks.experiments.texture_variants brick,moon,tissue 20,80 none,mean,z
    CH=24:176 python -m benchmarks.experiments.texture_variants brick,moon,tissue 20,80 mean   # drop the s4 tap
    SUB=2 ... (distances on every other grid cell)   TOP=0.01 ... (image score: mean of the top 1% of the map)
    SIG=8 ... (map blur)   AGG=5 ... (5x5 neighbourhood average)
    RING=3 ... (per-position means only in a 3-cell border ring; the interior shares one mean)

The product's Lite0 bundle, embedding (every channel, 3x3 average unless AGG) and map (upsample + blur, max);
the statistics are refitted here: per-position means, one pooled covariance + 0.01 I, per-position spread.
Centring variants (third argument): none; mean (each image's channels minus their mean over its positions:
what `--centre image` does); z (also divided by each channel's spread in the image); zs (one spread per
image); between (mean, plus the between-image covariance of the image means added back). The threshold
is the product's rule on 5-fold held-out scores (log-normal, 1% target), so good rejected / caught are
comparable between variants, not with `eval`'s numbers. Data: ~/.cache/edge-inspect/realdata-dev
(benchmarks/realdata.py); never the holdout.
"""

from __future__ import annotations

import glob
import os
import sys
from pathlib import Path

import numpy as np

from edge.backends import open_backend
from edge.bundle import load_bundle
from edge.imageio import read_image
from edge.metrics import auroc
from edge.padim.embed import embed, make_spec
from edge.padim.score import full_res_map
from edge.padim.tiling import Tiling
from edge.paths import default_backbone_dir

ROOT = Path.home() / ".cache/edge-inspect/realdata-dev"
CH = os.environ.get("CH")  # channel slice, e.g. 24:176
SIG = float(os.environ.get("SIG", "4"))
AGG = int(os.environ.get("AGG", "3"))
SUB = int(os.environ.get("SUB", "1"))
TOP = float(os.environ.get("TOP", "0"))
RING = int(os.environ.get("RING", "0"))  # >0: per-position means only in a border ring this many cells wide
GRID: tuple[int, int] = (0, 0)  # the embedding grid, set in main (for RING)
Z90 = 2.326  # the 99th percentile of a standard normal: the product's 1% target on log scores


def embeddings(be, bundle, spec, paths: list[str]) -> np.ndarray:
    out = []
    for i in range(0, len(paths), 8):
        x = Tiling().batch([read_image(p) for p in paths[i:i + 8]], bundle.input)
        e = embed(be.infer({be.input_name: x}), spec).copy()
        if CH:
            a, b = map(int, CH.split(":"))
            e = e[:, a:b]
        out.append(e)
    return np.concatenate(out).astype(np.float64)


def centred(e: np.ndarray, how: str) -> np.ndarray:
    if how in ("none",):
        return e
    c = e - e.mean(axis=2, keepdims=True)
    if how == "z":
        return c / (c.std(axis=2, keepdims=True) + 1e-6)
    if how == "zs":
        return c / np.sqrt((c ** 2).mean(axis=(1, 2), keepdims=True) + 1e-12)
    return c  # mean, between


def fit(e: np.ndarray, how: str, eps: float = 0.01):
    n, d, p = e.shape
    x = centred(e, how)
    mu = x.mean(0)
    if RING:  # the interior shares one mean (its positions' average); only the border keeps its own
        inner = np.zeros(GRID, bool)
        inner[RING:-RING, RING:-RING] = True
        inner = inner.ravel()
        mu[:, inner] = mu[:, inner].mean(axis=1, keepdims=True)
    r = x - mu[None]
    flat = r.transpose(1, 0, 2).reshape(d, -1)
    cov = flat @ flat.T / (p * (n - 1)) + eps * np.eye(d)
    if how == "between":
        g = e.mean(axis=2) - e.mean(axis=(0, 2))
        cov += g.T @ g / (n - 1)
    factor = np.linalg.cholesky(np.linalg.inv(cov)).T
    spread = (r ** 2).sum(axis=(0, 1))
    return mu, factor, np.sqrt(spread / spread.mean()), how


def scores(e: np.ndarray, model, grid: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    mu, factor, s, how = model
    sel = np.zeros(grid, bool)
    sel[SUB // 2::SUB, SUB // 2::SUB] = True
    sel = sel.ravel()
    sub_grid = (len(range(SUB // 2, grid[0], SUB)), len(range(SUB // 2, grid[1], SUB)))
    out = []
    for x in centred(e, how):
        z = factor @ (x[:, sel] - mu[:, sel])
        m = (np.sqrt((z ** 2).sum(0)) / s[sel]).reshape(sub_grid).astype(np.float32)
        fm = full_res_map(m, shape, SIG)
        k = max(1, int(TOP * fm.size))
        out.append(float(np.partition(fm.ravel(), -k)[-k:].mean()) if TOP > 0 else float(fm.max()))
    return np.array(out)


def main() -> None:
    cats, ns, hows = sys.argv[1].split(","), [int(v) for v in sys.argv[2].split(",")], sys.argv[3].split(",")
    bundle = load_bundle(default_backbone_dir())
    be = open_backend(bundle, "onnxruntime", None, None, None)
    spec = make_spec(bundle.taps, (bundle.input.height, bundle.input.width), None, 0, AGG)
    global GRID
    GRID = tuple(spec.grid)
    for c in cats:
        train = sorted(glob.glob(str(ROOT / c / "train/good/*.png")))
        good = sorted(glob.glob(str(ROOT / c / "test/good/*.png")))
        bad = sorted(p for p in glob.glob(str(ROOT / c / "test/*/*.png")) if "/good/" not in p)
        e_train, e_good, e_bad = (embeddings(be, bundle, spec, ps) for ps in (train, good, bad))
        shape = read_image(train[0]).shape[:2]
        for n in ns:
            row = []
            for how in hows:
                e, k = e_train[:n], 5
                held = np.concatenate([scores(e[np.arange(n) % k == f], fit(e[np.arange(n) % k != f], how),
                                              spec.grid, shape) for f in range(k)])
                thr = float(np.exp(np.log(held).mean() + Z90 * np.log(held).std()))
                model = fit(e, how)
                sg, sb = scores(e_good, model, spec.grid, shape), scores(e_bad, model, spec.grid, shape)
                auc = auroc(np.r_[sg, sb], np.r_[np.zeros(len(sg)), np.ones(len(sb))])
                row.append(f"{how}: image AUROC {auc:.3f}, good rejected {np.mean(sg >= thr):.1%}, "
                           f"caught {np.mean(sb >= thr):.1%}")
            print(c, n, " | ".join(row), flush=True)


if __name__ == "__main__":
    main()
