"""Reduced-precision inference: used only when it agrees with fp32 on the held-out good images;
a precision that fails is refused with the numbers."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge import precision
from edge.cli import cli
from edge.inspector import Inspector
from edge.precision import parity, spearman

pytest.importorskip("openvino")


def said(r) -> str:
    """What the user reads: the output, and the EdgeError message the program prints on stderr."""
    return r.output + (str(r.exception) if r.exception else "")


def fit(tmp_path, tiny_bundle, tiny_category, *extra):
    out = tmp_path / "insp"
    r = CliRunner().invoke(cli, ["fit", "--good", str(tiny_category / "train" / "good"), "--backbone",
                                 str(tiny_bundle), "--out", str(out), "-d", "16", "--backend", "openvino",
                                 *map(str, extra)])
    return out, r


@pytest.fixture
def has_bf16(monkeypatch):
    """Claim the CPU has bf16 (CI machines may not), so the measurement runs everywhere."""
    monkeypatch.setattr(precision, "reduced_precisions", lambda be: ["bf16"])


@pytest.fixture
def noisy_bf16(monkeypatch, has_bf16):
    """A bf16 that really disagrees: its features carry noise the size of the features themselves."""
    from edge.backends.openvino_backend import OpenVinoBackend

    real = OpenVinoBackend.infer
    rng = np.random.default_rng(0)

    def infer(self, inputs):
        out = real(self, inputs)
        if getattr(self, "compute", "fp32") != "fp32":
            out = {k: v + rng.normal(0, float(v.std()) + 1e-3, v.shape).astype(v.dtype) for k, v in out.items()}
        return out

    monkeypatch.setattr(OpenVinoBackend, "infer", infer)


def test_a_precision_whose_parity_fails_is_refused_with_a_message(tmp_path, tiny_bundle, tiny_category, noisy_bf16):
    out, r = fit(tmp_path, tiny_bundle, tiny_category, "--inference-precision", "bf16")
    assert r.exit_code != 0
    assert "bf16 refused: bf16 disagrees with fp32 on" in said(r) and "rank corr" in said(r)
    assert "runs fp32" in said(r)
    m = json.loads((out / "manifest.json").read_text())
    assert m["inference"]["approved"] == {} and m["inference"]["parity"]["passed"] is False
    # scoring cannot ask for it either
    img = next((tiny_category / "test" / "good").glob("*.png"))
    r = CliRunner().invoke(cli, ["score", str(img), "--inspector", str(out), "--out", str(tmp_path / "o"),
                                 "--inference-precision", "bf16"])
    assert r.exit_code != 0 and "bf16 inference was not approved" in said(r)


def test_auto_falls_back_to_fp32_and_says_so(tmp_path, tiny_bundle, tiny_category, noisy_bf16):
    out, r = fit(tmp_path, tiny_bundle, tiny_category)
    assert r.exit_code == 0, r.output
    assert "inference precision: fp32: bf16 disagrees with fp32" in r.output
    insp = Inspector.load(out, "openvino")
    assert insp.backend.compute == "fp32"


def test_a_precision_that_agrees_is_recorded_and_used_on_that_runtime_only(tmp_path, tiny_bundle, tiny_category,
                                                                          has_bf16, monkeypatch):
    from edge.backends import openvino_backend

    real_init = openvino_backend.OpenVinoBackend.__init__

    def exact(self, *a, **k):  # a bf16 that computes exactly like fp32: parity must pass
        k["hint"] = "f32"
        real_init(self, *a, **k)

    monkeypatch.setattr(openvino_backend.OpenVinoBackend, "__init__", exact)
    out, r = fit(tmp_path, tiny_bundle, tiny_category)
    assert r.exit_code == 0, r.output
    assert "inference precision: bf16 on openvino/cpu: agrees with fp32" in r.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["inference"]["approved"] == {"openvino/cpu": "bf16"}
    p = m["inference"]["parity"]
    assert p["spearman"] == 1.0 and p["decision_agreement"] == 1.0 and p["n_images"] >= 2
    assert Inspector.load(out, "openvino").backend.compute == "bf16"
    assert Inspector.load(out, "onnxruntime").backend.compute == "fp32"  # not measured there
    assert Inspector.load(out, "openvino", inference_precision="fp32").backend.compute == "fp32"


def test_a_runtime_without_reduced_precision_says_so(tmp_path, tiny_bundle, tiny_category):
    out = tmp_path / "insp"
    r = CliRunner().invoke(cli, ["fit", "--good", str(tiny_category / "train" / "good"), "--backbone",
                                 str(tiny_bundle), "--out", str(out), "-d", "16", "--backend", "onnxruntime"])
    assert r.exit_code == 0, r.output
    assert "inference precision: fp32: onnxruntime cpu" in r.output and "has no reduced precision" in r.output
    r = CliRunner().invoke(cli, ["fit", "--good", str(tiny_category / "train" / "good"), "--backbone",
                                 str(tiny_bundle), "--out", str(out), "-d", "16", "--backend", "onnxruntime",
                                 "--inference-precision", "fp16"])
    assert r.exit_code != 0 and "cannot compute in fp16" in said(r)


def test_parity_numbers():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a * 1.001) == pytest.approx(1.0)
    assert spearman(a, a[::-1]) == pytest.approx(-1.0)
    p = parity("bf16", "openvino/cpu", a, a + np.array([0, 0, 0, 1.5]), threshold=5.0)
    assert p.decision_agreement == 0.75 and p.max_score_shift == pytest.approx(0.3) and not p.passed
    assert parity("bf16", "openvino/cpu", a, a * 1.001, threshold=5.0).passed


@pytest.fixture
def exact_bf16(monkeypatch, has_bf16):
    """A bf16 that computes exactly like fp32: parity passes."""
    from edge.backends import openvino_backend

    real_init = openvino_backend.OpenVinoBackend.__init__

    def exact(self, *a, **k):
        k["hint"] = "f32"
        real_init(self, *a, **k)

    monkeypatch.setattr(openvino_backend.OpenVinoBackend, "__init__", exact)


def update(out, images, *extra):
    return CliRunner().invoke(cli, ["fit", "--update", "--good", str(images), "--out", str(out), "--backend",
                                    "openvino", *map(str, extra)])


def test_update_measures_the_approved_precision_again_and_keeps_it(tmp_path, tiny_bundle, tiny_category,
                                                                  exact_bf16, monkeypatch):
    out, r = fit(tmp_path, tiny_bundle, tiny_category)
    assert r.exit_code == 0 and json.loads((out / "manifest.json").read_text())["inference"]["approved"]
    measured = []
    real = precision.measure
    monkeypatch.setattr(precision, "measure", lambda *a, **k: measured.append(len(a[2])) or real(*a, **k))
    r = update(out, tiny_category / "test" / "good")
    assert r.exit_code == 0, said(r)
    assert measured and measured[0] >= 4  # re-measured, on the new images and the old ones still on disk
    assert "inference precision: bf16 on openvino/cpu: agrees with fp32" in r.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["inference"]["approved"] == {"openvino/cpu": "bf16"} and m["inference"]["asked"] == "auto"
    assert m["padim"]["n_images"] == 16 + 4
    assert Inspector.load(out, "openvino").backend.compute == "bf16"


def test_update_drops_a_precision_that_no_longer_agrees_and_says_so(tmp_path, tiny_bundle, tiny_category,
                                                                   exact_bf16, monkeypatch):
    out, r = fit(tmp_path, tiny_bundle, tiny_category, "--inference-precision", "bf16")
    assert r.exit_code == 0, said(r)
    # after the update bf16 disagrees: the update still lands (the images were added), and runs fp32
    monkeypatch.setattr(precision, "parity", lambda p, k, a, b, t: precision.Parity(p, k, len(a), 0.5, 0.9, 0.3,
                                                                                   False))
    r = update(out, tiny_category / "test" / "good")
    assert r.exit_code == 0, said(r)
    assert "inference precision: fp32: bf16 disagrees with fp32" in r.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["inference"]["approved"] == {} and m["padim"]["n_images"] == 20
    assert Inspector.load(out, "openvino").backend.compute == "fp32"
    # naming it on the update refuses it, as fit does
    r = update(out, tiny_category / "test" / "good", "--inference-precision", "bf16")
    assert r.exit_code != 0 and "bf16 refused" in said(r)


def test_update_of_an_fp32_inspector_stays_fp32_without_measuring(tmp_path, tiny_bundle, tiny_category,
                                                                 exact_bf16, monkeypatch):
    out, r = fit(tmp_path, tiny_bundle, tiny_category, "--inference-precision", "fp32")
    assert r.exit_code == 0
    monkeypatch.setattr(precision, "measure", lambda *a, **k: pytest.fail("fp32 was asked; nothing to measure"))
    r = update(out, tiny_category / "test" / "good")
    assert r.exit_code == 0, said(r)
    m = json.loads((out / "manifest.json").read_text())
    assert m["inference"]["note"] == "fp32 as asked" and m["inference"]["approved"] == {}
