"""OpenVINO IR (.xml + .bin) in FP32 and FP16, converted from the FP32 ONNX master.

The description goes into the IR's ``rt_info["model_info"]``, where OpenVINO's model_api also
looks: ``model_type``, ``labels``, ``mean_values``/``scale_values`` (0..255 units) and the full
description as JSON under ``edge_inspect_manifest``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ExportError, UnsupportedOpError
from .onnx_format import META_KEY


def _ov():
    try:
        import openvino as ov
    except ImportError:
        raise ExportError("OpenVINO export needs the openvino package",
                          hint="pip install 'edge-inspect[openvino]'") from None
    return ov


_CONVERTED: dict[tuple[str, int, int], object] = {}


def read_onnx_as_openvino(onnx_path: Path):
    """OpenVINO model converted from the ONNX master (a fresh copy; conversion is done once per file)."""
    ov = _ov()
    st = Path(onnx_path).stat()
    key = (str(onnx_path), st.st_mtime_ns, st.st_size)
    if key in _CONVERTED:
        return _CONVERTED[key].clone()
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as e:
        raise UnsupportedOpError(f"OpenVINO cannot convert {onnx_path.name}: {str(e).strip().splitlines()[0]}",
                                 hint="an op in the model has no OpenVINO conversion; export ONNX only "
                                      "(--format onnx) or replace the op") from None
    _CONVERTED.clear()  # keep one: a new export invalidates the last
    _CONVERTED[key] = model
    return model.clone()


def forget_converted() -> None:
    """Drop the cached conversion (called when an export ends, so a large model is not kept alive)."""
    _CONVERTED.clear()


def set_rt_info(model, description: dict) -> None:
    model.set_rt_info(json.dumps(description), ["model_info", META_KEY])
    model.set_rt_info(description.get("kind", "backbone"), ["model_info", "model_type"])
    inp = description.get("input", {})
    if inp.get("mean") and inp.get("std"):
        model.set_rt_info(" ".join(f"{255 * v:g}" for v in inp["mean"]), ["model_info", "mean_values"])
        model.set_rt_info(" ".join(f"{255 * v:g}" for v in inp["std"]), ["model_info", "scale_values"])
    for out in description.get("outputs", []):
        if out.get("role") == "class":
            labels = [out["labels"][k] for k in sorted(out["labels"], key=int)]
            model.set_rt_info(" ".join(v.replace(" ", "_") for v in labels), ["model_info", "labels"])


def _clean_output_names(model, description: dict) -> None:
    """Give each output port exactly its declared name (conversion can merge in intermediate names)."""
    declared = [t["name"] for t in description.get("taps", [])] + [o["name"] for o in description.get("outputs", [])]
    for port in model.outputs:
        match = [n for n in declared if n in port.get_names()]
        if match:
            port.get_tensor().set_names({match[0]})


def save_ir(model, xml_path: Path, description: dict, fp16: bool) -> None:
    ov = _ov()
    _clean_output_names(model, description)
    set_rt_info(model, description)
    ov.save_model(model, str(xml_path), compress_to_fp16=fp16)


def export_openvino(onnx_path: Path, xml_path: Path, description: dict, precision: str) -> None:
    """FP32 or FP16 IR from the ONNX master (FP16 stores weights in half precision)."""
    save_ir(read_onnx_as_openvino(onnx_path), xml_path, description, fp16=precision == "fp16")


def read_ir_metadata(xml_path: Path) -> dict | None:
    ov = _ov()
    model = ov.Core().read_model(str(xml_path))
    if not model.has_rt_info(["model_info", META_KEY]):
        return None
    return json.loads(model.get_rt_info(["model_info", META_KEY]).astype(str))
