"""OpenVINO at a chosen inference precision, for the benchmark.

edge's OpenVinoBackend is being reworked in parallel (issue 4: f32 by default, declared output
names); this runner does what it does (compile, one infer request, copy the outputs out) but
takes the precision hint explicitly, so one run can compare f32 with the CPU's bf16/f16, and it
names outputs by the bundle's taps (OpenVINO may merge a tap's tensor names with a following
Pad's, so get_any_name() can return the wrong one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OvRunner:
    name = "openvino"

    def __init__(self, model_path: Path, taps: list[str], precision: str):
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(model_path)), "CPU",
                                           {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision})
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.request = self.compiled.create_infer_request()
        self.input_name = self.compiled.inputs[0].get_any_name()
        self._outputs = list(self.compiled.outputs)
        self.output_names = [next((t for t in taps if t in o.get_names()), o.get_any_name()) for o in self._outputs]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res = self.request.infer(inputs)
        return {name: np.array(res[port]) for name, port in zip(self.output_names, self._outputs)}

    def describe(self) -> str:
        return f"openvino CPU ({self.precision})"


def cpu_precisions() -> list[str]:
    """f32, and bf16 / f16 where the CPU runs them natively."""
    import openvino as ov

    caps = set(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    return ["f32"] + [p for p, c in (("bf16", "BF16"), ("f16", "FP16")) if c in caps]
