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
