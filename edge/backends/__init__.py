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
    compute: str  # arithmetic inside the runtime: fp32, or bf16/fp16 where the hardware has it
    input_name: str
    output_names: list[str]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def describe(self) -> str: ...


COMPUTE = ("fp32", "bf16", "fp16")
MAX_ROWS = 32  # rows per runtime call: tiled photos batch hundreds of windows, whose activations would not fit


def in_chunks(run, inputs: dict[str, np.ndarray], rows: int = MAX_ROWS) -> dict[str, np.ndarray]:
    """``run(inputs)`` over at most ``rows`` rows at a time, outputs joined along the batch axis.
    Activation memory stays that of ``rows`` images whatever the batch (a 3872x3200 photo in 512-px
    windows is 63 rows; 8 of them in one call took 14 GB)."""
    n = next(iter(inputs.values())).shape[0]
    if n <= rows:
        return run(inputs)
    parts = [run({k: v[i:i + rows] for k, v in inputs.items()}) for i in range(0, n, rows)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def open_backend(bundle: Bundle, backend: str = DEFAULT_BACKEND, device: str | None = None,
                 precision: str | None = None, threads: int | None = None, platform=None,
                 compute: str | dict[str, str] | None = None) -> Backend:
    """Open the bundle's model with a runtime.

    backend: "auto" (see auto.py: TensorRT/CUDA on a Jetson, OpenVINO on x86 when installed, else
    onnxruntime CPU; a runtime that fails to open falls through to the next), "onnxruntime"
    (device: cpu | cuda | tensorrt) or "openvino" (device: CPU | GPU | NPU | AUTO).
    precision: fp32 | fp16 | int8 picks the model variant; default the most precise one available.
    compute: the arithmetic inside the runtime, fp32 (default) | bf16 | fp16, or a dict
    {"runtime/device": compute} (what an inspector's parity check approved for each runtime).
    """
    if backend == "auto":
        from .auto import Platform, candidates

        tried: list[str] = []
        for c in candidates(platform or Platform.probe(), device):
            try:
                be = _open(bundle, c.backend, c.device, precision, threads, _compute_for(compute, c.backend, c.device))
            except BackendError as e:
                tried.append(f"{c.backend} {c.device}: {e}")
                continue
            be.reason = "auto: " + c.reason + "".join(f"; skipped {t}" for t in tried)
            return be
        raise BackendError("no runtime could open the model (" + "; ".join(tried or ["none knows device "
                                                                                     f"{device!r}"]) + ")",
                           hint="install onnxruntime (pip install onnxruntime), or pass --backend and --device")
    dev = device or {"onnxruntime": "cpu", "openvino": "CPU"}.get(backend)
    be = _open(bundle, backend, dev, precision, threads, _compute_for(compute, backend, dev or ""))
    be.reason = "asked for"
    return be


def runtime_key(backend: str, device: str) -> str:
    """How parity records name a runtime: "openvino/cpu", "onnxruntime/tensorrt"."""
    return f"{backend}/{device.lower()}"


def _compute_for(compute, backend: str, device: str) -> str:
    if isinstance(compute, dict):
        compute = compute.get(runtime_key(backend, device))
    compute = compute or "fp32"
    if compute not in COMPUTE:
        raise BackendError(f"inference precision {compute!r} is unknown", hint=f"choose {', '.join(COMPUTE)}")
    return compute


def reduced_precisions(be: Backend) -> list[str]:
    """The reduced precisions this opened runtime can compute in, best first ([] if none)."""
    if be.name == "openvino":
        from .openvino_backend import capabilities

        caps = capabilities(be.device)
        return [p for p, cap in (("bf16", "BF16"), ("fp16", "FP16")) if cap in caps and
                (p == "bf16" or be.device.upper() != "CPU" or "BF16" not in caps)]
    if be.name == "onnxruntime" and be.device == "tensorrt":
        return ["fp16"]
    return []


def _open(bundle: Bundle, backend: str, device: str | None, precision: str | None, threads: int | None,
          compute: str = "fp32") -> Backend:
    if backend == "onnxruntime":
        from .onnxruntime_backend import OnnxRuntimeBackend

        mf = bundle.model("onnx", precision)
        if compute == "bf16" or compute == "fp16" and (device or "cpu").lower() != "tensorrt":
            raise BackendError(f"onnxruntime {device or 'cpu'} cannot compute in {compute}",
                               hint="use --inference-precision fp32, or OpenVINO / TensorRT for reduced precision")
        be = OnnxRuntimeBackend(bundle.root / mf.path, device or "cpu", threads, fp16=compute == "fp16")
        be.compute = compute
        be.variant = f"{mf.format}/{mf.precision}"
        return be
    if backend == "openvino":
        from .openvino_backend import OpenVinoBackend

        try:
            mf = bundle.model("openvino", precision)
        except BundleError:  # no IR of that precision: OpenVINO reads the ONNX variant directly
            mf = bundle.model("onnx", precision)
        declared = [t.name for t in bundle.taps] + [o.name for o in bundle.outputs]
        hint = {"fp32": "f32" if mf.precision == "fp32" else None, "bf16": "bf16", "fp16": "f16"}[compute]
        be = OpenVinoBackend(bundle.root / mf.path, device or "CPU", threads, hint=hint, declared_outputs=declared)
        be.compute = compute
        be.variant = f"{mf.format}/{mf.precision}"
        return be
    raise BackendError(f"unknown backend {backend!r}", hint=f"choose one of: {', '.join(BACKENDS)}")
