"""onnxruntime: CPU everywhere; CUDA and TensorRT execution providers on Jetson / NVIDIA boxes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import BackendError

_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model_path: Path, device: str = "cpu", threads: int | None = None, fp16: bool = False):
        """``fp16``: TensorRT builds fp16 engines (only where the inspector's parity check approved it)."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("onnxruntime is not installed",
                               hint="pip install onnxruntime (or onnxruntime-gpu on Jetson/NVIDIA)") from None
        device = device.lower()
        if device not in _PROVIDERS:
            raise BackendError(f"onnxruntime device {device!r} is unknown", hint="use cpu, cuda or tensorrt")
        wanted = _PROVIDERS[device]
        have = ort.get_available_providers()
        if wanted[0] not in have:
            raise BackendError(
                f"onnxruntime here has no {wanted[0]} (available: {', '.join(have)})",
                hint="install onnxruntime-gpu built for this CUDA/JetPack, or use --device cpu")
        providers: list = []
        for p in wanted:
            if p == "TensorrtExecutionProvider":
                cache = os.environ.get("EDGE_INSPECT_TRT_CACHE", str(Path(model_path).parent / ".trt-cache"))
                providers.append((p, {"trt_fp16_enable": bool(fp16), "trt_engine_cache_enable": True,
                                      "trt_engine_cache_path": cache}))
            else:
                providers.append(p)
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            so.intra_op_num_threads = int(threads)
        # onnxruntime's pool threads busy-wait after each run by default; on a small device that steals
        # the cores the Mahalanobis kernel and the pipeline's other stages need right then
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(model_path), sess_options=so, providers=providers)
        except Exception as e:
            raise BackendError(f"onnxruntime could not load {model_path}: {e}") from None
        self.device = device
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from . import in_chunks

        return in_chunks(self._run, inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = self.session.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs))

    def describe(self) -> str:
        fp16 = " fp16" if getattr(self, "compute", "fp32") == "fp16" else ""
        return f"onnxruntime {self.device}{fp16} ({', '.join(self.session.get_providers())})"
