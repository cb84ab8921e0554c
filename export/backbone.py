"""Build a feature-tap backbone, export it to ONNX, check parity, write the bundle."""

from __future__ import annotations

import datetime as _dt
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edge.bundle import AtomicDir, load_bundle, write_backbone_manifest
from edge.errors import BundleError

from . import __version__
from .architectures.efficientnet_lite import LITE_MEAN, LITE_PARAMS, LITE_STD, EfficientNetLite, LiteTaps
from .weights import WeightSource, load_state_dict, load_strict, pypi_lite_weights

DEFAULT_OPSET = 17


@dataclass
class TapModel:
    """A torch module returning a tuple of feature maps, and what the manifest says about it."""

    module: torch.nn.Module
    arch: str
    tap_names: list[str]
    tap_layers: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    weights: WeightSource


def build_backbone(arch: str, weights: str = "pretrained", width_scale: float = 1.0) -> TapModel:
    """``weights``: "pretrained" (PyPI package), "none" (random init) or a state-dict path."""
    if arch not in LITE_PARAMS:
        raise BundleError(f"unknown backbone architecture {arch!r}",
                          hint=f"known: {', '.join(sorted(LITE_PARAMS))}")
    if width_scale != 1.0 and weights != "none":
        raise BundleError("--width-scale only makes sense with --weights none (pretrained weights are full width)")
    net = EfficientNetLite(arch, width_scale=width_scale)
    if weights == "none":
        torch.manual_seed(0)
        net = EfficientNetLite(arch, width_scale=width_scale)
        src = WeightSource("none", "random init (seed 0)")
    else:
        src = pypi_lite_weights(arch) if weights == "pretrained" else WeightSource(
            "file", f"file:{Path(weights).name}", weights, None)
        sd = load_state_dict(src.path)
        if src.kind == "file":
            from edge.bundle import sha256_file
            src = WeightSource("file", src.description, src.path, sha256_file(src.path))
        load_strict(net, sd, arch)
    net.eval()
    taps = net.default_taps()
    names = [f"s{net.block_specs[i][0]}" for i in taps]
    return TapModel(LiteTaps(net, taps).eval(), arch, names, [f"_blocks.{i}" for i in taps],
                    LITE_MEAN, LITE_STD, src)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else 1.0


def parity(torch_outs: list[np.ndarray], other: dict[str, np.ndarray], names: list[str]) -> dict:
    out = {}
    for n, t in zip(names, torch_outs):
        o = other[n]
        out[n] = {"max_abs_diff": float(np.max(np.abs(t - o))),
                  "max_abs_ref": float(np.max(np.abs(t))),
                  "cosine": _cosine(t, o)}
    return out


def parity_inputs(h: int, w: int, n: int = 2, seed: int = 0) -> np.ndarray:
    """Normalised inputs with image-like statistics (smooth noise in 0..1, then normalised)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 3, max(h // 8, 1), max(w // 8, 1)), dtype=np.float32)
    x = torch.nn.functional.interpolate(torch.from_numpy(x), size=(h, w), mode="bilinear").numpy()
    return ((x - 0.5) / 0.5).astype(np.float32)


def export_onnx(tm: TapModel, path: Path, h: int, w: int, opset: int, dynamic_spatial: bool) -> None:
    x = torch.from_numpy(parity_inputs(h, w, 1))
    axes = {"image": {0: "batch"}}
    if dynamic_spatial:
        axes["image"].update({2: "height", 3: "width"})
    for n in tm.tap_names:
        axes[n] = {0: "batch"} if not dynamic_spatial else {0: "batch", 2: f"{n}_h", 3: f"{n}_w"}
    try:
        with torch.no_grad():
            torch.onnx.export(tm.module, (x,), str(path), input_names=["image"], output_names=tm.tap_names,
                              opset_version=opset, dynamic_axes=axes, dynamo=False, do_constant_folding=True)
    except Exception as e:
        raise BundleError(f"ONNX export of {tm.arch} failed at opset {opset}: {type(e).__name__}: {e}",
                          hint="try another --opset; an op the format does not support is named above") from None


def export_backbone(arch: str, out: str | Path, size: tuple[int, int] = (256, 256), weights: str = "pretrained",
                    opset: int = DEFAULT_OPSET, dynamic_spatial: bool = False, width_scale: float = 1.0,
                    force: bool = True) -> Path:
    """Export ``arch`` to a verified backbone bundle at ``out``; returns the bundle path."""
    import onnx
    import onnxruntime as ort

    h, w = size
    if h % 16 or w % 16:
        raise BundleError(f"input size {h}x{w} must be a multiple of 16 (the deepest tap has stride 16)")
    if opset < 17:
        raise BundleError(f"opset {opset} is too old; use 17 or later")
    tm = build_backbone(arch, weights, width_scale)
    out = Path(out)
    with AtomicDir(out, overwrite=force) as tmp:
        onnx_path = tmp / "model.onnx"
        export_onnx(tm, onnx_path, h, w, opset, dynamic_spatial)
        x = parity_inputs(h, w, 2)
        with torch.no_grad():
            ref = [t.numpy() for t in tm.module(torch.from_numpy(x))]
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = dict(zip(tm.tap_names, sess.run(tm.tap_names, {"image": x})))
        par = parity(ref, got, tm.tap_names)
        worst = max(v["max_abs_diff"] / max(v["max_abs_ref"], 1e-6) for v in par.values())
        if worst > 1e-3:
            raise BundleError(f"ONNX output differs from torch beyond tolerance (relative {worst:.2e}): {par}")
        taps = [{"name": n, "layer": layer, "stride": int(h // r.shape[2]), "channels": int(r.shape[1])}
                for n, layer, r in zip(tm.tap_names, tm.tap_layers, ref)]
        input_spec = {"name": "image", "layout": "NCHW", "height": h, "width": w, "dynamic_spatial": dynamic_spatial,
                      "dtype": "float32", "color": "RGB", "range": "0..1 before normalisation",
                      "mean": list(tm.mean), "std": list(tm.std)}
        meta = {"name": arch if width_scale == 1.0 else f"{arch}-w{width_scale:g}", "arch": arch,
                "input": input_spec, "taps": taps, "opset": opset, "weights": tm.weights.as_manifest()}
        _embed_metadata(onnx_path, meta)
        write_backbone_manifest(
            tmp, name=meta["name"], arch=arch, opset=opset, input_spec=input_spec, taps=taps,
            models=[{"format": "onnx", "precision": "fp32", "path": "model.onnx"}],
            weights=tm.weights.as_manifest(),
            parity={"reference": "torch fp32, 2 smooth random inputs",
                    "onnx/fp32": {"backend": f"onnxruntime {ort.__version__} CPU", "taps": par}},
            created={"tool": f"edge-export {__version__}", "torch": torch.__version__, "onnx": onnx.__version__,
                     "host": platform.node(),
                     "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        load_bundle(tmp)  # the bundle we write must pass the same check the device runs
    return out


def _embed_metadata(onnx_path: Path, manifest: dict) -> None:
    """Copy the manifest (minus hashes) into ONNX metadata_props so a bare model describes itself."""
    import json

    import onnx

    model = onnx.load(str(onnx_path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key = "edge_inspect_manifest"
    entry.value = json.dumps(manifest)
    onnx.save(model, str(onnx_path))
