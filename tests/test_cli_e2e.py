"""The user's path through the CLI: fit → score → eval → calibrate → info, on planted defects."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.records import read_records


def run(*args, ok=True):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert r.exit_code == 0, r.output
    return r


@pytest.fixture
def fitted(tmp_path, tiny_bundle, tiny_category):
    insp = tmp_path / "inspector"
    r = run("fit", "--good", tiny_category / "train" / "good", "--backbone", tiny_bundle, "--out", insp, "-d", 20,
            "--aggregate", 1, "--target-frr", 0.05)  # the tiny 16x16 grid is too coarse for a 3x3 average
    assert "inspector written to" in r.output and "image threshold" in r.output
    assert "fitted on 16 good images; 16 of them scored by statistics that never saw them" in r.output
    assert "expected false-reject rate" in r.output and "model: " in r.output
    return insp


def test_fit_then_score_finds_planted_defects_and_masks_overlap(tmp_path, fitted, tiny_category):
    out = tmp_path / "out"
    r = run("score", tiny_category / "test", "--inspector", fitted, "--out", out, "--save-maps")
    recs = {Path(x["image"]).relative_to(tiny_category / "test").as_posix(): x for x in read_records(out / "results.jsonl")}
    assert len(recs) == 10
    for name, rec in recs.items():
        kind = name.split("/")[0]
        assert rec["decision"] == ("OK" if kind == "good" else "NG"), (name, rec["score"])
        assert (rec["score"] >= 1.0) == (rec["decision"] == "NG")
        mask = cv2.imread(rec["mask"], cv2.IMREAD_GRAYSCALE)
        amap = np.load(rec["anomaly_map"])
        assert mask.shape == amap.shape == (64, 64) and amap.dtype == np.float32
        assert set(np.unique(mask)) <= {0, 255}
        if kind != "good":
            gt = cv2.imread(str(tiny_category / "ground_truth" / kind / (Path(name).stem + "_mask.png")), 0) > 0
            assert (gt & (mask > 0)).sum() > 0, f"mask misses the planted {kind} in {name}"
            assert Path(rec["overlay"]).is_file()
        else:
            assert not mask.any()
    ng = (out / "ng_list.txt").read_text().split()
    assert len(ng) == 6 and all("good" not in p for p in ng)
    assert "10 images: 4 OK, 6 NG, 0 ERROR" in r.output
    csv = (out / "results.csv").read_text().splitlines()
    assert csv[0].startswith("ImageId,answer") and len(csv) == 11


def test_corrupt_image_gets_error_record_and_run_goes_on(tmp_path, fitted, tiny_category):
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    img = cv2.imread(str(next((tiny_category / "test" / "good").glob("*.png"))))
    cv2.imwrite(str(src / "fine.png"), img)
    out = tmp_path / "out"
    r = run("score", src, "--inspector", fitted, "--out", out)
    recs = read_records(out / "results.jsonl")
    by = {Path(x["image"]).name: x for x in recs}
    assert by["broken.png"]["decision"] == "ERROR" and "cannot decode" in by["broken.png"]["error"]
    assert by["fine.png"]["decision"] == "OK"
    assert "1 ERROR" in r.output
    r2 = run("score", src, "--inspector", fitted, "--out", tmp_path / "o2", "--strict", ok=False)
    assert r2.exit_code == 1


def test_score_with_missing_inspector_says_what_to_do(tmp_path, tiny_category):
    r = subprocess.run([sys.executable, "-m", "edge", "score", str(tiny_category / "test"), "--inspector",
                        str(tmp_path / "nope")], capture_output=True, text=True)
    assert r.returncode == 3
    assert "does not exist" in r.stderr and "edge-inspect fit" in r.stderr and "Traceback" not in r.stderr


def test_fit_without_backbone_explains_how_to_get_one(tmp_path, tiny_category):
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "empty")}
    r = subprocess.run([sys.executable, "-m", "edge", "fit", "--good", str(tiny_category / "train" / "good"),
                        "--out", str(tmp_path / "i")], capture_output=True, text=True, env=env)
    assert r.returncode == 3, r.stderr
    assert "does not exist" in r.stderr and "edge-export backbone" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "i").exists()


def test_eval_writes_metrics_and_pictures(tmp_path, tiny_bundle, tiny_category):
    out = tmp_path / "ev"
    r = run("eval", tiny_category, "--backbone", tiny_bundle, "--out", out, "-d", 20, "--target-frr", 0.05,
            "--aggregate", 1)
    m = json.loads((out / "metrics.json").read_text())
    for k in ("image_auroc", "pixel_auroc", "pro", "f1", "macro_f1", "confusion", "per_kind"):
        assert k in m
    assert m["image_auroc"] == 1.0 and m["pixel_auroc"] > 0.9 and m["pro"] > 0.5
    assert m["per_kind"]["spot"]["detection_rate"] == 1.0 and m["per_kind"]["good"]["false_reject_rate"] == 0
    assert (out / "inspector" / "manifest.json").is_file()
    for pic in ("roc.png", "scores.png"):
        assert cv2.imread(str(out / pic)) is not None
    assert "image AUROC 1.000" in r.output


@pytest.mark.parametrize("method", ["f1", "zero-false-reject", "recall"])
def test_calibrate_with_labels_rewrites_thresholds(tmp_path, tiny_inspector, tiny_category, method):
    before = json.loads((tiny_inspector / "calibration.json").read_text())
    r = run("calibrate", tiny_category, "--inspector", tiny_inspector, "--method", method, "--out", tmp_path / "c")
    after = json.loads((tiny_inspector / "calibration.json").read_text())
    assert after["method"] == method and after["previous"]["image_threshold"] == before["image_threshold"]
    assert after["recall"] == 1.0 and after["false_reject_rate"] == 0.0  # separable planted defects
    run("info", tiny_inspector)  # hashes still verify after the rewrite
    assert "image threshold" in r.output


def test_fit_update_adds_images_without_old_ones(tmp_path, tiny_inspector, tiny_category):
    m0 = json.loads((tiny_inspector / "manifest.json").read_text())
    (tiny_inspector.parent / "cal0.json").write_text((tiny_inspector / "calibration.json").read_text())
    extra = tmp_path / "more"
    extra.mkdir()
    for p in sorted((tiny_category / "test" / "good").glob("*.png")):
        (extra / p.name).write_bytes(p.read_bytes())
    run("fit", "--good", extra, "--out", tiny_inspector, "--update")
    m1 = json.loads((tiny_inspector / "manifest.json").read_text())
    assert m1["padim"]["n_images"] == m0["padim"]["n_images"] + 4
    cal = json.loads((tiny_inspector / "calibration.json").read_text())
    cal0 = json.loads((tiny_inspector.parent / "cal0.json").read_text())
    # the new images were scored unseen and joined the good-score distribution
    assert cal["good_scores"]["n"] == cal0["good_scores"]["n"] + 4 and cal["updates"] == 1


@pytest.mark.parametrize("mode", ["aligned", "texture"])
def test_update_equals_fitting_everything_at_once(tmp_path, tiny_bundle, tiny_category, mode):
    """Streaming + --update gives the same statistics as one fit over all the images."""
    from edge.padim.stats import GaussianStats

    train = sorted((tiny_category / "train" / "good").glob("*.png"))
    a, b = tmp_path / "a", tmp_path / "b"
    part = tmp_path / "part"
    part.mkdir()
    for p in train[:10]:
        (part / p.name).write_bytes(p.read_bytes())
    rest = tmp_path / "rest"
    rest.mkdir()
    for p in train[10:]:
        (rest / p.name).write_bytes(p.read_bytes())
    # whether to register is fit's choice from the images it has (update keeps it): the same for both here
    run("fit", "--good", part, "--backbone", tiny_bundle, "--out", a, "-d", 20, "--mode", mode, "--register", "off")
    run("fit", "--good", rest, "--out", a, "--update")
    run("fit", "--good", tiny_category / "train" / "good", "--backbone", tiny_bundle, "--out", b, "-d", 20,
        "--mode", mode, "--register", "off")
    sa, sb = GaussianStats.load(a / "stats.npz"), GaussianStats.load(b / "stats.npz")
    assert sa.n == sb.n == 16
    np.testing.assert_allclose(sa.mean, sb.mean, atol=1e-4)
    np.testing.assert_allclose(sa.factor, sb.factor, rtol=1e-3, atol=1e-3)


def test_info_on_bundle_and_inspector(tiny_bundle, fitted):
    r = run("info", tiny_bundle)
    assert "tap s4: stride 4, 8 channels" in r.output and "all SHA-256 hashes match" in r.output
    r = run("info", fitted)
    assert "PaDiM: d=20" in r.output
    assert "scoring on this machine: " in r.output and ("native kernel" in r.output or "numpy bands" in r.output)


def test_factor_precision_fp16_and_fp32_decide_alike(tmp_path, fitted, tiny_category):
    recs = {}
    for prec in ("fp32", "fp16", "auto"):
        run("score", tiny_category / "test", "--inspector", fitted, "--out", tmp_path / prec,
            "--factor-precision", prec)
        recs[prec] = {x["image"]: x for x in read_records(tmp_path / prec / "results.jsonl")}
    assert len(recs["fp32"]) == 10
    for prec in ("fp16", "auto"):
        for img, r32 in recs["fp32"].items():
            assert recs[prec][img]["decision"] == r32["decision"]
            assert recs[prec][img]["score"] == pytest.approx(r32["score"], rel=2e-3)
    r = run("score", tiny_category / "test", "--inspector", fitted, "--out", tmp_path / "x",
            "--factor-precision", "fp8", ok=False)
    assert r.exit_code == 2 and "'fp8' is not one of" in r.output


def test_help_explains_scores():
    r = run("--help")
    assert "1.0 is the" in r.output and "threshold" in r.output
    for cmd in ("fit", "score", "eval", "calibrate", "info", "demo-data"):
        assert run(cmd, "--help").exit_code == 0


def test_demo_data_layout(tmp_path):
    run("demo-data", tmp_path, "--train", 3, "--test-good", 1, "--per-defect", 1, "--size", 32)
    root = tmp_path / "metal"
    assert len(list((root / "train" / "good").glob("*.png"))) == 3
    for kind in ("scratch", "spot", "crack", "stain"):
        assert (root / "ground_truth" / kind / "000_mask.png").is_file()


def test_score_through_openvino_backend_and_append_note(tmp_path, fitted, tiny_category):
    pytest.importorskip("openvino")
    out = tmp_path / "out"
    run("score", tiny_category / "test" / "spot", "--inspector", fitted, "--out", out, "--backend", "openvino")
    recs = read_records(out / "results.jsonl")
    assert len(recs) == 3 and all(r["decision"] == "NG" for r in recs)
    r = CliRunner().invoke(cli, ["score", str(tiny_category / "test" / "spot"), "--inspector", str(fitted),
                                 "--out", str(out)])
    assert r.exit_code == 0 and "appending to" in r.output
    assert len(read_records(out / "results.jsonl")) == 6


def test_inspector_scores_with_the_variant_it_was_fitted_on(tmp_path, tiny_bundle, tiny_category):
    """Statistics describe one model variant's features; scoring picks that variant by default and
    warns when told to run another."""
    import shutil

    from edge.bundle import write_backbone_manifest

    b = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, b)
    shutil.copy(b / "model.onnx", b / "model_fp16.onnx")  # plumbing test: same weights, declared fp16
    m = json.loads((b / "manifest.json").read_text())
    write_backbone_manifest(b, name=m["name"], input_spec=m["input"], taps=m["taps"], weights=m["weights"],
                            models=m["models"] + [{"format": "onnx", "precision": "fp16",
                                                   "path": "model_fp16.onnx"}])
    insp = tmp_path / "insp"
    run("fit", "--good", tiny_category / "train" / "good", "--backbone", b, "--out", insp, "-d", 20,
        "--precision", "fp16")
    man = json.loads((insp / "manifest.json").read_text())
    assert man["backbone"]["fitted_with"] == "onnx/fp16"
    assert "fitted with onnx/fp16" in run("info", insp).output
    r = run("score", tiny_category / "test" / "spot", "--inspector", insp, "--out", tmp_path / "o1")
    assert "warning" not in r.output
    r = run("score", tiny_category / "test" / "spot", "--inspector", insp, "--out", tmp_path / "o2",
            "--precision", "fp32")
    assert "warning: the statistics were fitted on onnx/fp16 features but onnx/fp32 runs now" in r.output
