"""edge-export train: tiny models trained for a few steps, the bundle and its manifest blocks,
label maps with defect = 0, module:factory models, and clear errors for folders it cannot use."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402

from edge.bundle import load_bundle, sha256_file  # noqa: E402
from edge.demo_data import make_category  # noqa: E402
from edge.errors import DataError  # noqa: E402
from edge.imageio import read_image  # noqa: E402
from edge.preprocess import batch_tensor  # noqa: E402
from export.cli import cli as export_cli  # noqa: E402
from export.errors import ExportError  # noqa: E402
from export.training.data import augment, augmentations, epoch_order, stratified_split, variants  # noqa: E402
from export.training.validation import Predictions, calibrate, line_f1_threshold  # noqa: E402

from .train_helpers import TINY, labelled_part  # noqa: E402
from .train_helpers import train as _train  # noqa: E402

pytestmark = pytest.mark.export


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    return labelled_part(tmp_path_factory.mktemp("train"), seed=4)


@pytest.fixture(scope="module")
def segmenter(labelled, tmp_path_factory):
    out = tmp_path_factory.mktemp("seg") / "seg"
    r = _train(["segmenter", str(labelled), "--out", str(out), *TINY, "--epochs", "2"])
    assert r.exit_code == 0, r.output
    return out, r.output


def test_segmenter_bundle_carries_calibration_and_recipe(segmenter, labelled):
    out, text = segmenter
    b = load_bundle(out)  # hashes and manifest pass the device's own check
    assert b.kind == "segmenter"
    (o,) = b.outputs
    assert (o.role, o.activation, o.stride, o.label_map) == ("mask", "sigmoid", 4, {0: "defect"})
    m = b.manifest
    cal = m["calibration"]
    assert cal["method"] == "validation-f1" and 0 < cal["mask_threshold"] < 1
    assert set(cal["min_area"]) == {"defect"} and cal["min_area"]["defect"] >= 1
    assert "ng_threshold" not in cal  # a segmenter decides by area
    v = cal["validation"]
    assert v["n"] + m["training"]["data"]["n_train"] == 12 and v["n_defect"] >= 1
    assert {"f1", "macro_f1", "image_auroc", "dice", "confusion"} <= set(v)
    assert sum(v["confusion"].values()) == v["n"]
    tr = m["training"]
    assert tr["data"] == {**tr["data"], "category": "part", "n_images": 12, "n_defect": 4,
                          "kinds": {"good": 8, "spot": 2, "stain": 2}}
    rec = tr["recipe"]
    assert (rec["seed"], rec["epochs"], rec["size"], rec["mask_classes"]) == (0, 2, [64, 64], "one")
    # default: flips only (a positioned part turned by 90 degrees is a part the line never shows)
    assert "Dice" in rec["loss"]["mask_loss"] and rec["augmentations"] == ["hflip", "vflip"]
    assert rec["head_epochs_run"] == 1 and "1 heads-only epochs on cached trunk features" in rec["phases"]
    assert [h["phase"] for h in tr["history"]] == ["heads", "all", "all"]
    assert tr["best_epoch"] in (1, 2, 3) and tr["seconds"] > 0
    # the trained weights sit beside the bundle, recorded by hash
    weights = out.parent / "seg.pth"
    assert m["weights"]["kind"] == "file" and m["weights"]["sha256"] == sha256_file(weights)
    # parity was measured on the folder's own good images
    assert m["parity"]["inputs"]["source"] == "good images from good/"
    assert "validation: F1" in text and "NG when a class's area" in text and "wrote" in text
    v = cal["validation"]
    assert cal["line_good_share"] == 0.9 and 0 <= v["false_reject_rate"] <= 1 and 0 <= v["recall"] <= 1
    assert f"{v['false_reject_rate']:.1%} of good parts rejected" in text and "90% good parts" in text


def test_segmenter_thresholds_reproduce_the_recorded_validation_decisions(segmenter, labelled):
    """The manifest's thresholds, applied to the bundle's own ONNX outputs on the validation files,
    give the confusion counts it records: the device can decide exactly as validation did."""
    import onnxruntime as ort
    from torch.nn import functional as F

    out, _ = segmenter
    b = load_bundle(out)
    cal = b.manifest["calibration"]
    files = b.manifest["training"]["data"]["validation_files"]
    x = batch_tensor([read_image(labelled / f) for f in files], b.input)
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"image": x})[0]
    prob = F.interpolate(torch.sigmoid(torch.from_numpy(logits)), size=x.shape[-2:], mode="bilinear",
                         align_corners=False).numpy()
    area = (prob[:, 0] >= cal["mask_threshold"]).reshape(len(x), -1).sum(1)
    ng = area >= cal["min_area"]["defect"]
    is_defect = np.array([not f.startswith(("train/good", "test/good")) for f in files])
    c = cal["validation"]["confusion"]
    assert (int((ng & is_defect).sum()), int((ng & ~is_defect).sum())) == (c["tp"], c["fp"])


def test_classifier_with_defect_as_class_0(labelled, tmp_path):
    import onnxruntime as ort

    out = tmp_path / "cls"
    r = _train(["classifier", str(labelled), "--out", str(out), "--labels", "0=defect,1=good", *TINY])
    assert r.exit_code == 0, r.output
    b = load_bundle(out)
    (o,) = b.outputs
    assert o.label_map == {0: "defect", 1: "good"} and o.ok_class == 1 and o.activation == "softmax"
    cal = b.manifest["calibration"]
    assert 0 <= cal["ng_threshold"] <= 1 and "min_area" not in cal
    assert b.manifest["training"]["recipe"]["labels"] == {"0": "defect", "1": "good"}
    # P(NG) is the probability of label 0 here: the recorded decisions come back from it
    files = b.manifest["training"]["data"]["validation_files"]
    x = batch_tensor([read_image(labelled / f) for f in files], b.input)
    logits = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"]).run(None,
                                                                                                   {"image": x})[0]
    p_ng = torch.softmax(torch.from_numpy(logits), 1)[:, 0].numpy()
    ng = p_ng >= cal["ng_threshold"]
    is_defect = np.array([not f.startswith(("train/good", "test/good")) for f in files])
    c = cal["validation"]["confusion"]
    assert (int((ng & is_defect).sum()), int((ng & ~is_defect).sum())) == (c["tp"], c["fp"])


def test_multitask_per_kind_mask_classes(labelled, tmp_path):
    out = tmp_path / "mt"
    r = _train(["multitask", str(labelled), "--out", str(out), "--classes", "per-kind", *TINY])
    assert r.exit_code == 0, r.output
    b = load_bundle(out)
    cls, mask = b.outputs
    assert cls.label_map == {0: "good", 1: "defect"} and cls.ok_class == 0
    assert mask.label_map == {0: "spot", 1: "stain"}
    cal = b.manifest["calibration"]
    assert set(cal["min_area"]) == {"spot", "stain"} and "ng_threshold" in cal
    assert set(cal["validation"]["per_class_dice"]) == {"spot", "stain"}


def test_custom_factory_model_trains_exports_and_verifies(labelled, tmp_path):
    out = tmp_path / "f"
    r = _train(["multitask", str(labelled), "--arch", "tests.export_factories:two_heads", "--out", str(out),
                "--size", "64", "--epochs", "1"])
    assert r.exit_code == 0, r.output
    m = load_bundle(out).manifest
    assert m["build"]["arch"] == "tests.export_factories:two_heads" and m["training"]["recipe"]["init"]
    assert m["build"]["tta"] == "flips"  # --tta auto: a mask head trained with flips; verify rebuilds it
    v = CliRunner().invoke(export_cli, ["verify", str(out), "--weights", str(tmp_path / "f.pth")])
    assert v.exit_code == 0, v.output
    assert "all 1 variants verified" in v.output


def _folder(tmp_path, n_defect, masks=True):
    root = make_category(tmp_path / "c", "metal", n_train=4, n_test_good=1, n_per_defect=max(n_defect, 1),
                         defects=("spot",), size=(64, 64), seed=1)
    if n_defect == 0:
        for p in (root / "test" / "spot").iterdir():
            p.unlink()
    if not masks:
        for p in (root / "ground_truth" / "spot").iterdir():
            p.unlink()
    return root


@pytest.mark.parametrize("case, error, message", [
    ("no-defects", DataError, "at least 2 good and 2 defect images"),
    ("no-masks", DataError, "have no ground-truth mask"),
    ("bad-labels", ExportError, "which of part, scrap means a good part"),
])
def test_folders_it_cannot_use_get_one_clear_error_and_write_nothing(tmp_path, case, error, message):
    root = _folder(tmp_path, 0 if case == "no-defects" else 2, masks=case != "no-masks")
    kind = "classifier" if case == "bad-labels" else "segmenter"
    extra = ["--labels", "0=part,1=scrap"] if case == "bad-labels" else []
    r = CliRunner().invoke(export_cli, ["train", kind, str(root), "--out", str(tmp_path / "b"), *extra, *TINY])
    assert r.exit_code != 0 and isinstance(r.exception, error), r.output
    assert message in str(r.exception)
    assert not (tmp_path / "b").exists() and not (tmp_path / "b.pth").exists()


def test_missing_folder_is_a_usage_error(tmp_path):
    r = CliRunner().invoke(export_cli, ["train", "segmenter", str(tmp_path / "nope"), "--out", str(tmp_path / "b")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_help_explains_the_folder_and_the_kinds():
    r = CliRunner().invoke(export_cli, ["train", "--help"])
    assert r.exit_code == 0
    for words in ("ground_truth/<kind>/<name>_mask.png", "segmenter", "validation split", "BUNDLE.pth"):
        assert words in r.output
    r = CliRunner().invoke(export_cli, ["train", "segmenter", "--help"])
    for opt in ("--epochs", "--size", "--seed", "--lr", "--batch-size", "--classes", "--arch"):
        assert opt in r.output


def test_split_is_stratified_seeded_and_covers_everything():
    kinds = tuple(["good"] * 20 + ["crack"] * 4 + ["hole"] * 2 + ["dent"])
    tr, va = stratified_split(kinds, 0.25, seed=3)
    assert sorted(np.r_[tr, va].tolist()) == list(range(len(kinds))) and not set(tr) & set(va)
    held = [kinds[i] for i in va]
    assert held.count("good") == 5 and held.count("crack") == 1 and held.count("hole") == 1
    assert "dent" not in held  # a kind with one image stays in training
    again = stratified_split(kinds, 0.25, seed=3)
    assert (again[0] == tr).all() and (again[1] == va).all()
    assert not (stratified_split(kinds, 0.25, seed=4)[1] == va).all()


def test_oversampling_reaches_the_defect_share():
    is_defect = np.array([False] * 60 + [True] * 6)
    order, repeat = epoch_order(is_defect, 0.35, np.random.default_rng(0))
    share = is_defect[order].mean()
    assert repeat == 5 and 0.3 < share < 0.4
    assert set(order.tolist()) == set(range(66))  # every image is seen


def test_augmentation_moves_the_mask_with_the_image():
    rng = np.random.default_rng(0)
    m = torch.from_numpy(rng.integers(0, 3, size=(16, 8, 8)))
    x = torch.zeros(16, 3, 8, 8)
    x[:, 0] = m.float()  # channel 0 is the mask itself
    x[:, 1] = torch.arange(64.0).view(8, 8)  # a pattern that shows any flip or rotation
    xa, ma = augment(x, m, np.random.default_rng(1), augmentations("flips+rot90", square=True))
    assert torch.equal(xa[:, 0].long(), ma)
    changed = [not torch.equal(xa[i, 1], x[i, 1]) for i in range(16)]
    assert any(changed)
    # every image is one of the 8 turns and mirrors of the square, and they all occur
    seen = {next(j for j, v in enumerate(variants(augmentations("flips+rot90", True)))
                 if torch.equal(xa[i, 1], _variant(x[i, 1], v))) for i in range(16)}
    assert len(seen) > 4
    xs, _ = augment(torch.zeros(4, 3, 8, 16), None, np.random.default_rng(1), augmentations("flips+rot90", False))
    assert xs.shape == (4, 3, 8, 16)  # non-square inputs are only flipped
    xn, mn = augment(x, m, np.random.default_rng(1), augmentations("none", True))
    assert torch.equal(xn, x) and torch.equal(mn, m)


def _variant(t, v):
    from export.training.data import apply_variant
    return apply_variant(t, v)


def test_augment_modes_and_their_variants():
    assert augmentations("flips", True) == ("hflip", "vflip") and augmentations("none", True) == ()
    assert augmentations("flips+rot90", False) == ("hflip", "vflip")
    assert len(variants(())) == 1 and len(variants(("hflip", "vflip"))) == 4
    sq = variants(("hflip", "vflip", "rot90"))
    assert len(sq) == 8 and sq[0] == (False, False, 0)
    pattern = torch.arange(16.0).view(4, 4)  # the 8 symmetries of the square give 8 different pictures
    assert len({tuple(_variant(pattern, v).flatten().tolist()) for v in sq}) == 8


def test_calibration_of_perfect_masks():
    mask = np.zeros((4, 16, 16), np.uint8)
    mask[2, 2:6, 2:6] = 1
    mask[3, 8:12, 8:14] = 1
    prob = (mask[:, None] > 0).astype(np.float16)
    cal = calibrate("segmenter", Predictions(None, prob), np.array([False, False, True, True]), mask, ("defect",))
    v = cal["validation"]
    assert v["f1"] == 1.0 and v["dice"] == 1.0 and v["image_auroc"] == 1.0
    assert 1 <= cal["min_area"]["defect"] <= 16
    json.dumps(cal)  # plain JSON (no NaN, no numpy types)


def test_a_multitask_model_decides_by_the_head_that_ranks_validation_better():
    mask = np.zeros((6, 16, 16), np.uint8)
    mask[3, 2:8, 2:8] = mask[4, 4:10, 4:12] = mask[5, 1:4, 1:4] = 1
    prob = (mask[:, None] > 0).astype(np.float32)  # the mask head finds every defect, on no good part
    is_defect = np.array([False, False, False, True, True, True])
    blind = np.array([0.6, 0.2, 0.5, 0.3, 0.55, 0.1])  # a class head that ranks them worse than chance
    cal = calibrate("multitask", Predictions(blind, prob), is_defect, mask, ("defect",))
    v = cal["validation"]
    assert cal["decide_by"] == "area" and v["image_auroc"] == v["image_auroc_mask_area"] == 1.0
    assert v["image_auroc_class_head"] < 0.5 and v["recall"] == 1.0 and v["false_reject_rate"] == 0.0
    assert "ng_threshold" in cal  # kept: P(NG) is still reported, and calibrate can switch back
    sharp = np.array([0.1, 0.2, 0.15, 0.9, 0.8, 0.95])  # as good as the areas: the class head keeps deciding
    cal = calibrate("multitask", Predictions(sharp, prob), is_defect, mask, ("defect",))
    assert cal["decide_by"] == "class" and cal["validation"]["image_auroc"] == 1.0
    assert "decide_by" not in calibrate("classifier", Predictions(sharp, None), is_defect, None, ())
    json.dumps(cal)


def test_a_segmenter_decides_by_its_peak_when_the_peaks_rank_validation_better():
    """Small defects found with confidence, and a good part with a larger faint false region: the
    areas rank that good part above the defects, the peak probabilities do not."""
    mask = np.zeros((5, 16, 16), np.uint8)
    mask[2, 2:4, 2:4] = mask[3, 5:8, 5:7] = mask[4, 9:13, 9:14] = 1  # 4, 6 and 20 px
    prob = (mask[:, None] > 0).astype(np.float32) * 0.9
    prob[0, 0, 0:5, 0:6] = 0.6  # a good part: 30 faint pixels
    is_defect = np.array([False, False, True, True, True])
    cal = calibrate("segmenter", Predictions(None, prob), is_defect, mask, ("defect",))
    v = cal["validation"]
    assert cal["decide_by"] == "peak" and v["image_auroc"] == v["image_auroc_mask_peak"] == 1.0
    assert v["image_auroc_mask_area"] < 1.0 and "image_auroc_class_head" not in v
    assert 0.6 < cal["peak_threshold"] <= 0.9 and v["recall"] == 1.0 and v["false_reject_rate"] == 0.0
    assert v["dice"] == 1.0 and "min_area" in cal  # the masks, and the area rule's threshold, are kept
    prob[0, 0, 0:5, 0:6] = 0.0  # no false region: areas and peaks rank alike, and the area rule (first) stays
    cal = calibrate("segmenter", Predictions(None, prob), is_defect, mask, ("defect",))
    assert cal["decide_by"] == "area" and cal["validation"]["image_auroc_mask_peak"] == 1.0
    json.dumps(cal)


def test_line_weighted_threshold_rejects_fewer_good_parts_than_plain_f1():
    # a defect-heavy validation split: 6 good, 12 defective; two good parts have some area
    good = np.array([0, 0, 0, 0, 30.0, 45.0])
    bad = np.array([20, 25, 40, 60, 70, 80, 90, 100, 110, 120, 130, 140.0])
    scores, pos = np.r_[good, bad], np.r_[np.zeros(6, bool), np.ones(12, bool)]
    plain = line_f1_threshold(scores, pos, good_share=6 / 18)  # weights as the folder holds them: plain F1
    line = line_f1_threshold(scores, pos, good_share=0.9)
    assert plain < 25 and line > 45  # plain F1 takes both good parts to catch two more defects
    # with equal counts and an even mix every image weighs the same: this is plain F1
    from edge.threshold import labelled_threshold
    s2, p2 = np.r_[good, bad[:6]], np.r_[np.zeros(6, bool), np.ones(6, bool)]
    assert line_f1_threshold(s2, p2, 0.5) == labelled_threshold(s2, p2, "f1")[0]


def test_validation_reports_the_false_reject_rate_at_the_line_mix():
    mask = np.zeros((6, 16, 16), np.uint8)
    mask[3, 2:8, 2:8] = mask[4, 4:10, 4:12] = mask[5, 1:4, 1:4] = 1
    prob = (mask[:, None] > 0).astype(np.float32)
    prob[0, 0, :5, :5] = 1.0  # a good image with a 25-pixel blob: as large as the smallest defect, 9 px
    is_defect = np.array([False, False, False, True, True, True])
    heavy = calibrate("segmenter", Predictions(None, prob), is_defect, mask, ("defect",), good_share=0.5)
    line = calibrate("segmenter", Predictions(None, prob), is_defect, mask, ("defect",), good_share=0.95)
    assert heavy["min_area"]["defect"] <= 9
    assert heavy["validation"]["false_reject_rate"] == pytest.approx(1 / 3, abs=1e-3)
    assert line["min_area"]["defect"] > 25 and line["validation"]["false_reject_rate"] == 0.0
    assert line["validation"]["recall"] == pytest.approx(2 / 3, abs=1e-3) and line["line_good_share"] == 0.95


def test_heads_on_cached_trunk_features_compute_what_the_network_does():
    from export.training.data import variants as vs
    from export.training.head_phase import build_cache, head_outputs, split_network
    from export.training.network import build_trainable
    from export.training.request import TrainRequest
    from export.training.trainer import model_request

    for kind in ("segmenter", "multitask", "classifier"):
        req = TrainRequest(kind, "x", weights="none", width_scale=0.25, size=(64, 64))
        t = build_trainable(model_request(req, ("defect",) if kind != "classifier" else ()), 8)
        net = t.model.module.net.eval()
        split = split_network(net)
        x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
        mask = np.zeros((3, 64, 64), np.uint8)
        mask[:, :8, :4] = 1
        with torch.no_grad():
            direct = t.model.module.outputs(torch.from_numpy(x))  # one pass, no test-time flips
            assert all(torch.allclose(a, b) for a, b in zip(split.heads(split.trunk(torch.from_numpy(x))), direct))
            cache = build_cache(split, x, mask, vs(("hflip", "vflip")))
            flipped = t.model.module(torch.from_numpy(x))  # what the exported model answers
        (got,) = head_outputs(split, cache)
        assert len(got) == len(direct) and all(torch.allclose(a, b, atol=2e-2) for a, b in zip(got, direct))
        assert t.model.module.tta == ("none" if kind == "classifier" else "flips")  # --tta auto
        (got,) = head_outputs(split, cache, tta=True)  # the validation of heads-only epochs
        assert all(torch.allclose(a, b, atol=2e-2) for a, b in zip(got, flipped))
        _, m = cache.batch(np.array([0, 1]), np.array([1, 2]))  # left-right, then up-down mirrored masks
        assert m[0, :8, -4:].all() and m[1, -8:, :4].all() and cache.nbytes > 0


def test_augment_option_and_phases_through_the_cli(labelled, tmp_path):
    out = tmp_path / "s"
    r = _train(["segmenter", str(labelled), "--out", str(out), *TINY, "--augment", "flips+rot90",
                "--head-epochs", "2", "--epochs", "0"])
    assert r.exit_code == 0, r.output
    tr = load_bundle(out).manifest["training"]
    assert tr["recipe"]["augmentations"] == ["hflip", "vflip", "rot90"] and tr["recipe"]["augment"] == "flips+rot90"
    assert [h["phase"] for h in tr["history"]] == ["heads", "heads"]
    assert "2 heads-only + 0 whole-network epochs" in r.output
    bad = _train(["segmenter", str(labelled), "--out", str(tmp_path / "b"), *TINY, "--head-epochs", "0",
                  "--epochs", "0"])
    assert bad.exit_code != 0 and "not both 0" in str(bad.exception)


def test_pasted_defects_are_a_training_defect_on_a_good_image_with_its_mask():
    from pathlib import Path

    from export.training.data import TrainingSet, concat, transplant

    rng = np.random.default_rng(0)
    n, h, w = 6, 32, 32
    x = rng.normal(size=(n, 3, h, w)).astype(np.float32)
    mask = np.zeros((n, h, w), np.uint8)
    mask[3, 5:12, 8:20] = 1  # images 3..5 are defects
    mask[4, 20:30, 2:6] = 1
    mask[5, 0:3, 0:32] = 1
    is_defect = np.array([False, False, False, True, True, True])
    ts = TrainingSet(x, is_defect, ("good",) * 3 + ("spot",) * 3, mask, ("defect",),
                     tuple(Path(f"/d/{i}.png") for i in range(n)))
    out = transplant(ts, 10, np.random.default_rng(1))
    assert len(out) == 10 and out.is_defect.all() and out.kinds == ("spot",) * 10
    again = transplant(ts, 10, np.random.default_rng(1))
    np.testing.assert_array_equal(out.x, again.x)  # seeded
    for k in range(10):
        d = int(Path(str(out.paths[k]).split("+")[0]).stem)
        g = int(Path(str(out.paths[k]).split("+")[1]).stem)
        assert is_defect[d] and not is_defect[g]
        inside = mask[d] > 0
        np.testing.assert_array_equal(out.mask[k], mask[d])
        np.testing.assert_allclose(out.x[k][:, inside], x[d][:, inside], atol=1e-6)  # the defect as it was
        rim = cv2_dilate(inside, 6)
        np.testing.assert_allclose(out.x[k][:, ~rim], x[g][:, ~rim], atol=1e-4)  # the good image elsewhere
    both = concat(ts, out)
    assert len(both) == 16 and both.is_defect.sum() == 13 and both.mask.shape == (16, h, w)
    with pytest.raises(DataError, match="masks"):
        transplant(TrainingSet(x, is_defect, ts.kinds, None, (), ts.paths), 2, rng)


def cv2_dilate(m, r):
    import cv2

    return cv2.dilate(m.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8)) > 0


def test_paste_option_records_the_pasted_images(labelled, tmp_path):
    out = tmp_path / "s"
    r = _train(["segmenter", str(labelled), "--out", str(out), *TINY, "--paste", "1", "--epochs", "0"])
    assert r.exit_code == 0, r.output
    tr = load_bundle(out).manifest["training"]
    real_train = tr["data"]["n_train"] - tr["data"]["n_pasted"]
    assert tr["recipe"]["paste"] == 1.0 and tr["data"]["n_pasted"] > 0
    assert real_train + tr["data"]["n_validation"] == tr["data"]["n_images"]  # validation stays real
    bad = _train(["classifier", str(labelled), "--out", str(tmp_path / "c"), *TINY, "--paste", "1"])
    assert bad.exit_code != 0 and "needs defect masks" in str(bad.exception)
