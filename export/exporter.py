"""Export a built model to a verified bundle: FP32 ONNX master, requested variants, parity, manifest.

Everything is written into a temporary directory next to ``out`` and renamed into place only when
every variant exported, every FP32 variant matched torch, and the bundle passed ``load_bundle``.
"""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edge.bundle import AtomicDir, InputSpec, ModelFile, Tap, load_bundle, write_backbone_manifest

from . import __version__
from .calibration import calibration_set
from .errors import ExportError
from .formats import open_runtime, plan_variants, produce
from .models import ExportModel, build_model
from .onnx_format import embed_onnx_metadata, export_onnx_fp32
from .openvino_format import forget_converted
from .parity import QuickPadim, decision_agreement, output_stats
from .request import ExportRequest, ModelRequest

FP32_MAX_REL_DIFF = 1e-3  # an FP32 variant further than this from torch is an export bug
WARN_COSINE, WARN_SPEARMAN = 0.99, 0.9  # lower-precision variants below these get a warning


@dataclass
class ExportResult:
    path: Path
    manifest: dict
    warnings: list[str] = field(default_factory=list)


def run_torch(module: torch.nn.Module, x: np.ndarray, names: list[str], batch: int = 8) -> dict[str, np.ndarray]:
    parts: list[list[np.ndarray]] = [[] for _ in names]
    with torch.no_grad():
        for i in range(0, len(x), batch):
            outs = module(torch.from_numpy(x[i:i + batch]))
            if len(outs) != len(names):
                raise ExportError(f"the model returns {len(outs)} outputs, expected {len(names)} ({', '.join(names)})")
            for p, o in zip(parts, outs):
                p.append(o.float().numpy())
    return {n: np.concatenate(p) for n, p in zip(names, parts)}


def run_backend(backend, x: np.ndarray, names: list[str], batch: int = 8) -> dict[str, np.ndarray]:
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i in range(0, len(x), batch):
        out = backend.infer({backend.input_name: x[i:i + batch]})
        for n in names:
            parts[n].append(np.asarray(out[n], dtype=np.float32))
    return {n: np.concatenate(p) for n, p in parts.items()}


def _stride(what: str, size: tuple[int, int], shape: tuple[int, ...]) -> int:
    (h, w), (fh, fw) = size, shape[-2:]
    if h % fh or w % fw or h // fh != w // fw:
        raise ExportError(f"{what}: a {h}x{w} input gives a {fh}x{fw} map, which is not a whole stride of the input",
                          hint="choose a size whose height and width are multiples of the deepest stride (16 or 32)")
    return h // fh


def describe_outputs(model: ExportModel, ref: dict[str, np.ndarray], size: tuple[int, int],
                     heads: list[dict]) -> tuple[list[dict], list[dict]]:
    """(taps, outputs) for the manifest, from the reference outputs' real shapes."""
    if model.kind == "backbone":
        taps = []
        for name, layer in zip(model.output_names, model.tap_layers):
            r = ref[name]
            taps.append({"name": name, "layer": layer, "stride": _stride(f"tap {name}", size, r.shape),
                         "channels": int(r.shape[1])})
        return taps, []
    outputs = []
    for spec in heads:
        r = ref[spec["name"]]
        want = 2 if spec["role"] == "class" else 4
        if r.ndim != want or r.shape[1] != spec["channels"]:
            raise ExportError(f"output {spec['name']}: the model gives shape {tuple(r.shape)}, expected "
                              f"{want} dims with {spec['channels']} channels",
                              hint="check --num-classes/--mask-classes against the model")
        spec = dict(spec)
        if spec["role"] == "mask":
            spec["stride"] = _stride(f"output {spec['name']}", size, r.shape)
        outputs.append(spec)
    return [], outputs


def _runtime_name(backend) -> str:
    if backend.name == "onnxruntime":
        import onnxruntime as ort

        return f"onnxruntime {ort.__version__} CPU"
    import openvino as ov

    prec = backend.compiled.get_property("INFERENCE_PRECISION_HINT")
    prec = prec.get_type_name() if hasattr(prec, "get_type_name") else str(prec)
    return f"openvino {ov.get_version().split('-')[0]} CPU (inference precision {prec})"


def variant_parity(root: Path, v: ModelFile, x: np.ndarray, ref: dict[str, np.ndarray], model: ExportModel,
                   outputs: list[dict], padim: QuickPadim | None) -> dict:
    backend = open_runtime(root, v, model.output_names)
    got = run_backend(backend, x, model.output_names)
    stats = {n: output_stats(ref[n], got[n]) for n in model.output_names}
    rep: dict = {"backend": _runtime_name(backend)}
    if model.kind == "backbone":
        rep["taps"] = stats
        if padim is not None:
            rep["padim"] = padim.effect(got)
    else:
        for spec in outputs:
            stats[spec["name"]]["decision_agreement"] = decision_agreement(ref[spec["name"]], got[spec["name"]],
                                                                           spec["activation"])
        rep["outputs"] = stats
    return rep


def check_variant(v: ModelFile, rep: dict) -> str | None:
    """Raise for an FP32 variant that is off; return a warning for a lossy one that lost a lot."""
    stats = rep.get("taps") or rep.get("outputs")
    if v.precision == "fp32":
        worst = max(s["max_abs_diff"] / max(s["max_abs_ref"], 1e-6) for s in stats.values())
        if worst > FP32_MAX_REL_DIFF:
            from .errors import ParityError

            raise ParityError(f"{v.key} differs from torch by {worst:.2e} (relative), more than FP32 allows "
                              f"({FP32_MAX_REL_DIFF:g}): {stats}",
                              hint="an op is converted with different semantics; try another --opset")
        return None
    low = min(s["cosine"] for s in stats.values())
    rho = rep.get("padim", {}).get("spearman")
    if low < WARN_COSINE or (rho is not None and rho < WARN_SPEARMAN):
        return (f"{v.key} drifts from FP32: lowest cosine {low:.4f}"
                + (f", PaDiM score rank correlation {rho:.3f}" if rho is not None else "")
                + "; check it on real images before using it")
    return None


@dataclass
class _Measured:
    """The torch side of an export: inputs, FP32 reference outputs, and what they say about the model."""

    x: np.ndarray
    ref: dict[str, np.ndarray]
    taps: list[dict]
    outputs: list[dict]
    padim: QuickPadim | None
    calib_info: dict


def _measure(model: ExportModel, spec: InputSpec, calib_dir, calib_count: int, heads: list[dict]) -> _Measured:
    x, calib_info = calibration_set(spec, calib_dir, calib_count)
    ref = run_torch(model.module, x, model.output_names)
    taps, outputs = describe_outputs(model, ref, (spec.height, spec.width), heads)
    padim = None
    if model.kind == "backbone":
        padim = QuickPadim(ref, [Tap(t["name"], t["stride"], t["channels"]) for t in taps], (spec.height, spec.width))
    return _Measured(x, ref, taps, outputs, padim, calib_info)


def export_model(spec: ModelRequest, req: ExportRequest) -> ExportResult:
    """Build the network ``spec`` describes and export it as ``req`` says."""
    heads = spec.heads()  # label-map mistakes stop the export before anything is built
    return export_bundle(build_model(spec.recipe(), spec.weights), req, heads)


def export_bundle(model: ExportModel, req: ExportRequest, heads: list[dict] | None = None) -> ExportResult:
    h, w = req.size
    if min(h, w) < 32:
        raise ExportError(f"input size {h}x{w} is too small (at least 32 pixels each way)")
    if req.opset < 17:
        raise ExportError(f"opset {req.opset} is too old; use 17 or later")
    variants = plan_variants(list(req.formats), list(req.precisions))
    if any(v.precision == "int8" for v in variants) and req.calib_dir is None:
        raise ExportError("INT8 needs calibration images: pass --calib-images DIR (a folder of good images)")
    input_spec = {"name": "image", "layout": "NCHW", "height": h, "width": w, "dynamic_spatial": req.dynamic_spatial,
                  "dtype": "float32", "color": "RGB", "range": "0..1 before normalisation",
                  "mean": list(model.mean), "std": list(model.std)}
    meas = _measure(model, InputSpec("image", h, w, model.mean, model.std, "RGB"), req.calib_dir, req.calib_count,
                    heads or [])
    desc = {"kind": model.kind, "name": model.name, "arch": model.build["arch"], "input": input_spec,
            "taps": meas.taps, "outputs": meas.outputs, "opset": req.opset, "weights": model.weights.as_manifest(),
            "tool": f"edge-export {__version__}"}
    parity: dict = {"reference": f"torch {torch.__version__} fp32", "inputs": meas.calib_info}
    warnings: list[str] = []
    try:
        with AtomicDir(req.out, overwrite=req.force) as tmp:
            master = tmp / "model.onnx"
            export_onnx_fp32(model.module, master, meas.x[:1], model.output_names, req.opset, req.dynamic_spatial,
                             model.name)
            embed_onnx_metadata(master, {**desc, "format": "onnx", "precision": "fp32"})
            for v in variants:
                produce(tmp, v, master, meas.x, desc)
                parity[v.key] = variant_parity(tmp, v, meas.x, meas.ref, model, meas.outputs, meas.padim)
                msg = check_variant(v, parity[v.key])
                if msg:
                    warnings.append(msg)
            manifest = write_backbone_manifest(
                tmp, name=model.name, kind=model.kind, arch=model.build["arch"], opset=req.opset,
                input_spec=input_spec, taps=meas.taps, outputs=meas.outputs,
                models=[v.manifest_entry() for v in variants], weights=model.weights.as_manifest(), parity=parity,
                build=model.build, **req.manifest_extra,
                created={"tool": f"edge-export {__version__}", "torch": torch.__version__, "host": platform.node(),
                         "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
            load_bundle(tmp)  # the bundle we write must pass the same check the device runs
    finally:
        forget_converted()  # do not keep a converted OpenVINO model alive after the export
    return ExportResult(req.out, manifest, warnings)
