"""Classifiers, segmenters and multitask models: outputs, label maps, both backends, the info command."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("openvino")

from click.testing import CliRunner  # noqa: E402

from edge.backends import open_backend  # noqa: E402
from edge.bundle import load_bundle  # noqa: E402
from edge.cli import cli as edge_cli  # noqa: E402
from export.cli import cli as export_cli  # noqa: E402
from export.errors import ExportError  # noqa: E402
from export.models import build_model  # noqa: E402
from export.parity import cosine  # noqa: E402
from export.request import ModelRequest  # noqa: E402

TINY = ["--weights", "none", "--width-scale", "0.25", "--size", "64x128"]


def _run(args):
    r = CliRunner().invoke(export_cli, args, catch_exceptions=True)
    return r


def _torch_outputs(recipe, x):
    m = build_model(recipe, "none")
    with torch.no_grad():
        return dict(zip(m.output_names, (t.numpy() for t in m.module(torch.from_numpy(x)))))


def _same_in_both_backends(path, recipe):
    b = load_bundle(path)
    x = np.random.default_rng(3).normal(size=(2, 3, b.input.height, b.input.width)).astype(np.float32)
    ref = _torch_outputs(recipe, x)
    for backend in ("onnxruntime", "openvino"):
        for mf in b.models:
            if backend == "onnxruntime" and mf.format != "onnx":
                continue
            be = open_backend(b, backend, precision=mf.precision)
            out = be.infer({be.input_name: x})
            assert set(out) == set(ref)
            for n, r in ref.items():
                assert out[n].shape == r.shape
                assert cosine(r, out[n]) > (0.9999 if mf.precision == "fp32" else 0.99), (backend, mf, n)
    return b


def test_binary_classifier_with_defect_as_0(tmp_path):
    r = _run(["classifier", "efficientnet-lite0", "--labels", "0=defect,1=good", "--out", str(tmp_path / "c"), *TINY])
    assert r.exit_code == 0, r.output
    assert "labels 0=defect, 1=good" in r.output
    b = _same_in_both_backends(tmp_path / "c", ModelRequest("classifier", "efficientnet-lite0", num_classes=2,
                                                                    width_scale=0.25).recipe())
    assert b.kind == "classifier" and b.taps == ()
    (o,) = b.outputs
    assert (o.name, o.role, o.channels, o.activation) == ("logits", "class", 2, "softmax")
    assert o.label_map == {0: "defect", 1: "good"} and o.ok_class == 1
    assert b.manifest["parity"]["onnx/fp32"]["outputs"]["logits"]["decision_agreement"] == 1.0


def test_single_logit_sigmoid_classifier_needs_labels_0_and_1():
    (spec,) = ModelRequest("classifier", "x", num_classes=1, labels={0: "NG", 1: "OK"},
                           activation="sigmoid").heads()
    assert spec["channels"] == 1 and spec["labels"] == {"0": "NG", "1": "OK"} and spec["ok_class"] == 1
    assert "probability of label 1" in spec["meaning"]
    with pytest.raises(ExportError, match=r"needs exactly \[0, 1\]"):
        ModelRequest("classifier", "x", num_classes=1, labels={0: "OK"}, activation="sigmoid").heads()
    with pytest.raises(ExportError, match="needs its label map"):
        ModelRequest("classifier", "x", num_classes=2).heads()


@pytest.mark.parametrize("size, formats", [
    ("64x128", "onnx"),
    pytest.param("256x1600", "onnx,openvino", marks=pytest.mark.slow),  # the steel strip case, full size
])
def test_steel_segmenter_4_classes_non_square(tmp_path, size, formats):
    r = _run(["segmenter", "efficientnet-lite0", "--mask-classes", "4", "--out", str(tmp_path / "s"),
              "--format", formats, "--weights", "none", "--width-scale", "0.25", "--size", size])
    assert r.exit_code == 0, r.output
    b = _same_in_both_backends(tmp_path / "s", ModelRequest("segmenter", "efficientnet-lite0", mask_classes=4,
                                                                    width_scale=0.25).recipe())
    (o,) = b.outputs
    assert (o.name, o.role, o.stride, o.activation, o.channels) == ("mask_logits", "mask", 4, "sigmoid", 4)
    assert o.label_map == {0: "defect_1", 1: "defect_2", 2: "defect_3", 3: "defect_4"}


def test_multitask_outputs_and_info_on_the_device(tmp_path):
    r = _run(["multitask", "efficientnet-lite0", "--labels", "good,defect", "--mask-classes", "1",
              "--mask-labels", "0=defect", "--out", str(tmp_path / "m"), "--format", "onnx,openvino", *TINY])
    assert r.exit_code == 0, r.output
    b = _same_in_both_backends(tmp_path / "m", ModelRequest("multitask", "efficientnet-lite0", num_classes=2,
                                                                    mask_classes=1, width_scale=0.25).recipe())
    assert [o.name for o in b.outputs] == ["class_logits", "mask_logits"]
    assert b.outputs[0].ok_class == 0 and b.outputs[1].stride == 4
    info = CliRunner().invoke(edge_cli, ["info", str(tmp_path / "m")])
    assert info.exit_code == 0, info.output
    assert "output class_logits: class, 2 channels, softmax; labels 0=good (OK), 1=defect" in info.output
    assert "output mask_logits: mask, 1 channels, sigmoid, mask stride 4" in info.output
    assert "openvino/fp32" in info.output and "all SHA-256 hashes match" in info.output


def test_custom_multitask_factory(tmp_path):
    r = _run(["multitask", "tests.export_factories:two_heads", "--labels", "0=defect,1=good", "--mask-classes", "1",
              "--out", str(tmp_path / "f"), "--size", "64"])
    assert r.exit_code == 0, r.output
    b = load_bundle(tmp_path / "f")
    assert b.outputs[1].stride == 4 and b.manifest["weights"]["kind"] == "factory"
    assert b.manifest["build"]["arch"] == "tests.export_factories:two_heads"


@pytest.mark.parametrize("args, message", [
    (["classifier", "efficientnet-lite0", "--labels", "0=defect,1=good,2=scratch"], "needs exactly [0, 1]"),
    (["classifier", "efficientnet-lite0", "--labels", "0=a,1=b"], "which of a, b means a good part"),
    (["classifier", "efficientnet-lite0", "--labels", "0=defect,1=good", "--ok-label", "fine"],
     "not one of the labels"),
    (["classifier", "resnet18", "--labels", "0=defect,1=good"], "built on EfficientNet-Lite"),
    (["segmenter", "tests.export_factories:eigen", "--mask-classes", "4", "--weights", "factory"],
     "operator 'aten::linalg_eigh'"),
])
def test_supervised_errors_are_one_clear_message(tmp_path, args, message):
    extra = [] if "--weights" in args else ["--weights", "none", "--width-scale", "0.25"]
    r = _run([*args, "--out", str(tmp_path / "x"), "--size", "64", *extra])
    assert r.exit_code != 0
    assert isinstance(r.exception, ExportError) and message in str(r.exception)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_fit_refuses_a_classifier_bundle_with_a_clear_message(tmp_path):
    from edge.errors import BundleError
    from edge.fitting import fit_inspector

    r = _run(["classifier", "efficientnet-lite0", "--labels", "0=defect,1=good", "--out", str(tmp_path / "c"), *TINY])
    assert r.exit_code == 0, r.output
    with pytest.raises(BundleError, match="classifier bundle without feature taps, not a PaDiM backbone"):
        fit_inspector([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "d.png"], tmp_path / "i", tmp_path / "c")
    assert not (tmp_path / "i").exists()
