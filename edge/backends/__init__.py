"""Inference backends. Each moves named tensors in and out, and nothing else.

    backend = open_backend(bundle, "onnxruntime", device="cpu")
    outputs = backend.infer({"image": batch})   # dict[str, np.ndarray]

Runtimes are imported lazily, so a device without OpenVINO never needs it installed.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ..bundle import Bundle
from ..errors import BackendError, BundleError

BACKENDS = ("auto", "onnxruntime", "openvino")
DEFAULT_BACKEND = "auto"


class Backend(Protocol):
    name: str
    variant: str  # which model file of the bundle runs, "format/precision" (set by open_backend)
    reason: str  # why this runtime runs: "asked for", or what `auto` saw (set by open_backend)
    input_name: str
    output_names: list[str]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> str: ...


def open_backend(bundle: Bundle, backend: str = DEFAULT_BACKEND, device: str | None = None,
                 precision: str | None = None, threads: int | None = None, platform=None) -> Backend:
    """Open the bundle's model with a runtime.

    backend: "auto" (see auto.py: TensorRT/CUDA on a Jetson, OpenVINO on x86 when installed, else
    onnxruntime CPU; a runtime that fails to open falls through to the next), "onnxruntime"
    (device: cpu | cuda | tensorrt) or "openvino" (device: CPU | GPU | NPU | AUTO).
    precision: fp32 | fp16 | int8 picks the model variant; default the most precise one available.
    """
    if backend == "auto":
        from .auto import Platform, candidates

        tried: list[str] = []
        for c in candidates(platform or Platform.probe(), device):
            try:
                be = _open(bundle, c.backend, c.device, precision, threads)
            except BackendError as e:
                tried.append(f"{c.backend} {c.device}: {e}")
                continue
            be.reason = "auto: " + c.reason + "".join(f"; skipped {t}" for t in tried)
            return be
        raise BackendError("no runtime could open the model (" + "; ".join(tried or ["none knows device "
                                                                                     f"{device!r}"]) + ")",
                           hint="install onnxruntime (pip install onnxruntime), or pass --backend and --device")
    be = _open(bundle, backend, device, precision, threads)
    be.reason = "asked for"
    return be


def _open(bundle: Bundle, backend: str, device: str | None, precision: str | None, threads: int | None) -> Backend:
    if backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        mf = bundle.model("onnx", precision)
        be = OnnxRuntimeBackend(bundle.root / mf.path, device or "cpu", threads)
        be.variant = f"{mf.format}/{mf.precision}"
        return be
    if backend == "openvino":
        from .openvino_backend import OpenVinoBackend

        try:
            mf = bundle.model("openvino", precision)
        except BundleError:  # no IR of that precision: OpenVINO reads the ONNX variant directly
            mf = bundle.model("onnx", precision)
        declared = [t.name for t in bundle.taps] + [o.name for o in bundle.outputs]
        be = OpenVinoBackend(bundle.root / mf.path, device or "CPU", threads, exact=mf.precision == "fp32",
                             declared_outputs=declared)
        be.variant = f"{mf.format}/{mf.precision}"
        return be
    raise BackendError(f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
