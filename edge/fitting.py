"""`fit`: stream good images through the backbone into PaDiM statistics and a good-only threshold.

One pass over the images, nothing but O(P·d²) moments kept:
  1. a seeded hold-out share of the good images is put last;
  2. the rest are accumulated; their Gaussian scores the hold-out images, which the statistics
     never saw — this is how new good parts will score on the line;
  3. the hold-out images are then accumulated too, and the final statistics use every image.
The threshold is a high quantile of the hold-out scores plus a margin (see threshold.py).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import json
import os
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import __version__
from .backends import DEFAULT_BACKEND, open_backend
from .bundle import AtomicDir, hash_tree, load_bundle, verify_files, write_json
from .errors import BundleError, DataError, ImageError
from .inspector import INSPECTOR_SCHEMA, INSPECTOR_VERSION, Calibration, Inspector, inspector_id
from .loader import iter_batches
from .padim.embed import EmbeddingSpec, embed, make_spec
from .padim.moments import Moments
from .padim.score import full_res_map, image_score, mahalanobis
from .padim.stats import GaussianStats, gaussian_from_moments
from .padim.tiling import Tiling
from .roi import ROI_FILE, Roi
from .threshold import good_only_threshold

Progress = Callable[[int], None]


@dataclass(frozen=True)
class FitOptions:
    d: int | None = 100
    seed: int = 0
    eps: float = 0.01
    shrinkage: str = "auto"
    holdout: float = 0.2
    max_holdout: int = 64
    quantile: float = 0.99
    margin: float = 0.25
    blur_sigma: float = 4.0
    open_radius: int = 4
    batch_size: int = 8
    tiling: Tiling = Tiling()
    roi: Roi | None = None  # inspect only inside it (roi.py); kept in the inspector


@dataclass
class FitReport:
    out: Path
    n_fit: int
    n_holdout: int
    errors: list[str] = field(default_factory=list)
    calibration: Calibration | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    shrinkage: str = "none"
    runtime: str = ""  # which backend ran and why


def _holdout_split(n: int, opts: FitOptions) -> np.ndarray:
    """Boolean mask of hold-out images (seeded). Needs at least 2 images."""
    k = min(max(1, int(round(n * opts.holdout))), opts.max_holdout, n - 1)
    rng = np.random.default_rng(opts.seed + 1)
    mask = np.zeros(n, dtype=bool)
    mask[rng.choice(n, size=k, replace=False)] = True
    return mask


class _Streamer:
    """Runs batches of images through the backbone into embeddings; collects image errors."""

    def __init__(self, backend, bundle, spec: EmbeddingSpec, batch_size: int, progress: Progress | None,
                 tiling: Tiling = Tiling()):
        self.backend, self.bundle, self.spec, self.tiling = backend, bundle, spec, tiling
        self.batch_size, self.progress = batch_size, progress
        self.errors: list[str] = []

    def run(self, paths: list[Path]):
        """Yield (images, samples) for the readable images of each batch: embeddings (B, d, P), or with
        tiles, what :meth:`Tiling.samples` makes of them."""
        for batch in iter_batches(paths, self.batch_size):
            imgs = []
            for p, img in batch:
                if isinstance(img, ImageError):
                    self.errors.append(str(img))
                else:
                    imgs.append(img)
            if imgs:
                x = self.tiling.batch(imgs, self.bundle.input)
                emb = embed(self.backend.infer({self.backend.input_name: x}), self.spec)
                yield imgs, self.tiling.samples(emb, self.spec.grid)
            if self.progress:
                self.progress(len(batch))


ACCUMULATE_IMAGES = 32  # embeddings buffered per update of the moments (one S2 read-modify-write each)


class _Accumulator:
    """Buffers embeddings and adds them to the moments a few dozen images at a time.

    Each update rewrites the whole float64 S2 (P·d² values), so updating per inference batch
    would cost more than the backbone; the buffer (≤ ACCUMULATE_IMAGES embeddings) is flat in N.
    """

    def __init__(self, moments: Moments | None = None, size: int = ACCUMULATE_IMAGES):
        self.moments, self.size = moments, size
        self.pending: list[np.ndarray] = []
        self.count = 0

    def add(self, emb: np.ndarray) -> None:
        if self.moments is None:
            self.moments = Moments.empty(emb.mean(axis=0).T.astype(np.float64))
        self.pending.append(emb)
        self.count += emb.shape[0]
        if self.count >= self.size:
            self.flush()

    def flush(self) -> Moments | None:
        if self.pending:
            self.moments.add(np.concatenate(self.pending) if len(self.pending) > 1 else self.pending[0])
            self.pending, self.count = [], 0
        return self.moments


MEMORY_LIMIT_GB = 6.0  # a Jetson Orin Nano has 8 GB in all


def _check_memory(grid: tuple[int, int], d: int, tiling: Tiling) -> None:
    """Refuse a fit whose statistics would not fit a line device, before reading any image."""
    p = grid[0] * grid[1]
    gb = p * d * d * 16 / 1e9  # float64 co-moments + float32 factor and its scoring bands
    if gb > MEMORY_LIMIT_GB:
        hint = ("use a larger --tile or a smaller --tile-overlap (fewer windows)" if tiling.windowed else
                "use fewer tiles") + ", --tile-mode shared (textures, strip: memory as without tiles), or a smaller -d"
        raise DataError(f"the statistics for a {grid[0]}x{grid[1]} grid at d={d} need about {gb:.1f} GB "
                        f"(limit {MEMORY_LIMIT_GB:g} GB)", hint=hint)


def _first_size(paths: list[Path]) -> tuple[int, int]:
    from .imageio import read_image

    for p in paths:
        try:
            return read_image(p).shape[:2]
        except ImageError:
            continue
    raise DataError("none of the good images could be read")


def _holdout_scores(streamer: _Streamer, paths: list[Path], stats: GaussianStats, acc: _Accumulator,
                    sigma: float, roi: Roi | None = None) -> tuple[list[float], list[float]]:
    """Score hold-out images with statistics that never saw them, then accumulate them."""
    scores, p999 = [], []
    for imgs, emb in streamer.run(paths):
        for img, g in zip(imgs, streamer.tiling.stitch(mahalanobis(emb, stats))):
            inside = roi.inside(img.shape[:2]) if roi is not None else None
            amap = full_res_map(g, img.shape[:2], sigma, inside)
            scores.append(image_score(amap))
            p999.append(float(np.quantile(amap if inside is None else amap[inside], 0.999)))
        acc.add(emb)
    acc.flush()
    return scores, p999


def _calibration(scores: list[float], p999: list[float], opts: FitOptions, n_fit: int, extra: dict) -> Calibration:
    s = np.asarray(scores)
    thr = good_only_threshold(s, opts.quantile, opts.margin)
    q = {f"q{int(v * 1000) / 10:g}": float(np.quantile(s, v)) for v in (0.5, 0.9, 0.99)}
    return Calibration(thr, thr, "good-holdout", {
        "quantile": opts.quantile, "margin": opts.margin,
        "pixel_rule": "pixel threshold = image threshold, so a good part's mask is empty",
        "good_scores": {"n": int(s.size), "fitted_on": n_fit, "min": float(s.min()), "max": float(s.max()),
                        **q, "values": [round(v, 4) for v in scores]},
        "good_pixel_q99.9": {"max": float(np.max(p999))},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra})


def fit_inspector(good: list[Path], out: str | Path, backbone: str | Path, opts: FitOptions = FitOptions(),
                  backend: str = DEFAULT_BACKEND, device: str | None = None, threads: int | None = None,
                  progress: Progress | None = None, precision: str | None = None) -> FitReport:
    """Fit a new inspector from good images and write it atomically to ``out``.

    ``precision`` picks the bundle's model variant (fp32 | fp16 | int8); the statistics describe
    that variant's features, so the inspector records it and scoring should use the same one.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if len(good) < 2:
        raise DataError(f"fit needs at least 2 good images, found {len(good)}",
                        hint="PaDiM needs dozens of good images for stable statistics; 50-300 is typical")
    bundle = load_bundle(backbone)
    if bundle.kind != "backbone" or not bundle.taps:
        raise BundleError(f"{backbone} is a {bundle.kind} bundle without feature taps, not a PaDiM backbone",
                          hint="fit needs a bundle from `edge-export backbone`; classifiers and segmenters "
                               "are run, not fitted")
    spec = make_spec(bundle.taps, (bundle.input.height, bundle.input.width), opts.d, opts.seed)
    be = open_backend(bundle, backend, device, precision, threads)
    if opts.tiling.windowed and opts.tiling.image is None:  # windows are laid out on the first photo's size
        opts = dataclasses.replace(opts, tiling=opts.tiling.laid_out(*_first_size(good)))
    grid = opts.tiling.stats_grid(spec.grid)
    _check_memory(grid, spec.d, opts.tiling)
    streamer = _Streamer(be, bundle, spec, opts.batch_size, progress, opts.tiling)
    hold = _holdout_split(len(good), opts)
    fit_paths = [p for p, h in zip(good, hold) if not h]
    hold_paths = [p for p, h in zip(good, hold) if h]

    buf = _Accumulator()
    for _, emb in streamer.run(fit_paths):
        buf.add(emb)
    acc = buf.flush()
    if acc is None:
        raise DataError("none of the good images could be read:\n  " + "\n  ".join(streamer.errors[:5]))
    n_fit = acc.n
    stats_fit = gaussian_from_moments(acc, spec.channel_idx, grid, opts.eps, opts.shrinkage)
    # the hold-out images join the same moments once scored: no second O(P·d²) accumulator
    scores, p999 = _holdout_scores(streamer, hold_paths, stats_fit, buf, opts.blur_sigma, opts.roi)
    del stats_fit  # frees its factors before the final ones are made
    if not scores:
        raise DataError("no hold-out image could be read, so no threshold can be set")
    total = acc
    stats = gaussian_from_moments(total, spec.channel_idx, grid, opts.eps, opts.shrinkage)
    cal = _calibration(scores, p999, opts, n_fit, {})
    _write_inspector(out, bundle.root, stats, total, cal, opts, [str(p) for p in good], streamer.errors,
                     be.variant)
    return FitReport(out, n_fit, len(scores), streamer.errors, cal, time.perf_counter() - t0, _peak_rss_mb(),
                     stats.shrinkage, _runtime(be))


def update_inspector(inspector_dir: str | Path, good: list[Path], backend: str = DEFAULT_BACKEND,
                     device: str | None = None, threads: int | None = None,
                     progress: Progress | None = None, precision: str | None = None) -> FitReport:
    """Add good images to an existing inspector without revisiting the old ones.

    The new images are first scored with the current statistics (they are unseen, like hold-out
    images), their scores join the good-score distribution, and the threshold is recomputed.
    """
    t0 = time.perf_counter()
    root = Path(inspector_dir)
    insp = Inspector.load(root, backend, device, precision, threads)
    if insp.warnings:
        raise BundleError(insp.warnings[0], hint="update with the precision the inspector was fitted with")
    files = insp.manifest.get("files", {})
    if "moments.npz" not in files:
        raise BundleError(f"{root} has no moments.npz, so it cannot be updated", hint="refit it with all images")
    acc = _read_moments(root, files["moments.npz"], insp.stats)
    p = insp.manifest["padim"]
    opts = FitOptions(d=len(insp.stats.channel_idx), seed=p["seed"], eps=p["eps"], shrinkage=p["shrinkage"],
                      tiling=insp.tiling, roi=insp.roi,
                      quantile=insp.calibration.details.get("quantile", 0.99),
                      margin=insp.calibration.details.get("margin", 0.25), blur_sigma=insp.post.blur_sigma,
                      open_radius=insp.post.open_radius, batch_size=p.get("batch_size", 8))
    streamer = _Streamer(insp.backend, insp.bundle, insp.spec, opts.batch_size, progress, insp.tiling)
    n_old = acc.n
    scores, p999 = _holdout_scores(streamer, list(good), insp.stats, _Accumulator(acc), opts.blur_sigma, opts.roi)
    if not scores:
        raise DataError("none of the new good images could be read:\n  " + "\n  ".join(streamer.errors[:5]))
    total = acc
    stats = gaussian_from_moments(total, insp.stats.channel_idx, insp.stats.grid, opts.eps, opts.shrinkage)
    old = insp.calibration.details.get("good_scores", {}).get("values", [])
    old_px = insp.calibration.details.get("good_pixel_q99.9", {}).get("max", 0.0)
    if insp.calibration.method != "good-holdout":
        # a labelled threshold stays as the user set it; only the statistics change
        cal = insp.calibration
    else:
        cal = _calibration(list(old) + scores, [old_px] + p999, opts, n_old, {"updates": 1 + int(
            insp.calibration.details.get("updates", 0))})
    history = list(insp.manifest.get("good_images", [])) + [str(x) for x in good]
    # the backbone is copied out of the old directory before the new one is renamed over it
    _write_inspector(root, root / "backbone", stats, total, cal, opts, history, streamer.errors,
                     insp.backend.variant)
    return FitReport(root, len(scores), 0, streamer.errors, cal, time.perf_counter() - t0, _peak_rss_mb(),
                     stats.shrinkage, _runtime(insp.backend))


def _read_moments(root: Path, sha256: str, stats: GaussianStats) -> Moments:
    """moments.npz, read once: hashed from those bytes (as the manifest records) and checked against the
    statistics' positions and channels before anything is added to it."""
    try:
        data = (root / "moments.npz").read_bytes()
    except OSError as e:
        raise BundleError(f"{root}/moments.npz: cannot read: {e.strerror or e}") from None
    verify_files(root, {"moments.npz": sha256}, what="inspector", contents={"moments.npz": data})
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            acc = Moments.from_arrays(z)
    except (ValueError, OSError) as e:
        raise BundleError(f"{root}/moments.npz: not a valid moments file ({e})") from None
    want = (stats.grid[0] * stats.grid[1], stats.d)
    if acc.s1.shape != want:
        raise BundleError(f"{root}/moments.npz holds {acc.s1.shape[0]} positions x {acc.s1.shape[1]} channels but "
                          f"stats.npz has {want[0]} x {want[1]}", hint="refit the inspector with all its images")
    return acc


def write_calibration(root: Path, cal: Calibration) -> None:
    """Replace an inspector's calibration atomically.

    A new directory is assembled from hard links to the unchanged files (no copying of the
    statistics) plus the new calibration and manifest, then renamed over the old one.
    """
    from .bundle import sha256_file

    root = Path(root)
    m = json.loads((root / "manifest.json").read_text())

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    with AtomicDir(root, overwrite=True) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(root, tmp, copy_function=link,
                        ignore=lambda d, names: [n for n in names if Path(d) == root and
                                                 n in ("calibration.json", "manifest.json")])
        write_json(tmp / "calibration.json", cal.to_dict())
        m["files"]["calibration.json"] = sha256_file(tmp / "calibration.json")
        m["id"] = inspector_id(m["files"])
        m["thresholds"] = {"image": cal.image_threshold, "pixel": cal.pixel_threshold, "method": cal.method}
        write_json(tmp / "manifest.json", m)


def _write_inspector(out: Path, backbone_dir: Path, stats: GaussianStats, moments: Moments, cal: Calibration,
                     opts: FitOptions, images: list[str], errors: list[str], variant: str) -> None:
    bundle = load_bundle(backbone_dir)
    with AtomicDir(out, overwrite=True) as tmp:
        shutil.copytree(backbone_dir, tmp / "backbone")
        stats.save(tmp / "stats.npz")
        np.savez(tmp / "moments.npz", **moments.to_arrays())
        write_json(tmp / "calibration.json", cal.to_dict())
        if opts.roi is not None:
            shape = None if opts.roi.mask is not None else opts.tiling.image or _first_size([Path(p) for p in images])
            opts.roi.save(tmp / ROI_FILE, shape)
        files = hash_tree(tmp)
        write_json(tmp / "manifest.json", {
            "schema": INSPECTOR_SCHEMA, "schema_version": INSPECTOR_VERSION,
            "id": inspector_id(files),
            "created": {"tool": f"edge-inspect {__version__}",
                        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
            "backbone": {"name": bundle.name, "id": bundle.id, "input": [bundle.input.height, bundle.input.width],
                         "weights": bundle.manifest.get("weights", {}).get("source"),
                         "fitted_with": variant},
            "padim": {"d": stats.d, "seed": opts.seed, "eps": stats.eps, "shrinkage": opts.shrinkage,
                      "shrinkage_applied": stats.shrinkage, "shrink_mean": stats.shrink_mean,
                      "grid": list(stats.grid), "tiling": opts.tiling.to_dict(),
                      "n_images": stats.n // (opts.tiling.count if opts.tiling.shared else 1), "n_samples": stats.n,
                      "blur_sigma": opts.blur_sigma,
                      "open_radius": opts.open_radius, "batch_size": opts.batch_size},
            "thresholds": {"image": cal.image_threshold, "pixel": cal.pixel_threshold, "method": cal.method},
            "good_images": images[-10000:],
            "skipped_images": errors,
            "files": files,
        })


def _runtime(be) -> str:
    return f"{be.describe()}, {be.variant} ({be.reason})"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
