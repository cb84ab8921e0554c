import numpy as np
import pytest

from edge.backends import open_backend
from edge.bundle import load_bundle
from edge.errors import BackendError
from edge.imageio import read_image
from edge.inspector import Inspector


def test_onnxruntime_backend_moves_named_tensors(tiny_bundle):
    be = open_backend(load_bundle(tiny_bundle), "onnxruntime")
    out = be.infer({be.input_name: np.zeros((2, 3, 64, 64), np.float32)})
    assert set(out) == {"s4", "s8", "s16"} and out["s4"].shape == (2, 8, 16, 16)


def test_unknown_backend_and_device_are_clear_errors(tiny_bundle):
    b = load_bundle(tiny_bundle)
    with pytest.raises(BackendError, match="unknown backend"):
        open_backend(b, "tensorflow")
    with pytest.raises(BackendError, match="device 'fpga' is unknown"):
        open_backend(b, "onnxruntime", device="fpga")


def test_openvino_runs_a_batch_of_rows_on_its_streams_with_the_values_of_one_request(tiny_bundle, monkeypatch):
    """Several rows go one per request onto the CPU's throughput streams (made on first use); each row's
    outputs land in its own place, equal to the latency request's; one row never compiles the second model."""
    pytest.importorskip("openvino")
    be = open_backend(load_bundle(tiny_bundle), "openvino", "CPU")
    x = np.random.default_rng(0).normal(size=(5, 3, 64, 64)).astype(np.float32)
    one = be.infer({be.input_name: x[:1]})
    assert be._streams is None  # a single row: the latency request only
    ref = {k: np.concatenate([be._run({be.input_name: x[i:i + 1]})[k] for i in range(5)]) for k in one}
    if be._throughput() is None:
        pytest.skip("this CPU gets one throughput stream: nothing runs in parallel")
    got = be.infer({be.input_name: x})
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].shape == ref[k].shape
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-5, atol=1e-6)
    # a failing request is raised on the caller's thread, not lost in a callback
    monkeypatch.setattr(np, "empty", lambda *a, **k: (_ for _ in ()).throw(MemoryError("no memory")))
    with pytest.raises(MemoryError):
        be.infer({be.input_name: x})


def test_openvino_and_onnxruntime_give_the_same_scores(tiny_inspector_ro, tiny_category):
    pytest.importorskip("openvino")
    imgs = [read_image(p) for p in sorted((tiny_category / "test").rglob("*.png"))]
    ort = Inspector.load(tiny_inspector_ro, "onnxruntime").inspect(imgs)
    ov = Inspector.load(tiny_inspector_ro, "openvino", "CPU").inspect(imgs)
    a = np.array([r.raw_score for r in ort])
    b = np.array([r.raw_score for r in ov])
    # stated tolerance: 1e-3 relative on image scores; decisions identical
    np.testing.assert_allclose(b, a, rtol=1e-3)
    assert [r.decision for r in ort] == [r.decision for r in ov]
    np.testing.assert_allclose(ov[0].anomaly_map, ort[0].anomaly_map, rtol=1e-3, atol=1e-3)
