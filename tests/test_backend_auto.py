"""`--backend auto`: which runtime it picks on which machine, and the fall-through when one is missing."""

import pytest
from click.testing import CliRunner

from edge.backends import open_backend
from edge.backends.auto import Platform, candidates, choose
from edge.bundle import load_bundle
from edge.cli import cli
from edge.errors import BackendError

X86_OV = Platform("x86_64", jetson=False, openvino=True, ort_providers=("CPUExecutionProvider",))
X86_BARE = Platform("x86_64", jetson=False, openvino=False, ort_providers=("CPUExecutionProvider",))
JETSON = Platform("aarch64", jetson=True, openvino=False,
                  ort_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"))
JETSON_CPU_ONLY = Platform("aarch64", jetson=True, openvino=False, ort_providers=("CPUExecutionProvider",))
ARM_BOX = Platform("aarch64", jetson=False, openvino=True, ort_providers=("CPUExecutionProvider",))


@pytest.mark.parametrize("plat, backend, device, why", [
    (X86_OV, "openvino", "CPU", "OpenVINO installed"),
    (X86_BARE, "onnxruntime", "cpu", "OpenVINO is not installed"),
    (JETSON, "onnxruntime", "tensorrt", "TensorRT"),
    (JETSON_CPU_ONLY, "onnxruntime", "cpu", "no TensorRT/CUDA provider"),
    (ARM_BOX, "onnxruntime", "cpu", "aarch64 CPU"),  # OpenVINO is only preferred on x86
])
def test_auto_picks_the_expected_backend_and_says_why(plat, backend, device, why):
    c = choose(plat=plat)
    assert (c.backend, c.device) == (backend, device)
    assert why in c.reason


def test_jetson_order_is_tensorrt_cuda_cpu():
    assert [(c.backend, c.device) for c in candidates(JETSON)] == [
        ("onnxruntime", "tensorrt"), ("onnxruntime", "cuda"), ("onnxruntime", "cpu")]


def test_a_device_keeps_only_runtimes_that_know_it():
    assert [c.backend for c in candidates(X86_OV, "GPU")] == ["openvino"]
    assert [(c.backend, c.device) for c in candidates(JETSON, "cuda")] == [("onnxruntime", "cuda")]
    assert [c.backend for c in candidates(X86_OV, "cpu")] == ["openvino", "onnxruntime"]


def test_auto_falls_back_cleanly_when_the_preferred_runtime_is_missing(tiny_bundle, monkeypatch):
    """The probe says OpenVINO is there but it fails to load (a broken install): onnxruntime runs, and the
    reason names what was skipped."""
    from edge.backends import openvino_backend

    def broken():
        raise BackendError("OpenVINO is not installed")

    monkeypatch.setattr(openvino_backend, "_core", broken)
    be = open_backend(load_bundle(tiny_bundle), "auto", platform=X86_OV)
    assert (be.name, be.device) == ("onnxruntime", "cpu")
    assert "skipped openvino CPU: OpenVINO is not installed" in be.reason


def test_auto_falls_back_from_a_jetson_gpu_runtime_that_is_not_there(tiny_bundle):
    """A platform claiming TensorRT/CUDA on a machine whose onnxruntime has neither: both are skipped."""
    be = open_backend(load_bundle(tiny_bundle), "auto", platform=JETSON)
    assert (be.name, be.device) == ("onnxruntime", "cpu")
    assert "skipped onnxruntime tensorrt" in be.reason and "skipped onnxruntime cuda" in be.reason


def test_auto_with_no_runtime_that_opens_is_a_clear_error(tiny_bundle):
    with pytest.raises(BackendError, match="no runtime could open the model"):
        open_backend(load_bundle(tiny_bundle), "auto", device="cuda", platform=X86_OV)


def test_auto_on_this_machine_matches_the_probe(tiny_bundle):
    be = open_backend(load_bundle(tiny_bundle), "auto")
    c = choose()
    assert (be.name, be.device.lower()) == (c.backend, c.device.lower())
    assert be.reason.startswith("auto: ")


def test_cli_says_which_runtime_runs_and_why(tiny_inspector_ro, tiny_category, tmp_path):
    img = next((tiny_category / "test" / "good").glob("*.png"))
    r = CliRunner().invoke(cli, ["score", str(img), "--inspector", str(tiny_inspector_ro),
                                 "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    c = choose()
    assert f"runtime: {c.backend} " in r.output and "auto: " in r.output
    r = CliRunner().invoke(cli, ["score", str(img), "--inspector", str(tiny_inspector_ro), "--backend",
                                 "onnxruntime", "--out", str(tmp_path / "o2")])
    assert "runtime: onnxruntime cpu" in r.output and "(asked for)" in r.output
    r = CliRunner().invoke(cli, ["info", str(tiny_inspector_ro)])
    assert r.exit_code == 0 and f"--backend auto): {c.backend} {c.device}, because: " in r.output


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_large_batches_run_in_chunks_with_the_same_outputs(tiny_bundle, backend, monkeypatch):
    """Tiled photos send hundreds of windows at once; the runtime sees at most MAX_ROWS per call."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    import numpy as np

    from edge import backends

    be = open_backend(load_bundle(tiny_bundle), backend)
    x = np.random.default_rng(0).normal(size=(7, 3, 64, 64)).astype(np.float32)
    whole = be.infer({be.input_name: x})
    if backend == "openvino":  # its CPU streams take one row per request (test_backends); the latency request chunks
        be.parallel_rows = False
    seen = []
    real = be._run
    monkeypatch.setattr(be, "_run", lambda inp: seen.append(next(iter(inp.values())).shape[0]) or real(inp))
    monkeypatch.setattr(backends, "MAX_ROWS", 3)
    monkeypatch.setattr(backends.in_chunks, "__defaults__", (3,))
    chunked = be.infer({be.input_name: x})
    assert seen == [3, 3, 1]
    for k in whole:
        np.testing.assert_allclose(chunked[k], whole[k], rtol=1e-4, atol=1e-5)
