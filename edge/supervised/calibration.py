"""The thresholds of a supervised bundle: the ``calibration`` block of its manifest (one owner).

The trainer (``edge-export train``) writes it, ``edge-inspect calibrate --model`` rewrites it::

    "calibration": {"method": "validation-f1", "ng_threshold": 0.42, "mask_threshold": 0.5,
                    "min_area": {"defect": 64}, "validation": {...}, "previous": {...}}

* ``ng_threshold``: P(NG) at or above it is NG (classifier and multitask). Default 0.5.
* ``mask_threshold``: a pixel belongs to a defect class at or above this probability. Default 0.5.
* ``min_area``: per defect class, the smallest area (pixels at the bundle's input size) that makes
  a segmenter call the part NG. Default: 0.1% of the input image, for every class.
* ``decide_by``: the rule that decides OK/NG (:data:`DECIDE_BY`; :data:`RULES` says which rules
  each kind has, the first being its default when the block names none):

  - ``"class"``: the class head's P(NG) ≥ ``ng_threshold`` (classifier, multitask);
  - ``"area"``: any defect class covers at least its ``min_area`` at ``mask_threshold``
    (segmenter, multitask);
  - ``"peak"``: any defect class's largest pixel probability ≥ ``peak_threshold`` (segmenter,
    multitask), which is the area rule with a min area of one pixel at a threshold of its own.

  The trainer picks the rule that ranks its validation images best (their image AUROCs are in
  ``validation``): a class head on pooled features can miss defects its own mask head finds, and
  the peak of a mask can rank parts better than its area, which is 0 for every part whose mask
  stays empty (measured on a real-photo part, docs in README "Supervised models").
* ``peak_threshold``: see ``"peak"``; default: ``mask_threshold`` (one pixel in the mask).

A bundle without the block runs on these defaults, and ``info`` says so. The manifest's ``files``
hashes do not cover manifest.json itself, so rewriting the block keeps the bundle valid; it is
written to a temporary file and renamed, so a power cut leaves the old block or the new one.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from typing import Any

from ..bundle import MANIFEST, Bundle, read_manifest, write_json
from ..errors import BundleError

DEFAULT_NG_THRESHOLD = 0.5
DEFAULT_MASK_THRESHOLD = 0.5
DEFAULT_MIN_AREA_SHARE = 0.001  # of the bundle's input image
DECIDE_BY = {"class": "the class head", "area": "the mask areas",
             "peak": "the mask's peak probability"}  # the rules that decide OK/NG, in words
RULES = {"classifier": ("class",), "segmenter": ("area", "peak"),
         "multitask": ("class", "area", "peak")}  # each kind's rules; the first is its default
AUROC_KEYS = {"class": "image_auroc_class_head", "area": "image_auroc_mask_area",
              "peak": "image_auroc_mask_peak"}  # where `validation` keeps each rule's image AUROC


def default_min_area(bundle: Bundle) -> int:
    return max(1, math.ceil(DEFAULT_MIN_AREA_SHARE * bundle.input.height * bundle.input.width))


@dataclass(frozen=True)
class SupervisedCalibration:
    ng_threshold: float = DEFAULT_NG_THRESHOLD
    mask_threshold: float = DEFAULT_MASK_THRESHOLD
    min_area: dict[str, int] = field(default_factory=dict)  # defect class → pixels at the input size
    method: str = "default"
    validation: dict[str, Any] = field(default_factory=dict)
    previous: dict[str, Any] = field(default_factory=dict)
    decide_by: str | None = None  # DECIDE_BY; None: the kind's default (RULES[kind][0])
    peak_threshold: float | None = None  # the "peak" rule's; None: mask_threshold

    def __post_init__(self):
        if self.decide_by is not None and self.decide_by not in DECIDE_BY:
            raise BundleError(f"calibration decide_by {self.decide_by!r} is unknown: this edge-inspect knows "
                              f"{', '.join(DECIDE_BY)}", hint="the bundle may be newer than this edge-inspect; "
                              "upgrade edge-inspect or re-export the bundle")
        for name, v in (("ng_threshold", self.ng_threshold), ("mask_threshold", self.mask_threshold),
                        ("peak_threshold", self.peak_level)):
            if not (math.isfinite(v) and 0 < v <= 1):
                raise BundleError(f"calibration {name} {v} must be a probability in (0, 1]",
                                  hint="recalibrate: edge-inspect calibrate CATEGORY --model BUNDLE")
        for k, v in self.min_area.items():
            if not (isinstance(v, int) and v >= 1):
                raise BundleError(f"calibration min_area[{k!r}] = {v!r} must be a whole number of pixels ≥ 1")

    @property
    def is_default(self) -> bool:
        return self.method == "default"

    @property
    def peak_level(self) -> float:
        """The peak rule's threshold: a class's largest pixel probability at or above it is NG."""
        return self.mask_threshold if self.peak_threshold is None else self.peak_threshold

    def rule(self, kind: str) -> str:
        """What decides a model of this kind: the calibration's ``decide_by``, else the kind's default."""
        return self.decide_by or RULES[kind][0]

    def to_dict(self) -> dict[str, Any]:
        out = {"method": self.method, "ng_threshold": self.ng_threshold, "mask_threshold": self.mask_threshold,
               "min_area": dict(self.min_area)}
        if self.decide_by is not None:
            out["decide_by"] = self.decide_by
        if self.peak_threshold is not None:
            out["peak_threshold"] = self.peak_threshold
        if self.validation:
            out["validation"] = self.validation
        if self.previous:
            out["previous"] = self.previous
        return out


def read_calibration(bundle: Bundle, defect_classes: list[str]) -> SupervisedCalibration:
    """The bundle's calibration, defaults filled in (a class missing from ``min_area`` gets the default)."""
    block = bundle.manifest.get("calibration")
    where = f"{bundle.root / MANIFEST}: calibration"
    if block is None:
        return SupervisedCalibration(min_area={c: default_min_area(bundle) for c in defect_classes})
    if not isinstance(block, dict):
        raise BundleError(f"{where} must be a JSON object, not {type(block).__name__}")
    try:
        areas = {str(k): int(v) for k, v in (block.get("min_area") or {}).items()}
        if any(float(v) != int(v) for v in (block.get("min_area") or {}).values()):
            raise ValueError("min_area values must be whole pixels")
        unknown = sorted(set(areas) - set(defect_classes))
        if unknown and defect_classes:
            raise BundleError(f"{where}: min_area names {', '.join(unknown)}, which are not defect classes of "
                              f"this model ({', '.join(defect_classes)})",
                              hint="recalibrate: edge-inspect calibrate CATEGORY --model BUNDLE")
        return SupervisedCalibration(
            ng_threshold=float(block.get("ng_threshold", DEFAULT_NG_THRESHOLD)),
            mask_threshold=float(block.get("mask_threshold", DEFAULT_MASK_THRESHOLD)),
            min_area={c: areas.get(c, default_min_area(bundle)) for c in defect_classes},
            method=str(block.get("method", "unknown")), validation=dict(block.get("validation") or {}),
            previous=dict(block.get("previous") or {}),
            decide_by=None if block.get("decide_by") is None else str(block["decide_by"]),
            peak_threshold=None if block.get("peak_threshold") is None else float(block["peak_threshold"]))
    except (TypeError, ValueError, AttributeError) as e:
        raise BundleError(f"{where} is malformed ({e})",
                          hint="recalibrate: edge-inspect calibrate CATEGORY --model BUNDLE") from None


def write_calibration(bundle_root, new: SupervisedCalibration, previous: SupervisedCalibration) -> dict:
    """Replace the manifest's calibration block (atomically), keeping the values it replaces
    (``previous``: what the stage ran with, defaults included) under ``previous``."""
    m = read_manifest(bundle_root)
    block = new.to_dict()
    block["previous"] = {k: v for k, v in previous.to_dict().items() if k not in ("previous", "validation")}
    block["created"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    m["calibration"] = block
    write_json(bundle_root / MANIFEST, m)
    return block
