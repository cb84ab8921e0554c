"""The inspector directory on disk: its layout, its manifest and its calibration, in one place.

    inspector/
      manifest.json      schema, PaDiM parameters, backbone summary, SHA-256 of every file
      backbone/          copy of the backbone bundle (manifest.json, model.onnx, …)
      stats.npz          mean, precision factor, channel index, grid, n, eps
      moments.npz        float64 streaming sums, so `fit --update` can add images later
      calibration.json   image and pixel thresholds, method, good-score distribution, expected FRR
      roi.png            optional region of interest

This module is the only one that writes the directory or reads its manifest by key: `fit`
assembles a new one (:func:`write_inspector`), `calibrate` replaces the thresholds
(:func:`replace_calibration`), `fit`'s precision check records what it approved
(:func:`set_manifest_entry`), and :class:`~edge.inspector.Inspector` reads it
(:func:`read_inspector_manifest`). Every write goes to a temp name and is renamed into place,
so a power cut leaves either the old inspector or the new one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .bundle import MANIFEST, AtomicDir, hash_tree, load_bundle, read_manifest, sha256_file, write_json
from .errors import BundleError

INSPECTOR_SCHEMA = "edge-inspect/inspector"
INSPECTOR_VERSION = 2  # 2: stats.npz may hold the factor packed (factor_format)
READABLE_VERSIONS = (1, 2)
STATS, MOMENTS, CALIBRATION, BACKBONE = "stats.npz", "moments.npz", "calibration.json", "backbone"


@dataclass(frozen=True)
class Calibration:
    """calibration.json: the thresholds (raw units), how they were set, and what fit measured."""

    image_threshold: float
    pixel_threshold: float
    method: str
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not (np.isfinite(self.image_threshold) and self.image_threshold > 0):
            raise BundleError(f"image threshold {self.image_threshold} must be a positive number")
        if not (np.isfinite(self.pixel_threshold) and self.pixel_threshold > 0):
            raise BundleError(f"pixel threshold {self.pixel_threshold} must be a positive number")

    def to_dict(self) -> dict:
        return {"image_threshold": self.image_threshold, "pixel_threshold": self.pixel_threshold,
                "method": self.method, **self.details}

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        d = dict(d)
        try:
            return cls(float(d.pop("image_threshold")), float(d.pop("pixel_threshold")), str(d.pop("method")), d)
        except KeyError as e:
            raise BundleError(f"calibration.json lacks {e}") from None

    @classmethod
    def read(cls, root: Path) -> "Calibration":
        return cls.from_dict(json.loads((Path(root) / CALIBRATION).read_text()))

    def held_out_good_scores(self, normalised: bool = False) -> np.ndarray | None:
        """The scores fit recorded for its good images, each scored by statistics that never saw it
        (``good_scores.values``): how new good parts score on the line. Raw, or ``normalised`` as
        scores are (÷ the image threshold: 1.0 is the threshold). None with fewer than 3."""
        values = (self.details.get("good_scores") or {}).get("values") or []
        v = np.asarray([float(x) for x in values], float)
        v = v[np.isfinite(v)]
        if v.size < 3:
            return None
        return v / self.image_threshold if normalised else v


def inspector_id(files: dict[str, str]) -> str:
    """The inspector's id: a hash of every file's hash but the moments (which only `--update` reads)."""
    blob = json.dumps({k: v for k, v in files.items() if k != MOMENTS}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def read_inspector_manifest(root: Path) -> dict:
    """The manifest of an inspector directory, refused unless it is one this version can read."""
    m = read_manifest(root)
    if m.get("schema") != INSPECTOR_SCHEMA:
        raise BundleError(f"{root / MANIFEST}: not an inspector (schema={m.get('schema')!r})",
                          hint="a backbone bundle is not an inspector; run `edge-inspect fit` with it")
    if m.get("schema_version") not in READABLE_VERSIONS:
        raise BundleError(f"{root}: inspector schema_version {m.get('schema_version')} is not supported "
                          f"(reads {', '.join(map(str, READABLE_VERSIONS))})",
                          hint="refit with this version of edge-inspect")
    files = m.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError(f"{root / MANIFEST}: has no 'files' hash table; refusing an unverifiable inspector",
                          hint="refit it with this version of edge-inspect")
    problems = _shape_problems(m)
    if problems:
        raise BundleError(f"{root / MANIFEST}: malformed: " + "; ".join(problems),
                          hint="the manifest was edited or damaged; copy the inspector again, or refit it")
    return m


_NUM = (int, float)
# the manifest entries the runtime reads, and the JSON types they must have when present
_SHAPE = {
    "padim": (dict, {"d": int, "seed": int, "eps": _NUM, "grid": list, "tiling": dict, "mode": str,
                     "aggregate": int, "centre": str, "n_images": int, "n_samples": int, "blur_sigma": _NUM,
                     "open_radius": int, "batch_size": int, "choice": dict, "shrinkage": str,
                     "capture": dict}),
    "backbone": (dict, {"name": str, "id": str, "input": list, "fitted_with": str}),
    "thresholds": (dict, {"image": _NUM, "pixel": _NUM, "method": str}),
    "inference": (dict, {"approved": dict, "note": str, "asked": str}),
    "good_images": (list, {}),
}


def _shape_problems(m: dict) -> list[str]:
    out = []
    for key, (kind, fields) in _SHAPE.items():
        if key not in m:
            continue
        v = m[key]
        if not isinstance(v, kind):
            out.append(f"{key} is {'null' if v is None else 'a ' + type(v).__name__}, not a {kind.__name__}")
            continue
        for f, ftype in fields.items():
            x = v.get(f)
            if x is not None and (not isinstance(x, ftype) or isinstance(x, bool)):
                out.append(f"{key}.{f} is {x!r}")
    def section(name: str) -> dict:  # a section of the wrong type is reported above
        v = m.get(name)
        return v if isinstance(v, dict) else {}

    for key in ("grid",):
        g = section("padim").get(key)
        if isinstance(g, list) and (len(g) != 2 or not all(isinstance(v, int) and v > 0 for v in g)):
            out.append(f"padim.{key} is {g!r}, not two positive integers")
    inp = section("backbone").get("input")
    if isinstance(inp, list) and (len(inp) != 2 or not all(isinstance(v, int) and v > 0 for v in inp)):
        out.append(f"backbone.input is {inp!r}, not two positive integers")
    return out


def is_inspector(root: str | os.PathLike) -> bool:
    return read_manifest(root).get("schema") == INSPECTOR_SCHEMA


def write_inspector(out: Path, backbone_dir: Path, stats, moments, cal: Calibration, *, padim: dict,
                    variant: str, images: list[str], errors: list[str],
                    extra_files: Callable[[Path], None] | None = None) -> None:
    """Assemble a new inspector directory in a temp dir and rename it over ``out``.

    ``padim`` holds the fit's parameters (d, grid, mode, choice, tiling, …) as the manifest keeps
    them; ``extra_files`` writes optional files (the ROI) into the temp dir before it is hashed.
    """
    bundle = load_bundle(backbone_dir)
    with AtomicDir(out, overwrite=True) as tmp:
        shutil.copytree(backbone_dir, tmp / BACKBONE)
        stats.save(tmp / STATS)
        np.savez(tmp / MOMENTS, **moments.to_arrays())
        write_json(tmp / CALIBRATION, cal.to_dict())
        if extra_files is not None:
            extra_files(tmp)
        files = hash_tree(tmp)
        write_json(tmp / MANIFEST, {
            "schema": INSPECTOR_SCHEMA, "schema_version": INSPECTOR_VERSION,
            "id": inspector_id(files),
            "created": {"tool": f"edge-inspect {__version__}",
                        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
            "backbone": {"name": bundle.name, "id": bundle.id, "input": [bundle.input.height, bundle.input.width],
                         "weights": bundle.manifest.get("weights", {}).get("source"),
                         "fitted_with": variant},
            "padim": padim,
            "thresholds": _thresholds(cal),
            "good_images": images[-10000:],
            "skipped_images": errors,
            "files": files,
        })


def replace_calibration(root: Path, cal: Calibration) -> None:
    """Replace an inspector's calibration atomically.

    A new directory is assembled from hard links to the unchanged files (no copying of the
    statistics) plus the new calibration and manifest, then renamed over the old one.
    """
    root = Path(root)
    m = read_inspector_manifest(root)

    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    with AtomicDir(root, overwrite=True) as tmp:
        shutil.rmtree(tmp)
        shutil.copytree(root, tmp, copy_function=link,
                        ignore=lambda d, names: [n for n in names if Path(d) == root and n in (CALIBRATION, MANIFEST)])
        write_json(tmp / CALIBRATION, cal.to_dict())
        m["files"][CALIBRATION] = sha256_file(tmp / CALIBRATION)
        m["id"] = inspector_id(m["files"])
        m["thresholds"] = _thresholds(cal)
        write_json(tmp / MANIFEST, m)


def set_manifest_entry(root: Path, key: str, value: Any) -> None:
    """Record one top-level manifest entry that no file hash depends on (e.g. ``inference``)."""
    if key in ("schema", "schema_version", "id", "files"):
        raise ValueError(f"{key} is derived from the directory's files; it is not set by hand")
    m = read_inspector_manifest(Path(root))
    m[key] = value
    write_json(Path(root) / MANIFEST, m)  # temp file + fsync + rename


def _thresholds(cal: Calibration) -> dict:
    return {"image": cal.image_threshold, "pixel": cal.pixel_threshold, "method": cal.method}
