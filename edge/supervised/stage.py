"""Classifier, segmenter and multitask bundles as :class:`edge.stage.ModelStage` s.

What each kind concludes about one image (maps at the input image's size):

* **classifier**: ``raw_score`` = P(NG) = 1 − P(ok class); threshold ``ng_threshold``.
  ``classes`` = every label's probability; ``label`` = the OK label when OK, else the most
  probable defect label. No maps.
* **segmenter**: per defect class a mask (``class_masks``) and its area (``areas``, pixels of the
  input image); ``anomaly_map`` = the largest defect-class probability per pixel, ``mask`` = the
  union. NG when any class covers at least its ``min_area`` (given at the bundle's input size and
  scaled to the image). ``score`` = max over classes of area / min area, so 1.0 is the threshold;
  ``raw_score`` is that times the smallest min area (the stage's ``threshold``): with one min area
  for every class (the usual case) it is simply the largest class area, in pixels at the bundle's
  input size (``areas`` are in pixels of the image itself).
  ``classes`` = each class's peak probability; ``label`` = the class that made it NG.
  With ``decide_by: "peak"`` (the trainer's choice when the peaks ranked its validation images
  better than the areas): NG when any class's peak probability reaches ``peak_threshold``;
  ``score`` = the largest peak / that threshold, ``raw_score`` = the largest peak. The masks and
  areas are the same either way (``mask_threshold``).
* **multitask**: the classifier's scores and the segmenter's masks and areas. The class head
  decides (the mask says where), unless the calibration says ``decide_by: "area"`` or ``"peak"``
  (the trainer's choice when that rule ranked its validation images better): then it decides as a
  segmenter does, and ``classes`` still holds the class head's probabilities.

Which rules a kind has, and their words, are owned by :mod:`.calibration` (``RULES``, ``DECIDE_BY``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from ..backends import Backend
from ..bundle import Bundle, OutputSpec
from ..errors import BundleError
from ..preprocess import batch_tensor
from ..stage import Inspection, decide
from .calibration import RULES, SupervisedCalibration
from .heads import check_class_head, class_masks, class_probabilities, defect_channels, mask_probabilities, p_ng


def _head(bundle: Bundle, role: str) -> OutputSpec | None:
    heads = [o for o in bundle.outputs if o.role == role]
    if len(heads) > 1:
        raise BundleError(f"{bundle.root}: {len(heads)} {role} outputs; this edge-inspect runs one of each")
    return heads[0] if heads else None


class SupervisedStage:
    """One classifier, segmenter or multitask bundle, with its calibration, ready to decide."""

    def __init__(self, bundle: Bundle, calibration: SupervisedCalibration, backend: Backend | None = None):
        self.bundle = bundle
        self.kind = bundle.kind
        self.calibration = calibration
        self.backend = backend
        self.warnings: list[str] = []
        self.class_head = _head(bundle, "class")
        self.mask_head = _head(bundle, "mask")
        need = {"classifier": ("class",), "segmenter": ("mask",), "multitask": ("class", "mask")}[self.kind]
        for role in need:
            if (self.class_head if role == "class" else self.mask_head) is None:
                raise BundleError(f"{bundle.root}: a {self.kind} bundle needs a {role} output; the manifest "
                                  "lists none", hint="re-export the bundle with edge-export")
        if self.class_head is not None:
            check_class_head(self.class_head, str(bundle.root))
        if calibration.decide_by is not None and calibration.decide_by not in RULES[self.kind]:
            raise BundleError(f"{bundle.root}: calibration decide_by {calibration.decide_by!r} is not a rule of a "
                              f"{self.kind} (its rules: {', '.join(RULES[self.kind])})",
                              hint="remove decide_by from the manifest's calibration, or recalibrate")
        self.defect_classes = [n for _, n in defect_channels(self.mask_head)] if self.mask_head else []
        if calibration.is_default:
            self.warnings.append(f"{bundle.root} has no calibration block: using the defaults (P(NG) ≥ "
                                 f"{calibration.ng_threshold}"
                                 + (f", mask ≥ {calibration.mask_threshold}, min area {calibration.min_area}"
                                    if self.mask_head else "")
                                 + "); set them with `edge-inspect calibrate CATEGORY --model BUNDLE`")

    # --- identity -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The bundle's id, plus its thresholds once calibrated (new thresholds, new id)."""
        if self.calibration.is_default:
            return self.bundle.id
        c = self.calibration
        # ids of bundles calibrated before decide_by or peak_threshold existed stay as they were
        extra = [c.decide_by] if c.decide_by is not None else []
        extra += [c.peak_threshold] if c.peak_threshold is not None else []
        blob = json.dumps([self.bundle.id, c.ng_threshold, c.mask_threshold, c.min_area, *extra], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def rule(self) -> str:
        """What decides OK/NG: "class", "area" or "peak" (``calibration.DECIDE_BY``)."""
        return self.calibration.rule(self.kind)

    @property
    def decides_by_area(self) -> bool:
        return self.rule == "area"

    @property
    def decides_by_mask(self) -> bool:
        """The mask head decides (by area or peak), as a segmenter's does."""
        return self.rule in ("area", "peak")

    @property
    def threshold(self) -> float:
        """The raw score at which a part is NG: the smallest min area, the peak threshold or P(NG)'s."""
        if self.rule == "area":
            return float(min(self.calibration.min_area.values()))
        if self.rule == "peak":
            return self.calibration.peak_level
        return self.calibration.ng_threshold

    def rule_text(self) -> str:
        """The decision rule in words, thresholds included (`info`, cascades, reports)."""
        c = self.calibration
        if self.rule == "area":
            return "NG when a defect class covers its min area (px at the input size: " + ", ".join(
                f"{k} {v}" for k, v in c.min_area.items()) + f") at mask probability ≥ {c.mask_threshold:.3f}"
        if self.rule == "peak":
            return f"NG when a defect class's peak mask probability ≥ {c.peak_level:.3f}"
        return f"NG when P(NG) ≥ {c.ng_threshold:.3f}"

    @property
    def map_threshold(self) -> float:
        """The anomaly map's value at which a pixel counts as defective (overlays scale by it)."""
        return self.calibration.mask_threshold

    def describe(self) -> dict[str, Any]:
        c = self.calibration
        th: dict[str, Any] = {"method": c.method, "mask": c.mask_threshold, "decides_by": self.rule}
        if self.class_head is not None:
            th["ng"] = c.ng_threshold
        if self.mask_head is not None:
            th["min_area"] = dict(c.min_area)
            th["peak"] = c.peak_level
        return {"kind": self.kind, "id": self.id, "bundle_id": self.bundle.id, "path": str(self.bundle.root),
                "name": self.bundle.name, "input": [self.bundle.input.height, self.bundle.input.width],
                "labels": {o.name: o.label_map for o in self.bundle.outputs},
                "ok_class": None if self.class_head is None else self.class_head.label_map[self.class_head.ok_class],
                "defect_classes": self.defect_classes, "threshold": th,
                "backend": getattr(self.backend, "name", None), "variant": getattr(self.backend, "variant", None)}

    # --- the ModelStage steps ---------------------------------------------------------------
    def tensors(self, images: list[np.ndarray], screen: bool = True) -> np.ndarray:
        return batch_tensor(images, self.bundle.input)  # no screening beyond the shape check

    def _output(self, outputs: dict[str, np.ndarray], spec: OutputSpec) -> np.ndarray:
        if spec.name not in outputs:
            raise BundleError(f"the model gave no output {spec.name!r} (it gave {', '.join(outputs)})",
                              hint="the model and its manifest do not match; re-export the bundle")
        return outputs[spec.name]

    def results(self, outputs: dict[str, np.ndarray], images: list[np.ndarray]) -> list[Inspection]:
        probs = png = None
        if self.class_head is not None:
            probs = class_probabilities(self.class_head, self._output(outputs, self.class_head))
            png = p_ng(self.class_head, probs)
        masks = self._output(outputs, self.mask_head) if self.mask_head is not None else None
        out = []
        for i, img in enumerate(images):
            seg = self._segment(masks[i], img.shape[:2]) if masks is not None else None
            if not self.decides_by_mask:
                out.append(self._classify(probs[i], float(png[i]), seg))
            else:
                out.append(self._by_mask(seg, None if probs is None else self._class_probs(probs[i])))
        return out

    # --- per image --------------------------------------------------------------------------
    def _segment(self, logits: np.ndarray, shape: tuple[int, int]) -> dict[str, Any]:
        spec = self.mask_head
        p = mask_probabilities(spec, logits, shape)
        chans = [ch for ch, _ in defect_channels(spec)]
        amap = p[chans].max(axis=0) if chans else np.zeros(shape, np.float32)
        cm = class_masks(spec, p, self.calibration.mask_threshold)
        union = np.zeros(shape, bool)
        for m in cm.values():
            union |= m
        peaks = {n: float(p[ch].max()) for ch, n in defect_channels(spec)}
        return {"amap": amap, "union": union, "masks": cm, "areas": {n: int(m.sum()) for n, m in cm.items()},
                "peaks": peaks}

    def area_scale(self, shape: tuple[int, int]) -> float:
        """Image pixels per input pixel: min areas are given at the bundle's input size."""
        return (shape[0] * shape[1]) / (self.bundle.input.height * self.bundle.input.width)

    def _seg_fields(self, seg: dict[str, Any] | None) -> dict[str, Any]:
        if seg is None:
            return {"anomaly_map": None, "mask": None}
        return {"anomaly_map": seg["amap"], "mask": seg["union"].astype(np.uint8) * 255,
                "map_threshold": self.calibration.mask_threshold,
                "class_masks": {n: m.astype(np.uint8) * 255 for n, m in seg["masks"].items()},
                "areas": seg["areas"]}

    def _class_probs(self, probs: np.ndarray) -> dict[str, float]:
        return {n: float(p) for (_, n), p in zip(self.class_head.labels, probs)}

    def _classify(self, probs: np.ndarray, png: float, seg: dict[str, Any] | None) -> Inspection:
        head = self.class_head
        names = [n for _, n in head.labels]
        classes = self._class_probs(probs)
        score = png / self.calibration.ng_threshold
        verdict = decide(score)
        ok_name = head.label_map[head.ok_class]
        if verdict == "OK":
            label = ok_name
        else:
            label = max((n for n in names if n != ok_name), key=classes.get, default=ok_name)
        return Inspection(png, score, verdict, classes=classes, label=label, **self._seg_fields(seg))

    def _by_mask(self, seg: dict[str, Any], class_probs: dict[str, float] | None = None) -> Inspection:
        """The decision from the mask areas or peaks; ``classes`` = each mask class's peak probability,
        or the class head's probabilities (``class_probs``) for a multitask model deciding by its mask."""
        if self.rule == "peak":
            ratios = {n: p / self.calibration.peak_level for n, p in seg["peaks"].items()}
        else:
            scale = self.area_scale(seg["amap"].shape)
            ratios = {n: a / (self.calibration.min_area[n] * scale) for n, a in seg["areas"].items()}
        score = max(ratios.values(), default=0.0)
        verdict = decide(score)
        label = max(ratios, key=ratios.get) if verdict == "NG" else None
        return Inspection(score * self.threshold, score, verdict, classes=seg["peaks"] if class_probs is None
                          else class_probs, label=label, **self._seg_fields(seg))
