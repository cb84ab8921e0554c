"""Reduced-precision inference (bf16 / fp16 inside the runtime), used when and only when it agrees
with fp32 on the inspector's own held-out good images.

`fit` fits the statistics on fp32 features, then scores the held-out good images twice, in fp32
and in the reduced precision the runtime has (OpenVINO CPU: bf16 on CPUs with AVX512-BF16/AMX;
OpenVINO GPU and TensorRT: fp16), through the same inspector. It records the rank correlation of
the image scores, the share of identical decisions and the largest score change in the
inspector's manifest (``inference``). The precision passes when

  * rank correlation ≥ MIN_SPEARMAN, and
  * every decision agrees, and
  * no score moves by more than MAX_SCORE_SHIFT of the threshold.

Scoring then runs that precision on that runtime; any other runtime runs fp32. A precision asked
for explicitly that fails is refused with the numbers; `auto` falls back to fp32 and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .backends import reduced_precisions, runtime_key
from .inspector_dir import set_manifest_entry
from .errors import DataError
from .imageio import read_image

MIN_SPEARMAN = 0.98
MAX_SCORE_SHIFT = 0.02  # of the image threshold
CHOICES = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Parity:
    precision: str
    runtime: str  # "openvino/cpu"
    n_images: int
    spearman: float
    decision_agreement: float
    max_score_shift: float  # |score_low - score_fp32| / threshold, worst image
    passed: bool


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 2:
        return 1.0
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if ra.std() == 0 or rb.std() == 0:
        return 1.0
    return float(np.corrcoef(ra, rb)[0, 1])


def measure(fp32, low, images: list[np.ndarray], batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Raw image scores of the same images through two inspectors: ``fp32`` first, then ``low`` (an opened
    inspector, or a function that opens it, called once fp32's scores are in, so that only one set of
    statistics is in memory when ``fp32`` is not kept elsewhere)."""
    def scores(insp):
        return np.asarray([r.raw_score for i in range(0, len(images), batch_size)
                           for r in insp.inspect(images[i:i + batch_size])])

    a = scores(fp32)
    del fp32  # the caller handed over its only reference: freed before ``low`` opens
    return a, scores(low() if callable(low) else low)


def parity(precision: str, runtime: str, a: np.ndarray, b: np.ndarray, threshold: float) -> Parity:
    agree = float(np.mean((a >= threshold) == (b >= threshold))) if len(a) else 1.0
    shift = float(np.max(np.abs(b - a)) / threshold) if len(a) else 0.0
    rho = spearman(a, b)
    return Parity(precision, runtime, int(len(a)), round(rho, 5), round(agree, 5), round(shift, 5),
                  rho >= MIN_SPEARMAN and agree == 1.0 and shift <= MAX_SCORE_SHIFT)


def choose_inference_precision(root: Path, holdout: list[Path], asked: str = "auto", backend: str = "auto",
                               device: str | None = None, threads: int | None = None,
                               batch_size: int = 8, refuse: bool = True) -> str:
    """After `fit` (or `fit --update`) wrote the inspector at ``root``: measure the reduced precision
    (``asked``: auto picks the runtime's best), record it in the manifest and return a one-line report.
    Raises DataError when a precision asked for by name fails or this runtime does not have it, unless
    ``refuse`` is off (an update re-measuring what fit asked for): then it falls back to fp32 and says so."""
    from .inspector import Inspector

    if asked not in CHOICES:
        raise DataError(f"inference precision {asked!r} is unknown", hint=f"choose {', '.join(CHOICES)}")
    if asked == "fp32":
        return _record(root, None, "", "fp32 as asked", asked)
    fp32 = Inspector.load(root, backend, device, threads=threads, inference_precision="fp32")
    be = fp32.backend
    key = runtime_key(be.name, be.device)
    have = reduced_precisions(be)
    cand = have[0] if asked == "auto" and have else asked
    if cand == "auto" or cand not in have:
        if asked != "auto" and refuse:
            raise DataError(f"{be.describe()} cannot compute in {asked} (it has: {', '.join(have) or 'fp32 only'})",
                            hint="fit with --inference-precision auto or fp32, or on a runtime that has it")
        what = "no reduced precision" if asked == "auto" else f"no {asked}"
        return _record(root, None, key, f"fp32: {be.describe()} has {what}", asked)
    imgs = []
    for p in holdout:
        try:
            imgs.append(read_image(p))
        except Exception:
            continue
    threshold = fp32.calibration.image_threshold
    name, dev = be.name, be.device
    del be

    def low():
        return Inspector.load(root, backend if backend != "auto" else name, dev, threads=threads,
                              inference_precision={key: cand}, verify=False)

    holder = [fp32]  # measure() gets the only reference, so the fp32 inspector is freed before low() opens
    del fp32
    a, b = measure(holder.pop(), low, imgs, batch_size)
    par = parity(cand, key, a, b, threshold)
    if par.passed:
        return _record(root, par, key, asked=asked,
                       note=f"{cand} on {key}: agrees with fp32 on {par.n_images} held-out good images "
                            f"(rank corr {par.spearman:.4f}, decisions {par.decision_agreement:.0%}, "
                            f"largest shift {par.max_score_shift:.2%} of the threshold)")
    why = (f"{cand} disagrees with fp32 on {par.n_images} held-out good images: rank corr {par.spearman:.4f} "
           f"(needs ≥ {MIN_SPEARMAN}), decisions agree {par.decision_agreement:.0%} (needs 100%), largest "
           f"shift {par.max_score_shift:.2%} of the threshold (needs ≤ {MAX_SCORE_SHIFT:.0%})")
    msg = _record(root, par, key, "fp32: " + why, asked)
    if asked != "auto" and refuse:
        raise DataError(f"{cand} refused: {why}. The inspector at {root} runs fp32.",
                        hint="use --inference-precision fp32 (or auto, which falls back to fp32 by itself)")
    return msg


def _record(root: Path, par: Parity | None, key: str, note: str, asked: str) -> str:
    approved = {key: par.precision} if par is not None and par.passed else {}
    set_manifest_entry(root, "inference", {"approved": approved, "parity": asdict(par) if par else None, "note": note,
                                           "asked": asked})
    return note


def asked_at_fit(manifest: dict) -> str:
    """The --inference-precision `fit` was given (recorded since updates re-measure it; older inspectors:
    fp32 when fit was told so, else auto)."""
    inf = manifest.get("inference") or {}
    if inf.get("asked") in CHOICES:
        return inf["asked"]
    return "fp32" if inf.get("note") == "fp32 as asked" else "auto"


def approved(manifest: dict) -> dict[str, str]:
    """{"runtime/device": precision} that passed parity for this inspector."""
    return dict((manifest.get("inference") or {}).get("approved") or {})
