"""`fit`: stream good images through the backbone into PaDiM statistics and a good-only threshold.

Two passes over the images, nothing but O(P·d²) moments kept (flat in the number of images):
  1. every good image is accumulated into the moments of each candidate model (per-position
     sums for ``aligned``; per-fold position-free sums, K·d², for ``texture``);
  2. the good images (up to MAX_CROSSFIT of them, seeded) are read again and scored by statistics
     that never saw them (padim/crossfit.py: exact leave-one-out for aligned, K folds for texture).
     With ``--mode auto`` each also gets synthetic defects, and the model that separates those
     best is chosen (model_choice.py).
The threshold targets a false-reject rate from the held-out scores of the chosen model, with an
estimate of the rate it will give (threshold.py).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import io
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from . import capture
from .backends import DEFAULT_BACKEND, open_backend
from .bundle import load_bundle, verify_files
from .errors import BundleError, DataError, ImageError
from .inspector import Inspector
from .inspector_dir import Calibration, write_inspector
from .loader import iter_batches
from .model_choice import ModelChoice, choose, cross_fit
from .padim import position_free
from .padim.crossfit import FoldMoments, LeaveOneOut
from .padim.embed import EmbeddingSpec, embed, make_spec
from .padim.moments import Moments
from .padim.score import MODES, distance_maps, full_res_map, image_score
from .padim.stats import GaussianStats, gaussian_from_moments
from .padim.tiling import Tiling
from .precision import asked_at_fit, choose_inference_precision
from .registration import CHECK_IMAGES, REFERENCE_IMAGES, Registration, worth_registering
from .roi import ROI_FILE, Roi
from .threshold import ExpectedFRR, frr_threshold

Progress = Callable[[int], None]
FIT_MODES = ("auto",) + MODES
PARITY_IMAGES = 32  # held-out good images the reduced-precision check scores twice (precision.py)
MAX_CROSSFIT = 200  # good images scored held-out in pass 2; more add little to a threshold and cost time
AGGREGATE_FOR_MODE = {"aligned": 1, "texture": 3}  # the default k×k average of each tap, per model (see below)
CENTRE_FOR_MODE = {"aligned": "none", "texture": "image"}  # features centred on each image's own mean
D_FOR_MODE = {"aligned": 100, "texture": None}  # the default embedding size per model (None: every tap channel)
REGISTER_CHOICES = ("auto", "off")  # auto: aligned, untiled models register each image to a reference view
GOOD_ONLY_METHODS = ("good-crossfit", "good-holdout")  # good-holdout: inspectors fitted before cross-fitting


@dataclass(frozen=True)
class FitOptions:
    d: int | None = None  # embedding size; None: per mode (D_FOR_MODE)
    seed: int = 0
    eps: float = 0.01
    shrinkage: str = "none"
    mode: str = "auto"  # aligned | texture | auto (chosen from good images)
    aggregate: int | None = None  # k×k average of each tap before embedding (1 = none); None: per mode
    centre: str | None = None  # "none" | "image" (embed.centre_on_image); None: per mode
    target_frr: float = 0.01
    folds: int = 10  # position-free folds (at most one per image)
    max_crossfit: int = MAX_CROSSFIT
    blur_sigma: float = 4.0
    open_radius: int = 4
    batch_size: int = 8
    tiling: Tiling = Tiling()
    roi: Roi | None = None  # inspect only inside it (roi.py); kept in the inspector
    register: str = "auto"  # registration.py; REGISTER_CHOICES
    capture_tolerance: float | None = capture.DEFAULT_TOLERANCE  # capture.py; None: no capture check

    def __post_init__(self):
        if self.mode not in FIT_MODES:
            raise DataError(f"mode {self.mode!r} is unknown", hint=f"use one of {', '.join(FIT_MODES)}")
        if self.register not in REGISTER_CHOICES:
            raise DataError(f"--register {self.register!r} is unknown", hint=f"use one of {', '.join(REGISTER_CHOICES)}")

    @property
    def registers(self) -> bool:
        """Whether the per-position model registers each image to a reference view: by default yes,
        unless the image is tiled (windows are laid on the photo, whose parts are not one view)."""
        return self.register == "auto" and self.tiling.count == 1 and not self.tiling.windowed

    def aggregate_for(self, mode: str) -> int:
        """The neighbourhood average a model sees. By default none for per-position statistics (their
        cells are already aligned; averaging blurs the small defects they find) and 3x3 for the
        position-free model (each cell then describes a patch of the texture)."""
        return AGGREGATE_FOR_MODE[mode] if self.aggregate is None else self.aggregate

    def centre_for(self, mode: str) -> str:
        """Whether a model centres each image's features on their mean over its positions: by default the
        position-free model does (a surface's overall level varies from image to image; its defects are
        local), per-position statistics do not (where a part is brighter than usual is itself a defect)."""
        return CENTRE_FOR_MODE[mode] if self.centre is None else self.centre

    def d_for(self, mode: str) -> int | None:
        """The embedding size a model sees. By default 100 seeded channels for per-position statistics
        (P·d² numbers: memory and speed grow with d²) and every tap channel for the position-free
        model (one d×d covariance: all channels cost little, and on the dev surfaces they separated
        defects better; benchmarks/choices_results.md)."""
        return D_FOR_MODE[mode] if self.d is None else self.d


def fit_work(n_images: int, opts: FitOptions = FitOptions()) -> int:
    """Image reads `fit` makes (for a progress bar): every image once, the cross-fitted ones twice."""
    return n_images + min(n_images, opts.max_crossfit)


@dataclass
class FitReport:
    out: Path
    n_fit: int
    n_crossfit: int
    errors: list[str] = field(default_factory=list)
    calibration: Calibration | None = None
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    shrinkage: str = "none"
    choice: ModelChoice | None = None
    expected_frr: ExpectedFRR | None = None
    runtime: str = ""  # which backend ran and why
    inference: str = ""  # the inference precision chosen, and why (precision.py)
    registered: bool = False  # each image is registered to a reference view (registration.py)
    features: str = ""  # what each position's feature is (EmbeddingSpec.describe)
    capture: str = ""  # the capture check recorded (capture.CaptureRange.describe), "" when none
    registration_note: str = ""  # why --register auto did (not) register (registration.worth_registering)


class _Streamer:
    """Runs batches of images through the backbone into embeddings, one per candidate model (each
    model's own :class:`EmbeddingSpec`; the backbone runs once); collects image errors."""

    def __init__(self, backend, bundle, specs: dict[str, EmbeddingSpec], batch_size: int,
                 progress: Progress | None, tiling: Tiling = Tiling(), registration: Registration | None = None):
        self.backend, self.bundle, self.specs, self.tiling = backend, bundle, specs, tiling
        self.batch_size, self.progress = batch_size, progress
        self.registration = registration  # applies to the aligned model only
        self.errors: list[str] = []

    def samples(self, imgs: list[np.ndarray]) -> "Embeddings":
        """Images → {mode: embeddings (B, d, P)}, or with tiles, what :meth:`Tiling.samples` makes of them.
        With a registration, the aligned model's come from the registered images (a second backbone run
        when another model sees the images as they are) and ``warps`` holds each image's warp."""
        reg = self.registration
        moved = [m for m in self.specs if m == "aligned" and reg is not None]
        out = Embeddings(self._embed(imgs, [m for m in self.specs if m not in moved]))
        if moved:
            views, warps = zip(*(reg.register(im) for im in imgs))
            out.warps = list(warps)
            out.update(self._embed(list(views), moved))
        return out

    def _embed(self, imgs: list[np.ndarray], modes: list[str]) -> dict[str, np.ndarray]:
        if not modes:
            return {}
        x = self.tiling.batch(imgs, self.bundle.input)
        feats = self.backend.infer({self.backend.input_name: x})
        made: dict[tuple, np.ndarray] = {}  # models with the same channels and aggregation share one embedding
        for m in modes:
            spec = self.specs[m]
            if _key(spec) not in made:
                made[_key(spec)] = self.tiling.samples(embed(feats, spec), spec.grid)
        return {m: made[_key(self.specs[m])] for m in modes}

    def to_image_frame(self, grids: np.ndarray, warps: list[np.ndarray] | None) -> np.ndarray:
        """The aligned model's stitched grid maps, moved back to each image's frame by its warp
        (:attr:`Embeddings.warps`; None: not registered)."""
        if warps is None:
            return grids
        return np.stack([self.registration.map_to_image(g, w) for g, w in zip(grids, warps)])

    def run(self, paths: list[Path], record_errors: bool = True):
        """Yield (paths, images, {mode: samples}) for the readable images of each batch."""
        for batch in iter_batches(paths, self.batch_size):
            ok_paths, imgs = [], []
            for p, img in batch:
                if not isinstance(img, ImageError):
                    try:
                        self.tiling.check_image(img.shape[:2], self.bundle.input)
                    except ImageError as e:  # a frame the model would squash: skipped like an unreadable one
                        img = ImageError(f"{p}: {e.message}")
                if isinstance(img, ImageError):
                    if record_errors:
                        self.errors.append(str(img))
                else:
                    ok_paths.append(p)
                    imgs.append(img)
            if imgs:
                yield ok_paths, imgs, self.samples(imgs)
            if self.progress:
                self.progress(len(batch))


class Embeddings(dict):
    """{mode: samples} of one batch, and the registration warp of each image (None: not registered)."""

    warps: list[np.ndarray] | None = None


def _reference(paths: list[Path], input_hw: tuple[int, int]) -> tuple[Registration | None, str]:
    """The registration reference from the first readable good images, and None instead when it finds
    nothing to correct in the next ones (registration.worth_registering); with the reason."""
    from .imageio import read_image
    from .preprocess import check_aspect

    imgs = []
    for p in paths:
        try:
            img = read_image(p)
            check_aspect(img.shape[:2], input_hw)  # a frame fit skips (too far off the model's shape)
        except ImageError:
            continue
        imgs.append(img)
        if len(imgs) == REFERENCE_IMAGES + CHECK_IMAGES:
            break
    if not imgs:
        return None, "not registered: no good image could be read for a reference"
    reg = Registration.build(imgs[:REFERENCE_IMAGES], input_hw)
    rest = imgs[REFERENCE_IMAGES:]
    keep, why = worth_registering(reg, rest if len(rest) >= 4 else imgs)
    return (reg if keep else None), why


def _key(spec: EmbeddingSpec) -> tuple:
    return spec.aggregate, spec.centre, spec.channel_idx.tobytes()


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


BYTES_PER_ENTRY = 24  # per position and d² entry, at fit's peak: float64 sums, float32 factor, packed copies on save


def statistics_gb(grid: tuple[int, int], d: int) -> float:
    """Fit's peak memory for aligned statistics on ``grid``, beyond the runtime and one batch. Measured: a
    3872x3200 fit in 56 windows with --stats-cell 4 (14,336 positions, d=100) is 3.4 GB by this and
    peaked at 4.5 GB RSS in all."""
    return grid[0] * grid[1] * d * d * BYTES_PER_ENTRY / 1e9


def _check_memory(grid: tuple[int, int], d: int, tiling: Tiling, tile_grid: tuple[int, int]) -> None:
    """Refuse a fit whose statistics would not fit a line device, before reading any image; the hint
    names the --stats-cell that would fit (positioned parts keep per-position statistics, coarser)."""
    gb = statistics_gb(grid, d)
    if gb <= MEMORY_LIMIT_GB:
        return
    cells = []
    for k in range(tiling.cell + 1, 17):
        if tile_grid[0] % k == 0 and tile_grid[1] % k == 0:
            g = statistics_gb(dataclasses.replace(tiling, cell=k).stats_grid(tile_grid), d)
            if g <= MEMORY_LIMIT_GB:
                cells.append(f"--stats-cell {k} (a Gaussian per {k}x{k} grid cells, about {g:.2g} GB)")
                break
    hint = ((cells[0] + " keeps per-position statistics for positioned parts; or ") if cells else "") + \
        ("use a larger --tile or a smaller --tile-overlap (fewer windows)" if tiling.windowed else "use fewer tiles") \
        + ", --tile-mode shared or --mode texture (textures, strip: memory as without tiles), or a smaller -d"
    raise DataError(f"the statistics for a {grid[0]}x{grid[1]} grid at d={d} need about {gb:.3g} GB "
                    f"(limit {MEMORY_LIMIT_GB:g} GB)", hint=hint)


def _first_size(paths: list[Path]) -> tuple[int, int]:
    from .imageio import read_image

    for p in paths:
        try:
            return read_image(p).shape[:2]
        except ImageError:
            continue
    raise DataError("none of the good images could be read")


def _stats_for(mode: str, moments, channel_idx: np.ndarray, grid, opts: FitOptions) -> GaussianStats:
    if mode == "texture":
        return position_free.gaussian_from_pooled(moments, channel_idx, grid, opts.eps)
    return gaussian_from_moments(moments, channel_idx, grid, opts.eps, opts.shrinkage)


def _calibration(scores, p999, target_frr: float, n_fit: int, extra: dict, seed: int = 0
                 ) -> tuple[Calibration, ExpectedFRR]:
    s = np.asarray(scores, dtype=np.float64)
    thr, est = frr_threshold(s, target_frr, seed)
    q = {f"q{int(v * 1000) / 10:g}": float(np.quantile(s, v)) for v in (0.5, 0.9, 0.99)}
    return Calibration(thr, thr, "good-crossfit", {
        "target_frr": target_frr, "expected_frr": est.to_dict(),
        "rule": "the (1 - target) quantile of the log-normal fitted to the held-out good scores "
                "(point estimate; expected_frr says what it will give)",
        "pixel_rule": "pixel threshold = image threshold, so a good part's mask is empty",
        "good_scores": {"n": int(s.size), "fitted_on": n_fit, "min": float(s.min()), "max": float(s.max()),
                        **q, "values": [round(float(v), 4) for v in s]},
        "good_pixel_q99.9": {"max": float(np.max(p999))},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **extra}), est


def fit_inspector(good: list[Path], out: str | Path, backbone: str | Path, opts: FitOptions = FitOptions(),
                  backend: str = DEFAULT_BACKEND, device: str | None = None, threads: int | None = None,
                  progress: Progress | None = None, precision: str | None = None,
                  inference_precision: str = "fp32") -> FitReport:
    """Fit a new inspector from good images and write it atomically to ``out``.

    ``precision`` picks the bundle's model variant (fp32 | fp16 | int8); the statistics describe
    that variant's features, so the inspector records it and scoring should use the same one.
    """
    t0 = time.perf_counter()
    out = Path(out)
    if len(good) < 3:
        raise DataError(f"fit needs at least 3 good images, found {len(good)}",
                        hint="PaDiM needs dozens of good images for stable statistics; 20 is a minimum, 50-300 "
                             "is typical")
    bundle = load_bundle(backbone)
    if bundle.kind != "backbone" or not bundle.taps:
        raise BundleError(f"{backbone} is a {bundle.kind} bundle without feature taps, not a PaDiM backbone",
                          hint="fit needs a bundle from `edge-export backbone`; classifiers and segmenters "
                               "are run, not fitted")
    modes = MODES if opts.mode == "auto" else (opts.mode,)
    specs = {m: make_spec(bundle.taps, (bundle.input.height, bundle.input.width), opts.d_for(m), opts.seed,
                          opts.aggregate_for(m), opts.centre_for(m)) for m in modes}
    spec = specs[modes[0]]  # the grid is the same for every mode; channels and aggregation may differ
    be = open_backend(bundle, backend, device, precision, threads)
    if opts.tiling.windowed and opts.tiling.image is None:  # windows are laid out on the first photo's size
        opts = dataclasses.replace(opts, tiling=opts.tiling.laid_out(*_first_size(good)))
    opts.tiling.check_windows(bundle.input)
    opts.tiling.check_cells(spec.grid)
    grid = opts.tiling.stats_grid(spec.grid)
    if "aligned" in modes:
        _check_memory(grid, specs["aligned"].d, opts.tiling, spec.grid)
    registration, registration_note = (_reference(good, (bundle.input.height, bundle.input.width))
                                       if "aligned" in modes and opts.registers else (None, ""))
    streamer = _Streamer(be, bundle, specs, opts.batch_size, progress, opts.tiling, registration)
    rows = opts.tiling.samples_per_image
    index = {p: i for i, p in enumerate(good)}

    # pass 1: every image into the moments of each candidate
    aligned = _Accumulator() if "aligned" in modes else None
    folds = FoldMoments(min(len(good), opts.folds), grid) if "texture" in modes else None
    read: list[Path] = []
    looks: list[tuple[float, float]] = []  # each good image's brightness and contrast (capture.py)
    for paths, imgs, emb in streamer.run(good):
        read += paths
        looks += [capture.measure(im) for im in imgs]
        if aligned is not None:
            aligned.add(emb["aligned"])
        if folds is not None:
            for j, p in enumerate(paths):
                folds.add(folds.fold_of(index[p]), emb["texture"][j * rows:(j + 1) * rows])
    if len(read) < 3:
        raise DataError(f"only {len(read)} of the good images could be read; fit needs at least 3:\n  "
                        + "\n  ".join(streamer.errors[:5]))
    total_aligned = aligned.flush() if aligned is not None else None

    # pass 2: held-out scores of (up to max_crossfit) images under each candidate, synthetic defects to choose
    rng = np.random.default_rng(opts.seed + 1)
    cf_paths = read if len(read) <= opts.max_crossfit else \
        [read[i] for i in np.sort(rng.choice(len(read), opts.max_crossfit, replace=False))]
    loo = (LeaveOneOut(total_aligned, specs["aligned"].channel_idx, grid, opts.eps, opts.shrinkage, group=rows)
           if total_aligned is not None else None)
    crossed = cross_fit(streamer, cf_paths, index, streamer.samples, loo, folds,
                        specs.get("texture", spec).channel_idx, opts.eps, opts.shrinkage, rows, grid, opts.blur_sigma,
                        synthetic=len(modes) > 1, seed=opts.seed, roi=opts.roi)
    del loo  # frees its factors before the final ones are made
    choice = choose(crossed.results, None if len(modes) > 1 else opts.mode)
    mode = choice.mode
    total = total_aligned if mode == "aligned" else folds.total()
    stats = _stats_for(mode, total, specs[mode].channel_idx, grid, opts)
    if mode in crossed.position_scale:  # how far held-out good images strayed at each position
        held_out = crossed.position_scale[mode]
        scale = held_out if stats.position_scale is None else stats.position_scale * held_out
        stats = dataclasses.replace(stats, position_scale=scale.astype(np.float32))
    chosen = choice.chosen
    cal, est = _calibration(chosen.good_scores, chosen.good_pixel_q999, opts.target_frr, len(read),
                            {"model_choice": choice.to_dict()}, opts.seed)
    looked = capture.CaptureRange.of(looks, opts.capture_tolerance) if opts.capture_tolerance is not None else None
    _write_inspector(out, bundle.root, stats, total, cal, opts, [str(p) for p in good], streamer.errors,
                     be.variant, mode, choice, len(read), specs[mode],
                     registration if mode == "aligned" else None, looked,
                     registration_note if mode == "aligned" else "")
    shrinkage = stats.shrinkage
    # the sums and factors are on disk now: free them before the precision check opens the inspector
    # (a 3872x3200 fit with --stats-cell 4 peaked at 6.4 GB holding both)
    del stats, total, total_aligned, aligned, folds
    # reduced precision against fp32 on (a share of) the images scored held-out above
    inference = choose_inference_precision(out, cf_paths[:PARITY_IMAGES], inference_precision, backend, device,
                                           threads, opts.batch_size)
    return FitReport(out, len(read), len(chosen.good_scores), streamer.errors, cal, time.perf_counter() - t0,
                     _peak_rss_mb(), shrinkage, choice, est, _runtime(be), inference,
                     mode == "aligned" and registration is not None, specs[mode].describe(),
                     looked.describe() if looked is not None else "", registration_note if mode == "aligned" else "")


def update_inspector(inspector_dir: str | Path, good: list[Path], backend: str = DEFAULT_BACKEND,
                     device: str | None = None, threads: int | None = None,
                     progress: Progress | None = None, precision: str | None = None,
                     inference_precision: str | None = None) -> FitReport:
    """Add good images to an existing inspector without revisiting the old ones.

    The new images are first scored with the current statistics (they are unseen, like held-out
    images), their scores join the good-score distribution, and the threshold is recomputed for the
    same target false-reject rate. The model (aligned or texture) stays the one `fit` chose.

    The statistics change, so a reduced inference precision fit approved is measured again against
    fp32 (precision.py) on the new images and the old ones still on disk, on this runtime:
    ``inference_precision`` None re-measures what fit was asked for (falling back to fp32, and
    saying so, if it no longer agrees); a named one is refused as in fit.
    """
    t0 = time.perf_counter()
    root = Path(inspector_dir)
    insp = Inspector.load(root, backend, device, precision, threads, inference_precision="fp32")  # fp32 stats
    if insp.warnings:
        raise BundleError(insp.warnings[0], hint="update with the precision the inspector was fitted with")
    files = insp.manifest.get("files", {})
    if "moments.npz" not in files:
        raise BundleError(f"{root} has no moments.npz, so it cannot be updated", hint="refit it with all images")
    acc = _read_moments(root, files["moments.npz"], insp.stats, insp.mode)
    p = insp.manifest["padim"]
    details = insp.calibration.details
    opts = FitOptions(d=len(insp.stats.channel_idx), seed=p["seed"], eps=p["eps"], shrinkage=p["shrinkage"],
                      tiling=insp.tiling, roi=insp.roi, mode=insp.mode, aggregate=insp.spec.aggregate,
                      centre=insp.spec.centre,
                      target_frr=float(details.get("target_frr", FitOptions.target_frr)),
                      blur_sigma=insp.post.blur_sigma, open_radius=insp.post.open_radius,
                      batch_size=p.get("batch_size", 8), register="auto" if insp.registration is not None else "off")
    streamer = _Streamer(insp.backend, insp.bundle, {insp.mode: insp.spec}, opts.batch_size, progress, insp.tiling,
                         insp.registration)
    n_old = acc.n
    buf = acc if insp.mode == "texture" else _Accumulator(acc)  # pooled sums are small: added per batch
    scores, p999 = [], []
    looks: list[tuple[float, float]] = []
    for _, imgs, embs in streamer.run(list(good)):
        looks += [capture.measure(im) for im in imgs]
        emb = embs[insp.mode]
        g = streamer.to_image_frame(insp.tiling.stitch(distance_maps(emb, insp.stats, insp.mode, insp.sample_grid)),
                                    embs.warps)
        for img, gm in zip(imgs, g):
            inside = opts.roi.inside(img.shape[:2]) if opts.roi is not None else None
            amap = full_res_map(gm, img.shape[:2], opts.blur_sigma, inside)
            scores.append(image_score(amap))
            p999.append(float(np.quantile(amap if inside is None else amap[inside], 0.999)))
        buf.add(emb)
    if insp.mode == "aligned":
        buf.flush()
    if not scores:
        raise DataError("none of the new good images could be read:\n  " + "\n  ".join(streamer.errors[:5]))
    total = acc
    stats = _stats_for(insp.mode, total, insp.stats.channel_idx, insp.stats.grid, opts)
    if insp.mode == "aligned":  # the held-out spread per position is the first fit's (not re-measured)
        stats = dataclasses.replace(stats, position_scale=insp.stats.position_scale)
    old = details.get("good_scores", {}).get("values", [])
    old_px = details.get("good_pixel_q99.9", {}).get("max", 0.0)
    est = None
    if insp.calibration.method not in GOOD_ONLY_METHODS:
        # a labelled threshold stays as the user set it; only the statistics change
        cal = insp.calibration
    else:
        extra = {k: details[k] for k in ("model_choice",) if k in details}
        cal, est = _calibration(list(old) + scores, [old_px] + p999, opts.target_frr, n_old,
                                {**extra, "updates": 1 + int(details.get("updates", 0))}, opts.seed)
    history = list(insp.manifest.get("good_images", [])) + [str(x) for x in good]
    choice = ModelChoice(insp.mode, p.get("choice", {}).get("reason", "kept from the first fit"))
    n_images = int(p.get("n_images", 0)) + len(scores)
    looked = insp.capture.widened(looks) if insp.capture is not None else None  # the new images widen it
    # the backbone is copied out of the old directory before the new one is renamed over it
    _write_inspector(root, root / "backbone", stats, total, cal, opts, history, streamer.errors,
                     insp.backend.variant, insp.mode, choice, n_images, insp.spec, insp.registration, looked,
                     p.get("registration_note", ""))
    asked = inference_precision or asked_at_fit(insp.manifest)
    inference = choose_inference_precision(root, _parity_images(list(good), history), asked, backend, device,
                                           threads, opts.batch_size, refuse=inference_precision is not None)
    return FitReport(root, len(scores), 0, streamer.errors, cal, time.perf_counter() - t0, _peak_rss_mb(),
                     stats.shrinkage, choice, est, _runtime(insp.backend), inference, insp.registration is not None,
                     insp.spec.describe(), looked.describe() if looked is not None else "",
                     p.get("registration_note", ""))


def _parity_images(new: list[Path], history: list[str], n: int = PARITY_IMAGES) -> list[Path]:
    """Images for an update's precision check: the new good images first, then earlier ones still on disk."""
    out = list(new[:n])
    for p in reversed(history):
        if len(out) >= n:
            break
        q = Path(p)
        if q not in out and q.is_file():
            out.append(q)
    return out


def _read_moments(root: Path, sha256: str, stats: GaussianStats, mode: str = "aligned"):
    """moments.npz, read once: hashed from those bytes (as the manifest records) and checked against the
    statistics' positions and channels before anything is added to it."""
    try:
        data = (root / "moments.npz").read_bytes()
    except OSError as e:
        raise BundleError(f"{root}/moments.npz: cannot read: {e.strerror or e}") from None
    verify_files(root, {"moments.npz": sha256}, what="inspector", contents={"moments.npz": data})
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            acc = position_free.PooledMoments.from_arrays(z) if mode == "texture" else Moments.from_arrays(z)
    except (ValueError, OSError) as e:
        raise BundleError(f"{root}/moments.npz: not a valid moments file ({e})") from None
    want = (stats.grid[0] * stats.grid[1], stats.d)
    if acc.s1.shape != want:
        raise BundleError(f"{root}/moments.npz holds {acc.s1.shape[0]} positions x {acc.s1.shape[1]} channels but "
                          f"stats.npz has {want[0]} x {want[1]}", hint="refit the inspector with all its images")
    return acc


def _write_inspector(out: Path, backbone_dir: Path, stats: GaussianStats, moments: Moments, cal: Calibration,
                     opts: FitOptions, images: list[str], errors: list[str], variant: str, mode: str,
                     choice: ModelChoice, n_images: int, spec: EmbeddingSpec,
                     registration: Registration | None = None, looked: capture.CaptureRange | None = None,
                     registration_note: str = "") -> None:
    padim = {"d": stats.d, "seed": opts.seed, "eps": stats.eps, "shrinkage": opts.shrinkage,
             "shrinkage_applied": stats.shrinkage, "shrink_mean": stats.shrink_mean,
             "grid": list(stats.grid), "tiling": opts.tiling.to_dict(),
             "mode": mode, "aggregate": spec.aggregate, "centre": spec.centre,
             "choice": {"mode": choice.mode, "reason": choice.reason, "asked": opts.mode},
             "registration": registration.to_dict() if registration is not None else None,
             "registration_note": registration_note,
             "capture": looked.to_dict() if looked is not None else None,
             "n_images": n_images, "n_samples": stats.n,
             "blur_sigma": opts.blur_sigma,
             "open_radius": opts.open_radius, "batch_size": opts.batch_size}

    def roi_file(tmp: Path) -> None:
        if registration is not None:
            registration.save(tmp)
        if opts.roi is not None:
            shape = None if opts.roi.mask is not None else opts.tiling.image or _first_size([Path(p) for p in images])
            opts.roi.save(tmp / ROI_FILE, shape)

    write_inspector(out, backbone_dir, stats, moments, cal, padim=padim, variant=variant, images=images,
                    errors=errors, extra_files=roi_file)


def _runtime(be) -> str:
    return f"{be.describe()}, {be.variant} ({be.reason})"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
