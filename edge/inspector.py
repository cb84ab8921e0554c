"""The PaDiM inspector: a backbone bundle + PaDiM statistics + calibration, as a model stage.

The directory's layout, manifest and calibration file are owned by :mod:`edge.inspector_dir`;
this module loads one (verifying every file) and scores images with it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backends import DEFAULT_BACKEND, Backend, open_backend
from .bundle import MANIFEST, Bundle, load_bundle, recover_dir, verify_files
from .errors import BackendError, BundleError
from .padim import kernel
from .padim.embed import CENTRE, EmbeddingSpec, Scratch, embed
from .padim.score import MODES, anomaly_mask, distance_maps, full_res_map, image_score
from .padim.stats import GaussianStats
from .padim.tiling import Tiling
from .capture import CaptureRange
from .registration import REGISTRATION_FILE, Registration, WarpMemo
from .roi import ROI_FILE, Roi
from .inspector_dir import (INSPECTOR_SCHEMA, INSPECTOR_VERSION, READABLE_VERSIONS, Calibration, inspector_id,
                            read_inspector_manifest)
from .stage import Inspection, decide, run_stage

__all__ = ["Calibration", "Inspection", "Inspector", "PostProcess", "inspector_id",
           "INSPECTOR_SCHEMA", "INSPECTOR_VERSION", "READABLE_VERSIONS"]

@dataclass(frozen=True)
class PostProcess:
    blur_sigma: float = 4.0
    open_radius: int = 4


class Inspector:
    """Loads an inspector directory and scores images with it: the PaDiM :class:`~edge.stage.ModelStage`."""

    kind = "padim"

    def __init__(self, root: Path, bundle: Bundle, stats: GaussianStats, calibration: Calibration,
                 post: PostProcess, manifest: dict, backend: Backend | None = None, factor_precision: str = "auto",
                 threads: int | None = None):
        self.root = root
        self.bundle = bundle
        self.stats = stats
        self.calibration = calibration
        self.post = post
        self.manifest = manifest
        self.tiling = Tiling.from_dict(manifest.get("padim", {}).get("tiling"))
        s0 = min(tap.stride for tap in bundle.taps)
        p = manifest.get("padim", {})
        self.mode = p.get("mode", "aligned")  # inspectors fitted before texture mode are aligned
        if self.mode not in MODES:
            raise BundleError(f"{root}: unknown PaDiM mode {self.mode!r} (known: {', '.join(MODES)})",
                              hint="this inspector is newer than this edge-inspect; upgrade it")
        centre = p.get("centre", "none")  # inspectors fitted before centring use absolute features
        if centre not in CENTRE:
            raise BundleError(f"{root}: unknown feature centring {centre!r} (known: {', '.join(CENTRE)})",
                              hint="this inspector is newer than this edge-inspect; upgrade it")
        self.spec = EmbeddingSpec(bundle.taps, stats.channel_idx,
                                  (-(-bundle.input.height // s0), -(-bundle.input.width // s0)),
                                  int(p.get("aggregate", 1)), centre)
        self.sample_grid = self.tiling.stats_grid(self.spec.grid)  # the grid of what one sample's map covers
        if self.sample_grid != tuple(stats.grid):
            raise BundleError(f"{root}: statistics grid {stats.grid} does not fit the backbone's "
                              f"{self.spec.grid} grid with {self.tiling.describe()}")
        self.backend = backend
        self.factor_precision = kernel.resolve_precision(factor_precision)  # refuses unknown names early
        self.threads = threads
        self.warnings: list[str] = []
        self.roi: Roi | None = Roi.load(root / ROI_FILE) if ROI_FILE in manifest.get("files", {}) else None
        self._scratch = Scratch()  # the embedding of one batch, reused by the next from the same thread
        self.registration: Registration | None = None  # aligned parts registered to a reference view
        if p.get("registration"):
            if REGISTRATION_FILE not in manifest.get("files", {}):
                raise BundleError(f"{root}: the manifest asks for registration but records no {REGISTRATION_FILE}",
                                  hint="copy the whole inspector directory again, or refit it")
            self.registration = Registration.load(root, (bundle.input.height, bundle.input.width),
                                                  p["registration"])
        self._warps = WarpMemo()
        self.capture: CaptureRange | None = None  # inspectors fitted before the capture check have none
        if p.get("capture") is not None:
            try:
                self.capture = CaptureRange.from_dict(p["capture"])
            except ValueError as e:
                raise BundleError(f"{root}: padim.capture: {e}",
                                  hint="the manifest was edited or damaged; copy the inspector again, or refit it")

    @property
    def id(self) -> str:
        return self.manifest.get("id", "?")

    @property
    def threshold(self) -> float:
        return self.calibration.image_threshold

    def describe(self) -> dict:
        """What this inspector is, read from its manifest and calibration (for `info`, logs, reports)."""
        m, cal = self.manifest, self.calibration
        p, b = m.get("padim", {}), m.get("backbone", {})
        return {"kind": self.kind, "id": self.id, "path": str(self.root), "backbone": self.bundle.name,
                "input": b.get("input"), "fitted_with": b.get("fitted_with"),
                "d": self.stats.d, "grid": list(self.stats.grid), "n_images": p.get("n_images"),
                "mode": p.get("mode", "aligned"), "choice": (p.get("choice") or {}).get("reason"),
                "aggregate": p.get("aggregate"), "centre": p.get("centre", "none"), "features": self.spec.describe(),
                "tiling": self.tiling.to_dict(), "tiles": self.tiling.describe(),
                "registration": ("rigid (turn + shift) onto the reference view registration.png"
                                 if self.registration is not None else
                                 f"none ({p['registration_note']})" if p.get("registration_note") else "none"),
                "position_scale": self._position_scale_text(),
                "capture": (self.capture.describe() if self.capture is not None
                            else "none (fitted without it, or with --capture-tolerance off)"),
                "shrinkage": p.get("shrinkage_applied"), "eps": p.get("eps"),
                "threshold": {"image": cal.image_threshold, "pixel": cal.pixel_threshold, "method": cal.method},
                "threshold_method": cal.method, "target_frr": cal.details.get("target_frr"),
                "quantile": cal.details.get("quantile"), "margin": cal.details.get("margin"),
                "inference": (m.get("inference") or {}).get("note"),
                "backend": getattr(self.backend, "name", None), "variant": getattr(self.backend, "variant", None)}

    def _position_scale_text(self) -> str:
        s = self.stats.position_scale
        if s is None:
            return "none"
        what = ("each position's spread" if self.mode == "texture"
                else "how far held-out good images strayed at each position")
        return f"maps divided by {what} ({float(s.min()):.2f}..{float(s.max()):.2f})"

    @classmethod
    def load(cls, root: str | Path, backend: str = DEFAULT_BACKEND, device: str | None = None,
             precision: str | None = None, threads: int | None = None, verify: bool = True,
             open_runtime: bool = True, factor_precision: str = "auto",
             inference_precision: str | dict = "auto") -> "Inspector":
        """Open an inspector directory (verifying every file's hash) and, with ``open_runtime``, its
        backbone on ``backend``/``device``. ``precision`` picks the model variant (default: the one
        the statistics were fitted on); ``factor_precision`` (auto | fp16 | fp32) how the native
        Mahalanobis kernel stores the factors in memory; ``inference_precision`` (auto | fp32 | bf16 |
        fp16) the runtime's arithmetic: auto runs what `fit`'s parity check approved for the runtime
        that opens (edge/precision.py), fp32 otherwise; a named one that was not approved is refused."""
        root = Path(root)
        if not root.exists():
            recover_dir(root)  # a refit killed between its two renames (where no atomic swap exists)
        if not root.exists():
            raise BundleError(f"inspector directory {root} does not exist",
                              hint="fit one first: edge-inspect fit --good DIR --out " + str(root))
        m = read_inspector_manifest(root)
        files = m["files"]
        # stats.npz is the largest file: read it once, hash those bytes and load them (no second read)
        stats_path = root / "stats.npz"
        contents = {"stats.npz": stats_path.read_bytes()} if stats_path.is_file() else {}
        if verify:
            # the moments are only read by `fit --update`, which verifies them itself
            verify_files(root, {k: v for k, v in files.items() if k != "moments.npz"}, what="inspector",
                         contents=contents)
        bundle = load_bundle(root / "backbone", verify=False)  # its files are in the inspector's table
        _check_recorded(root, files, bundle)
        _check_backbone_matches(root, m, bundle)
        stats = GaussianStats.load(io.BytesIO(contents["stats.npz"]) if contents else stats_path)
        cal = Calibration.read(root)
        p = m.get("padim", {})
        post = PostProcess(float(p.get("blur_sigma", 4.0)), int(p.get("open_radius", 4)))
        expect_grid = tuple(p.get("grid", stats.grid))
        if tuple(stats.grid) != expect_grid:
            raise BundleError(f"{root}: stats grid {stats.grid} differs from the manifest's {expect_grid}")
        if sum(t.channels for t in bundle.taps) <= int(stats.channel_idx.max()):
            raise BundleError(f"{root}: statistics index channels the backbone does not have")
        # score with the model variant the statistics were fitted on, unless told otherwise
        fitted = m.get("backbone", {}).get("fitted_with")  # "format/precision"; absent before 0.1
        if precision is None and fitted:
            precision = fitted.split("/")[-1]
        compute = _compute_plan(root, m, inference_precision)
        be = open_backend(bundle, backend, device, precision, threads, compute=compute) if open_runtime else None
        if be is not None and isinstance(inference_precision, str) and inference_precision not in ("auto", "fp32") \
                and be.compute != inference_precision:
            raise BackendError(f"{root}: {inference_precision} was approved for {', '.join(compute)}, but "
                               f"{be.describe()} opened", hint="pass the --backend/--device it was measured on")
        if be is not None:
            _check_taps_are_outputs(bundle, be)
        insp = cls(root, bundle, stats, cal, post, m, be, factor_precision, threads)
        if open_runtime and insp.mode == "aligned":
            stats.scorer(insp.factor_precision)  # build the scoring layout now, not on the first image
        if factor_precision == "fp16" and kernel.library() is None:
            insp.warnings.append(f"fp16 factors need the native kernel, which is {kernel.status()}; "
                                 "scoring uses numpy fp32 (same scores, slower)")
        if be is not None and fitted and be.variant.split("/")[-1] != fitted.split("/")[-1]:
            insp.warnings.append(f"the statistics were fitted on {fitted} features but {be.variant} runs now: "
                                 "scores and thresholds may be off; refit with the same --precision")
        return insp

    # --- scoring ------------------------------------------------------------------------
    def screen(self, img_bgr: np.ndarray) -> None:
        """The one screening step per image, before the model runs: refuse (ImageError, its record an
        ERROR) an image whose shape is far from the view the statistics were fitted on (a squashed view
        is refused as such), then one lit unlike the good images (capture.py)."""
        self.tiling.check_image(img_bgr.shape[:2], self.bundle.input)
        if self.capture is not None:
            self.capture.check(img_bgr)

    def tensors(self, images: list[np.ndarray], screen: bool = True) -> np.ndarray:
        """Images → the backbone's input batch (one row per tile; one tile per image unless tiled);
        registered to the reference view first when the inspector registers (registration.py). Each
        image is screened first (:meth:`screen`); ``screen=False`` is for a probe the runtime makes
        itself (a warm-up frame, a shared-pass check): its shape is still checked, its lighting not."""
        if screen:
            for im in images:
                self.screen(im)
        reg = self.registration
        if reg is not None:
            moved = []
            for im in images:
                view, w = reg.register(im)
                self._warps.put(im, w)  # for results() of the same image
                moved.append(view)
            images = moved
        return self.tiling.batch(images, self.bundle.input, checked=screen)

    def grid_from_features(self, features: dict[str, np.ndarray], images: list[np.ndarray]) -> np.ndarray:
        """Backbone outputs of a batch of ``images`` → one Mahalanobis grid map per image (B, GH, GW),
        tiles stitched, over each image's own frame. The line runtime's score stage and :meth:`inspect`
        both go through here."""
        emb = self.tiling.samples(embed(features, self.spec, self._scratch), self.spec.grid)
        grids = self.tiling.stitch(distance_maps(emb, self.stats, self.mode, self.sample_grid,
                                                 self.factor_precision, self.threads))
        reg = self.registration
        if reg is None:
            return grids
        return np.stack([reg.map_to_image(g, self._warps.take(im, reg)) for g, im in zip(grids, images)])

    def grid_maps(self, images: list[np.ndarray]) -> np.ndarray:
        return self.grid_from_features(self.backend.infer({self.backend.input_name: self.tensors(images)}), images)

    def results(self, outputs: dict[str, np.ndarray], images: list[np.ndarray]) -> list[Inspection]:
        """Backbone outputs of a batch → one :class:`Inspection` per image (the ModelStage step)."""
        return [self.decide(g, im.shape[:2]) for g, im in zip(self.grid_from_features(outputs, images), images)]

    def inspect(self, images: list[np.ndarray]) -> list[Inspection]:
        """Score a batch of BGR images; one :class:`Inspection` per image, with timings."""
        return run_stage(self, images)

    def decide(self, grid_map: np.ndarray, shape: tuple[int, int]) -> Inspection:
        """One image's grid map → full-size map, score, decision and mask (no timings).

        The line runtime's pipeline calls this too, so both paths decide alike.
        """
        amap = full_res_map(grid_map, shape, self.post.blur_sigma,
                            self.roi.inside(shape) if self.roi is not None else None)
        raw = image_score(amap)
        score = raw / self.calibration.image_threshold
        verdict = decide(score)
        mask = anomaly_mask(amap, self.calibration.pixel_threshold, self.post.open_radius, keep_peak=verdict == "NG")
        return Inspection(raw, score, verdict, amap, mask)


def _check_recorded(root: Path, files: dict, bundle: Bundle) -> None:
    """Every file the inspector reads must have a hash in its manifest (else it was never verified)."""
    needed = ["stats.npz", "calibration.json", f"backbone/{MANIFEST}"]
    needed += [f"backbone/{f}" for mf in bundle.models for f in mf.files()]
    missing = [f for f in needed if f not in files]
    if missing:
        raise BundleError(f"{root / MANIFEST}: no recorded hash for {', '.join(missing)}; refusing files that "
                          "cannot be verified", hint="copy the whole inspector directory again, or refit it")


def _check_backbone_matches(root: Path, m: dict, bundle: Bundle) -> None:
    """The statistics were fitted on one backbone at one input size; refuse another, saying what differs."""
    rec = m.get("backbone") or {}
    diffs = []
    if rec.get("id") not in (None, bundle.id):
        diffs.append(f"backbone id {bundle.id} ({bundle.name}) but the statistics were fitted with "
                     f"{rec.get('id')} ({rec.get('name', '?')})")
    want_in = rec.get("input")
    have_in = [bundle.input.height, bundle.input.width]
    if want_in is not None and list(want_in) != have_in:
        diffs.append(f"backbone input {have_in[0]}x{have_in[1]} but the statistics were fitted at "
                     f"{want_in[0]}x{want_in[1]}")
    if diffs:
        raise BundleError(f"{root}: the backbone does not match the statistics: " + "; ".join(diffs),
                          hint="an inspector's backbone/ must be the one it was fitted with; refit with "
                               "`edge-inspect fit --backbone BUNDLE`")


def _check_taps_are_outputs(bundle: Bundle, be: Backend) -> None:
    missing = [t.name for t in bundle.taps if t.name not in be.output_names]
    if missing:
        raise BundleError(f"{bundle.root}: the manifest's taps {', '.join(missing)} are not outputs of its model "
                          f"(the model has: {', '.join(be.output_names)})",
                          hint="the manifest and the model file come from different exports; re-export the bundle")


def _compute_plan(root: Path, m: dict, asked: str | dict) -> str | dict:
    """What `open_backend` gets as ``compute`` for this inspector."""
    from .precision import approved

    if isinstance(asked, dict) or asked == "fp32":
        return asked
    ok = approved(m)
    if asked == "auto":
        return ok
    mine = {k: v for k, v in ok.items() if v == asked}
    if not mine:
        note = (m.get("inference") or {}).get("note", "fit measured no reduced precision")
        raise BackendError(f"{root}: {asked} inference was not approved for this inspector ({note})",
                           hint="score with --inference-precision auto or fp32, or refit with "
                                f"--inference-precision {asked} on the runtime that has it")
    return mine
