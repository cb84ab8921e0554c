"""OpenVINO: Intel CPU, integrated GPU and NPU. Reads IR (.xml/.bin) or ONNX."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from ..errors import BackendError


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, model_path: Path, device: str = "CPU", threads: int | None = None,
                 hint: str | None = "f32", declared_outputs: list[str] | None = None):
        """``hint``: INFERENCE_PRECISION_HINT. "f32" (default) runs in f32 even where the CPU would pick bf16
        by default (Xeons with AMX/AVX512-BF16 do), so scores match onnxruntime and the thresholds fitted
        with it; "bf16"/"f16" only where the inspector's parity check approved them (edge/precision.py).

        ``declared_outputs``: the output names the bundle declares. OpenVINO can merge a graph output's
        tensor with an intermediate one (e.g. a no-op Pad), so a port may carry several names; the
        declared one is used."""
        core = _core()
        device = device.upper()
        avail = core.available_devices
        if device != "AUTO" and not any(d == device or d.startswith(device + ".") for d in avail):
            raise BackendError(f"OpenVINO device {device!r} is not available here (available: {', '.join(avail)})",
                               hint="use --device CPU, or install the GPU/NPU driver")
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if hint:
            config["INFERENCE_PRECISION_HINT"] = hint
        if threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._model = core.read_model(str(model_path))
            self.compiled = core.compile_model(self._model, device, config)
        except Exception as e:
            raise BackendError(f"OpenVINO could not compile {model_path} for {device}: {e}") from None
        self.device = device
        self._config = config
        self.request = self.compiled.create_infer_request()
        self.input_name = self.compiled.inputs[0].get_any_name()
        self.output_names = [_port_name(o, declared_outputs) for o in self.compiled.outputs]
        self._outputs = list(self.compiled.outputs)
        self._streams = None  # (compiled model, AsyncInferQueue) for batches of several rows, made on first use
        self.parallel_rows = device == "CPU"  # False: every batch through the one latency request

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """One batch. On the CPU a batch of several rows (a folder's batch, a photo's windows) runs one
        row per request on the CPU's throughput streams (a stream per core pair or so): on 2 cores that
        was ~25% faster for 56 windows and ~14% for 8 images than one request on both cores, whose
        batch-1 latency stays what a line camera gets. Same model, precision and values."""
        from . import in_chunks

        x = inputs.get(self.input_name)
        if self.parallel_rows and len(inputs) == 1 and x is not None and x.shape[0] > 1:
            streams = self._throughput()
            if streams is not None:
                return in_chunks(lambda part: self._run_streams(streams, part[self.input_name]), inputs, rows=256)
        return in_chunks(self._run, inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res = self.request.infer(inputs)
        return {name: np.array(res[port]) for name, port in zip(self.output_names, self._outputs)}

    def _throughput(self):
        """The model compiled for throughput with its request queue, or None when that gives one stream."""
        if self._streams is None:
            import openvino as ov

            cfg = {**self._config, "PERFORMANCE_HINT": "THROUGHPUT"}
            try:
                compiled = _core().compile_model(self._model, self.device, cfg)
                n = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            except Exception:  # the latency request still works: use it
                n, compiled = 1, None
            self._streams = (compiled, ov.AsyncInferQueue(compiled, n)) if n > 1 else False
        return self._streams or None

    def _run_streams(self, streams, x: np.ndarray) -> dict[str, np.ndarray]:
        compiled, queue = streams
        ports = list(compiled.outputs)
        out: dict[str, np.ndarray] = {}
        errors: list[BaseException] = []
        lock = threading.Lock()

        def done(request, row: int) -> None:
            try:
                for name, port in zip(self.output_names, ports):
                    a = request.get_tensor(port).data
                    with lock:
                        if name not in out:
                            out[name] = np.empty((x.shape[0],) + a.shape[1:], a.dtype)
                    out[name][row] = a[0]
            except BaseException as e:  # raised below, on the caller's thread
                errors.append(e)

        queue.set_callback(done)
        for row in range(x.shape[0]):
            queue.start_async({self.input_name: x[row:row + 1]}, row)
        queue.wait_all()
        if errors:
            raise errors[0]
        return out

    def describe(self) -> str:
        return f"openvino {self.device}" + (f" {self.compute}" if getattr(self, "compute", "fp32") != "fp32" else "")


_CORE = None
_CORE_LOCK = threading.Lock()


def _core():
    """One OpenVINO Core per process, never destroyed. Its CPU plugin sets an alternate signal stack on
    the thread that creates it and tears it down when the plugin goes; a second Core (a SIGHUP reload)
    that is later dropped left the main thread's signal stack freed, and the next SIGTERM crashed."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            try:
                import openvino as ov
            except ImportError:
                raise BackendError("OpenVINO is not installed", hint="pip install 'edge-inspect[openvino]'") from None
            _CORE = ov.Core()
        return _CORE


def capabilities(device: str) -> tuple[str, ...]:
    """What the device computes natively, e.g. ('BF16', 'FP32', 'FP16', 'INT8', ...)."""
    try:
        return tuple(_core().get_property(device.upper(), "OPTIMIZATION_CAPABILITIES"))
    except Exception:
        return ()


def _port_name(port, declared: list[str] | None) -> str:
    names = port.get_names()
    for name in declared or ():
        if name in names:
            return name
    return port.get_any_name()
