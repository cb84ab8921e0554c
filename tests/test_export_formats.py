"""Every format and precision: export, load in both edge backends, compare with torch FP32."""

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openvino")

from edge.backends import open_backend  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.imageio import list_images, read_image  # noqa: E402
from edge.preprocess import batch_tensor  # noqa: E402
from export.backbone import build_backbone  # noqa: E402
from export.exporter import export_model  # noqa: E402
from export.onnx_format import read_onnx_metadata  # noqa: E402
from export.openvino_format import read_ir_metadata  # noqa: E402
from export.parity import cosine  # noqa: E402
from export.request import ExportRequest, ModelRequest  # noqa: E402

HAVE_NNCF = True
try:
    import nncf  # noqa: F401
except ImportError:
    HAVE_NNCF = False

SIZE = (64, 96)  # non-square on purpose
R18 = ModelRequest("backbone", "resnet18", "none", width_scale=0.125)
# stated tolerance per precision: lowest cosine of any tap against torch FP32 on the calibration images
MIN_COSINE = {"fp32": 0.99999, "fp16": 0.999, "int8": 0.99}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory, tiny_category):
    calib = tiny_category / "train" / "good"
    root = tmp_path_factory.mktemp("formats")
    onnx = export_model(R18, ExportRequest(root / "onnx", SIZE, formats=["onnx"], precisions=["fp32", "fp16", "int8"],
                                           calib_dir=calib, calib_count=8))
    ov_prec = ["fp32", "fp16"] + (["int8"] if HAVE_NNCF else [])
    ov = export_model(R18, ExportRequest(root / "openvino", SIZE, formats=["openvino"], precisions=ov_prec,
                                         calib_dir=calib, calib_count=8))
    return {"onnx": onnx.path, "openvino": ov.path, "calib": calib}


@pytest.fixture(scope="module")
def reference(bundles):
    b = load_bundle(bundles["onnx"])
    x = batch_tensor([read_image(p) for p in list_images([bundles["calib"]])[:8]], b.input)
    tm = build_backbone("resnet18", "none", width_scale=0.125)
    with torch.no_grad():
        ref = dict(zip(tm.output_names, (t.numpy() for t in tm.module(torch.from_numpy(x)))))
    return x, ref


CASES = [("onnx", p, be) for p in ("fp32", "fp16", "int8") for be in ("onnxruntime", "openvino")] + \
        [("openvino", p, "openvino") for p in ("fp32", "fp16", "int8")]


@pytest.mark.parametrize("fmt, precision, backend", CASES)
def test_variant_matches_torch_in_edge_backend(bundles, reference, fmt, precision, backend):
    if fmt == "openvino" and precision == "int8" and not HAVE_NNCF:
        pytest.skip("NNCF (the int8 extra) is not installed")
    b = load_bundle(bundles[fmt])
    assert b.model(fmt, precision).format == fmt  # the variant is really in the bundle
    be = open_backend(b, backend, precision=precision)
    x, ref = reference
    out = be.infer({be.input_name: x})
    assert set(out) == {"layer1", "layer2", "layer3"}
    for name, r in ref.items():
        assert out[name].shape == r.shape and out[name].dtype == np.float32
        assert cosine(r, out[name]) >= MIN_COSINE[precision], (name, cosine(r, out[name]))
        if precision == "fp32":
            np.testing.assert_allclose(out[name], r, rtol=1e-4, atol=1e-4 * np.abs(r).max())


def test_manifest_lists_variants_with_parity_and_padim_effect(bundles):
    m = load_bundle(bundles["onnx"]).manifest
    assert [(x["format"], x["precision"]) for x in m["models"]] == [("onnx", p) for p in ("fp32", "fp16", "int8")]
    assert m["parity"]["inputs"]["n_images"] == 8 and "good images" in m["parity"]["inputs"]["source"]
    for key in ("onnx/fp32", "onnx/fp16", "onnx/int8"):
        rep = m["parity"][key]
        assert set(rep["taps"]) == {"layer1", "layer2", "layer3"}
        for s in rep["taps"].values():
            assert {"max_abs_diff", "cosine", "max_abs_ref"} <= set(s)
        pad = rep["padim"]
        assert -1.0 <= pad["spearman"] <= 1.0 and -1.0 <= pad["spearman_fp32_stats"] <= 1.0
        assert (pad["fit_images"], pad["held_out_images"]) == (4, 4) and pad["max_rel_score_diff_fp32_stats"] >= 0
    assert m["parity"]["onnx/fp32"]["padim"]["spearman"] == pytest.approx(1.0)
    assert m["parity"]["onnx/fp32"]["padim"]["max_rel_score_diff_fp32_stats"] < 1e-4
    # lossy variants really differ from FP32 (the report is measured, not copied)
    taps = {k: m["parity"][k]["taps"]["layer3"] for k in ("onnx/int8", "onnx/fp32")}
    assert taps["onnx/int8"]["max_abs_diff"] > taps["onnx/fp32"]["max_abs_diff"]
    assert m["build"]["arch"] == "resnet18" and m["weights"]["kind"] == "none"


def test_openvino_bundle_files_and_input_size(bundles):
    b = load_bundle(bundles["openvino"])
    names = sorted(os.listdir(bundles["openvino"]))
    assert {"model.onnx", "model.xml", "model.bin", "model_fp16.xml", "model_fp16.bin", "manifest.json"} <= set(names)
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]
    assert set(b.manifest["files"]) == set(names) - {"manifest.json"}
    assert (b.input.height, b.input.width) == SIZE
    # FP16 IR stores half-size weights
    size = {n: os.path.getsize(bundles["openvino"] / n) for n in ("model.bin", "model_fp16.bin")}
    assert size["model_fp16.bin"] < 0.6 * size["model.bin"]


def test_bare_model_files_describe_themselves(bundles):
    meta = read_onnx_metadata(bundles["onnx"] / "model_int8.onnx")
    assert meta["precision"] == "int8" and meta["kind"] == "backbone" and meta["taps"][2]["stride"] == 16
    assert meta["input"]["height"] == SIZE[0] and meta["weights"]["pretrained"] is False
    ir = read_ir_metadata(bundles["openvino"] / "model_fp16.xml")
    assert ir["format"] == "openvino" and ir["precision"] == "fp16" and [t["name"] for t in ir["taps"]] == [
        "layer1", "layer2", "layer3"]
    import openvino as ov

    model = ov.Core().read_model(str(bundles["openvino"] / "model_fp16.xml"))
    assert model.get_rt_info(["model_info", "model_type"]).astype(str) == "backbone"
    assert sorted(next(iter(p.get_names())) for p in model.outputs) == ["layer1", "layer2", "layer3"]


def _check_dynamic(tmp_path, arch, width_scale):
    res = export_model(ModelRequest("backbone", arch, "none", width_scale),
                       ExportRequest(tmp_path / "dyn", (64, 64), dynamic_spatial=True, formats=["onnx", "openvino"]))
    b = load_bundle(res.path)
    assert b.input.dynamic_spatial
    x = np.random.default_rng(0).normal(size=(2, 3, 96, 160)).astype(np.float32)
    tm = build_backbone(arch, "none", width_scale=width_scale)
    with torch.no_grad():
        ref = [t.numpy() for t in tm.module(torch.from_numpy(x))]
    for backend in ("onnxruntime", "openvino"):
        be = open_backend(b, backend)
        out = be.infer({be.input_name: x})
        for name, r in zip(tm.output_names, ref):
            np.testing.assert_allclose(out[name], r, rtol=1e-3, atol=1e-3 * np.abs(r).max())


def test_dynamic_size_runs_at_another_size(tmp_path):
    _check_dynamic(tmp_path, "resnet18", 0.125)


@pytest.mark.slow
def test_dynamic_size_lite_keeps_tf_same_padding(tmp_path):
    _check_dynamic(tmp_path, "efficientnet-lite0", 0.25)


def test_int8_without_calibration_images_is_refused(tmp_path):
    from export.errors import ExportError

    with pytest.raises(ExportError, match="INT8 needs calibration images"):
        export_model(R18, ExportRequest(tmp_path / "q", (64, 64), precisions=["int8"]))
    assert not (tmp_path / "q").exists()


def test_manifest_is_valid_json_with_schema_1(bundles):
    m = json.loads((bundles["onnx"] / "manifest.json").read_text())
    assert m["schema"] == "edge-inspect/backbone" and m["schema_version"] == 1 and m["kind"] == "backbone"
