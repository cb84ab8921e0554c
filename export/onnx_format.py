"""ONNX: the FP32 master every other variant is made from, plus FP16 and the self-description.

Export uses torch's TorchScript-based exporter (``dynamo=False``): it handles the data-dependent
TF-SAME padding of EfficientNet-Lite and gives plain, runtime-friendly graphs.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np

from .errors import UnsupportedOpError

META_KEY = "edge_inspect_manifest"


def export_onnx_fp32(module, path: Path, example: np.ndarray, output_names: list[str], opset: int,
                     dynamic_spatial: bool, what: str) -> None:
    import torch

    axes = {"image": {0: "batch"}}
    if dynamic_spatial:
        axes["image"].update({2: "height", 3: "width"})
    for n in output_names:
        axes[n] = {0: "batch"}
    from .architectures import fixed_input_size

    log = io.StringIO()
    try:
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(log), \
                contextlib.redirect_stderr(log), fixed_input_size(not dynamic_spatial):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.from_numpy(example),), str(path), input_names=["image"],
                              output_names=output_names, opset_version=opset, dynamic_axes=axes, dynamo=False,
                              do_constant_folding=True)
    except Exception as e:  # the exporter raises many types; the message names the op
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedOpError(f"ONNX export of {what} failed at opset {opset}: {msg}",
                                 hint="replace that op in the model, or try a newer --opset") from None
    _check_runs_in_onnxruntime(path, what)


def _check_runs_in_onnxruntime(path: Path, what: str) -> None:
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise UnsupportedOpError(f"onnxruntime cannot load the ONNX export of {what}: {str(e).splitlines()[0]}",
                                 hint="the model uses an op onnxruntime does not implement") from None


def export_onnx_fp16(fp32_path: Path, path: Path) -> None:
    """Weights and arithmetic in FP16, inputs and outputs kept FP32 (the runtime feeds float32)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True)
    onnx.save(model, str(path))
    _check_runs_in_onnxruntime(path, "the FP16 model")


def embed_onnx_metadata(path: Path, description: dict) -> None:
    """Put the description into ``metadata_props`` so a bare .onnx file says what it is."""
    import onnx

    model = onnx.load(str(path))
    del model.metadata_props[:]
    entry = model.metadata_props.add()
    entry.key = META_KEY
    entry.value = json.dumps(description)
    onnx.save(model, str(path))


def read_onnx_metadata(path: Path) -> dict | None:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(meta[META_KEY]) if META_KEY in meta else None
