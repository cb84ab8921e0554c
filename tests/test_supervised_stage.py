"""Classifier, segmenter and multitask bundles as model stages (edge/supervised), on hand-made
ONNX models whose outputs are known in closed form (tests/tiny_supervised.py)."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.errors import BundleError
from edge.imageio import read_image, read_mask
from edge.records import read_records
from edge.stage import ModelStage, open_stage, run_stage
from edge.supervised import SupervisedStage
from edge.supervised.rle import read_rle_csv, rle_decode

from .tiny_supervised import grey, make_supervised_bundle, with_square


def _sig(x):
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("sup")
    return {k: make_supervised_bundle(root / k, k) for k in ("classifier", "segmenter", "multitask")} | {
        "softmax-seg": make_supervised_bundle(root / "softmax-seg", "segmenter", "softmax")}


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(3)
    g = grey(rng)
    bright, bmask = with_square(g, 255, 8, 12)
    dark, dmask = with_square(g, 0, 40, 36)
    return {"good": g, "bright": bright, "dark": dark, "bmask": bmask > 0, "dmask": dmask > 0}


def _b(img):
    """The models' cell feature: channel mean of the normalised image over 4x4 cells."""
    x = (img.astype(np.float64) / 255 - 0.5) / 0.25
    h, w = img.shape[:2]
    return x.mean(axis=2).reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))


def test_classifier_gives_p_ng_with_defect_as_class_0(bundles, images):
    st = open_stage(bundles["classifier"])
    assert isinstance(st, SupervisedStage) and isinstance(st, ModelStage) and st.kind == "classifier"
    imgs = [images["good"], images["bright"], images["dark"]]
    res = run_stage(st, imgs)
    for img, r in zip(imgs, res):
        logit = 4 * (np.abs(_b(img)).max() - 1)  # defect logit against good's 0, softmax
        want = _sig(logit)  # P(class 0 = defect) = P(NG)
        assert r.raw_score == pytest.approx(want, rel=1e-4)
        assert r.classes["defect"] == pytest.approx(want, rel=1e-4)
        assert r.classes["good"] == pytest.approx(1 - want, rel=1e-4)
        assert r.score == pytest.approx(r.raw_score / 0.5)
        assert r.anomaly_map is None and r.mask is None and not r.class_masks
    assert [r.decision for r in res] == ["OK", "NG", "NG"]
    assert [r.label for r in res] == ["good", "defect", "defect"]
    assert st.threshold == 0.5 and any("no calibration block" in w for w in st.warnings)


def test_calibrated_threshold_moves_the_decision_and_the_id(tmp_path, images):
    # P(NG) of the bright part is ~0.98: a threshold of 0.99 lets it pass
    b = make_supervised_bundle(tmp_path / "c", "classifier",
                               calibration={"method": "validation-f1", "ng_threshold": 0.99, "mask_threshold": 0.5})
    st = open_stage(b)
    r = run_stage(st, [images["bright"]])[0]
    assert r.decision == "OK" and r.label == "good" and r.score == pytest.approx(r.raw_score / 0.99)
    assert not st.warnings and st.id != st.bundle.id and st.describe()["threshold"]["ng"] == 0.99


def test_segmenter_masks_areas_and_min_area(bundles, images):
    st = open_stage(bundles["segmenter"])
    assert st.defect_classes == ["bright", "dark"]
    res = run_stage(st, [images["good"], images["bright"], images["dark"]])
    good, bright, dark = res
    assert good.decision == "OK" and good.areas == {"bright": 0, "dark": 0} and good.label is None
    assert bright.decision == "NG" and bright.label == "bright" and dark.label == "dark"
    for r, cls, gt in ((bright, "bright", images["bmask"]), (dark, "dark", images["dmask"])):
        m = r.class_masks[cls] > 0
        assert r.class_masks[cls].shape == gt.shape and r.mask.shape == gt.shape
        inter = (m & gt).sum()
        assert 2 * inter / (m.sum() + gt.sum()) > 0.85  # the mask is where the square is
        assert r.areas[cls] == m.sum() and r.raw_score == pytest.approx(m.sum())  # 64x64 = the input size
        assert r.score == pytest.approx(m.sum() / st.calibration.min_area[cls])
        assert r.anomaly_map.max() == pytest.approx(_sig(4 * (np.abs(_b(images[cls])).max() - 1)), rel=1e-3)
        assert np.array_equal(r.mask > 0, (r.class_masks["bright"] > 0) | (r.class_masks["dark"] > 0))


def test_segmenter_min_area_is_at_the_input_size_and_scales_with_the_image(tmp_path, images):
    b = make_supervised_bundle(tmp_path / "s", "segmenter",
                               calibration={"method": "test", "min_area": {"bright": 100, "dark": 400}})
    st = open_stage(b)
    big = np.repeat(np.repeat(images["bright"], 2, 0), 2, 1)  # 128x128: 4 image pixels per input pixel
    r_small, r_big = run_stage(st, [images["bright"], big])
    assert r_big.class_masks["bright"].shape == (128, 128)
    assert r_big.areas["bright"] == pytest.approx(4 * r_small.areas["bright"], rel=0.1)
    assert r_big.score == pytest.approx(r_small.score, rel=0.1)
    assert r_small.decision == "NG"  # ~120 px ≥ 100
    assert st.threshold == 100  # the smallest min area; raw = score x threshold
    r_dark = run_stage(st, [images["dark"]])[0]
    assert r_dark.decision == "OK" and r_dark.score == pytest.approx(r_dark.areas["dark"] / 400)


def test_softmax_segmenter_leaves_the_background_out(bundles, images):
    st = open_stage(bundles["softmax-seg"])
    assert st.defect_classes == ["bright"]
    good, bright = run_stage(st, [images["good"], images["bright"]])
    assert set(bright.class_masks) == {"bright"} and bright.decision == "NG" and good.decision == "OK"


def test_multitask_decides_from_the_class_head_and_masks_say_where(bundles, images):
    st = open_stage(bundles["multitask"])
    good, bright = run_stage(st, [images["good"], images["bright"]])
    assert bright.decision == "NG" and bright.raw_score > 0.9 and bright.label == "defect"
    assert bright.areas["bright"] > 100 and good.areas == {"bright": 0, "dark": 0}
    assert st.threshold == 0.5 and good.class_masks["bright"].shape == images["good"].shape[:2]


def test_a_multitask_model_calibrated_to_decide_by_area_decides_as_a_segmenter(images, tmp_path):
    """decide_by "area" (the trainer's choice when the mask areas rank validation better): the areas
    decide against their min areas, P(NG) from the class head is still reported."""
    b = make_supervised_bundle(tmp_path / "mt", "multitask", calibration={
        "method": "validation-f1", "decide_by": "area", "mask_threshold": 0.5, "ng_threshold": 0.5,
        "min_area": {"bright": 100, "dark": 400}})
    st = open_stage(b)
    assert st.decides_by_area and st.threshold == 100 and st.describe()["threshold"]["decides_by"] == "area"
    good, bright, dark = run_stage(st, [images["good"], images["bright"], images["dark"]])
    assert bright.decision == "NG" and bright.label == "bright" and bright.score == pytest.approx(
        bright.areas["bright"] / 100)
    # the class head would call the dark square NG; its 144-px area is under its 400-px minimum
    assert dark.classes["defect"] > 0.9 and dark.decision == "OK" and dark.score == pytest.approx(
        dark.areas["dark"] / 400)
    assert good.decision == "OK" and set(good.classes) == {"defect", "good"}
    # a different decision rule is a different model id
    same = make_supervised_bundle(tmp_path / "mt2", "multitask", calibration={
        "method": "validation-f1", "decide_by": "class", "mask_threshold": 0.5, "ng_threshold": 0.5,
        "min_area": {"bright": 100, "dark": 400}})
    assert open_stage(same).id != st.id and not open_stage(same).decides_by_area
    r = CliRunner().invoke(cli, ["info", str(b)])
    assert r.exit_code == 0 and "decides by the mask areas: NG when a defect class covers" in r.output, r.output
    assert "P(NG) reported" in r.output


@pytest.mark.parametrize("kind", ["segmenter", "multitask"])
def test_a_model_calibrated_to_decide_by_peak_calls_ng_on_any_confident_pixel(images, tmp_path, kind):
    """decide_by "peak" (the trainer's choice when the mask peaks rank validation better than the
    areas): NG when a class's largest probability reaches peak_threshold, whatever its area; the
    masks and areas are reported as before."""
    cal = {"method": "validation-f1", "mask_threshold": 0.5, "min_area": {"bright": 100, "dark": 400}}
    b = make_supervised_bundle(tmp_path / "p", kind, calibration={**cal, "decide_by": "peak", "peak_threshold": 0.9})
    st = open_stage(b)
    assert st.rule == "peak" and st.threshold == 0.9 and st.describe()["threshold"]["decides_by"] == "peak"
    good, bright, dark = run_stage(st, [images["good"], images["bright"], images["dark"]])
    peaks = run_stage(open_stage(make_supervised_bundle(tmp_path / "a", "segmenter", calibration=cal)),
                      [images["dark"]])[0].classes  # a segmenter's classes are its peaks
    # the dark square's 144 px are under its 400-px min area: NG by peak, OK by area
    assert dark.areas["dark"] < 400 and dark.decision == "NG" and dark.label == "dark"
    assert dark.raw_score == pytest.approx(max(peaks.values())) and dark.score == pytest.approx(dark.raw_score / 0.9)
    assert bright.decision == "NG" and good.decision == "OK" and good.score < 1
    assert dark.class_masks["dark"].any() and dark.mask is not None
    if kind == "multitask":
        assert set(good.classes) == {"defect", "good"}  # the class head's probabilities, still reported
    by_area = make_supervised_bundle(tmp_path / "ar", kind, calibration={**cal, "decide_by": "area",
                                                                         "peak_threshold": 0.9})
    assert open_stage(by_area).id != st.id and run_stage(open_stage(by_area), [images["dark"]])[0].decision == "OK"
    r = CliRunner().invoke(cli, ["info", str(b)])
    assert r.exit_code == 0 and "decides by the mask's peak probability: NG when a defect class's peak mask " \
        "probability ≥ 0.900" in r.output and "areas reported (--decide-by area" in r.output, r.output


def test_decide_by_is_refused_where_it_does_not_belong(tmp_path):
    b = make_supervised_bundle(tmp_path / "s", "segmenter", calibration={"method": "x", "decide_by": "class"})
    with pytest.raises(BundleError, match="not a rule of a segmenter .its rules: area, peak"):
        open_stage(b)
    b = make_supervised_bundle(tmp_path / "c", "classifier", calibration={"method": "x", "decide_by": "peak"})
    with pytest.raises(BundleError, match="not a rule of a classifier"):
        open_stage(b)
    b = make_supervised_bundle(tmp_path / "m", "multitask", calibration={"method": "x", "decide_by": "vote"})
    with pytest.raises(BundleError, match="decide_by 'vote'"):
        open_stage(b)


def test_a_class_head_without_an_ok_class_is_refused_with_what_to_do(tmp_path):
    b = make_supervised_bundle(tmp_path / "c", "classifier")
    m = json.loads((b / "manifest.json").read_text())
    m["outputs"][0]["ok_class"] = None
    (b / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="good part") as e:
        open_stage(b)
    assert "--ok-label" in e.value.hint


def test_a_malformed_calibration_block_is_refused(tmp_path):
    b = make_supervised_bundle(tmp_path / "c", "segmenter", calibration={"method": "x", "ng_threshold": 1.5})
    with pytest.raises(BundleError, match="probability"):
        open_stage(b)
    b = make_supervised_bundle(tmp_path / "d", "segmenter", calibration={"method": "x", "min_area": {"rust": 5}})
    with pytest.raises(BundleError, match="rust"):
        open_stage(b)


def test_score_model_cli_writes_records_class_masks_and_rle(bundles, images, tmp_path):
    from edge.imageio import write_png

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("good", "bright", "dark"):
        write_png(folder / f"{name}.png", images[name])
    (folder / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["score", str(folder), "--model", str(bundles["segmenter"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "2 NG" in r.output and "1 ERROR" in r.output
    recs = {rec["image"].rsplit("/", 1)[-1]: rec for rec in read_records(out / "results.jsonl")}
    assert recs["broken.png"]["decision"] == "ERROR"
    br = recs["bright.png"]
    assert br["decision"] == "NG" and br["label"] == "bright" and br["areas"]["bright"] > 100
    assert set(br["classes"]) == {"bright", "dark"} and set(br["class_masks"]) == {"bright", "dark"}
    assert np.array_equal(read_mask(br["class_masks"]["bright"]), read_mask(br["mask"]))
    rows = read_rle_csv(out / "rle.csv")
    assert len(rows) == 3 * 2  # every scored image, every defect class (errors have no masks)
    by = {(i.rsplit("/", 1)[-1], c): e for i, c, e in rows}
    assert by[("good.png", 1)] == "" and by[("bright.png", 2)] == ""
    assert np.array_equal(rle_decode(by[("bright.png", 1)], (64, 64)), read_mask(br["class_masks"]["bright"]))
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0].startswith("ImageId,answer") and len(lines) == 5
    assert any(line.endswith(".png,1,NG," + str(br["score"]) + "," + str(br["raw_score"])) for line in lines)
    assert read_image(out / "overlays" / "bright_overlay.jpg").shape == (64, 64, 3)


def test_score_refuses_both_inspector_and_model(bundles, tmp_path, tiny_inspector_ro):
    r = CliRunner().invoke(cli, ["score", str(tmp_path), "--model", str(bundles["classifier"]),
                                 "--inspector", str(tiny_inspector_ro)])
    assert r.exit_code == 2 and "not both" in r.output


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    from .tiny_supervised import make_square_category

    return make_square_category(tmp_path_factory.mktemp("sq") / "squares")


def test_eval_model_metrics_for_a_segmenter(bundles, squares, tmp_path):
    out = tmp_path / "eval"
    r = CliRunner().invoke(cli, ["eval", str(squares), "--model", str(bundles["segmenter"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    # the hand-made segmenter finds every white and black square and nothing on grey parts
    assert m["kind"] == "segmenter" and m["image_auroc"] == 1.0 and m["macro_f1"] == 1.0
    assert m["confusion"] == {"tp": 6, "fp": 0, "tn": 6, "fn": 0}
    assert 0.8 < m["dice"] <= 1.0 and 0.6 < m["iou"] < m["dice"] and m["n_segmented"] == 6
    assert set(m["per_class"]) == {"bright", "dark"} and m["per_class"]["dark"]["judged_on"] == "test/dark"
    assert m["per_class"]["bright"]["n_images"] == 3 and m["per_class"]["bright"]["dice"] > 0.8
    assert m["threshold"]["min_area"] == {"bright": 5, "dark": 5} and m["threshold"]["pixel"] == 0.5
    for key in ("image_ap", "pixel_auroc", "pro", "f1", "per_kind", "inspector_details"):
        assert key in m  # the PaDiM keys stay, so report.html reads a model's metrics as it reads PaDiM's
    assert "Dice" in r.output and (out / "test-results" / "rle.csv").is_file()


def test_eval_model_for_a_classifier_has_no_pixel_metrics(bundles, squares, tmp_path):
    out = tmp_path / "eval"
    r = CliRunner().invoke(cli, ["eval", str(squares), "--model", str(bundles["classifier"]), "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["image_auroc"] == 1.0 and m["macro_f1"] == 1.0 and m["pixel_auroc"] is None
    assert "dice" not in m and m["threshold"]["ng"] == 0.5
    assert m["inspector_details"]["ok_class"] == "good"


def test_calibrate_model_rewrites_the_block_and_keeps_the_previous_values(tmp_path, squares):
    b = make_supervised_bundle(tmp_path / "c", "classifier",
                               calibration={"method": "validation-f1", "ng_threshold": 0.99, "mask_threshold": 0.5})
    files_before = json.loads((b / "manifest.json").read_text())["files"]
    r = CliRunner().invoke(cli, ["calibrate", str(squares), "--model", str(b), "--method", "f1"])
    assert r.exit_code == 0, r.output
    m = json.loads((b / "manifest.json").read_text())
    cal = m["calibration"]
    assert cal["method"] == "f1" and 0.05 < cal["ng_threshold"] < 0.95  # between good (~0.02) and defect (~0.98)
    assert cal["previous"]["ng_threshold"] == 0.99 and cal["previous"]["method"] == "validation-f1"
    assert cal["validation"]["recall"] == 1.0 and cal["validation"]["false_reject_rate"] == 0.0
    assert m["files"] == files_before and "ng_threshold 0.99 →" in r.output
    st = open_stage(b)  # still hash-valid, and runs with the new threshold
    assert st.threshold == cal["ng_threshold"]
    info = CliRunner().invoke(cli, ["info", str(b)])
    assert info.exit_code == 0 and "method f1" in info.output and "previous" in info.output


def test_calibrate_segmenter_sets_the_min_area(tmp_path, squares):
    b = make_supervised_bundle(tmp_path / "s", "segmenter")
    r = CliRunner().invoke(cli, ["calibrate", str(squares), "--model", str(b), "--method", "recall",
                                 "--target-recall", "1.0"])
    assert r.exit_code == 0, r.output
    cal = json.loads((b / "manifest.json").read_text())["calibration"]
    areas = set(cal["min_area"].values())
    assert len(areas) == 1 and 50 < areas.pop() <= 144  # at most the smallest square's area (12x12)
    assert cal["previous"]["method"] == "default" and cal["validation"]["recall"] == 1.0
    info = CliRunner().invoke(cli, ["info", str(b)])
    assert "decides by the mask areas: NG when a defect class covers its min area" in info.output
    assert "method recall" in info.output


def test_calibrate_switches_what_decides_a_multitask_model(tmp_path, squares):
    b = make_supervised_bundle(tmp_path / "m", "multitask")
    assert not open_stage(b).decides_by_area  # by default the class head decides
    r = CliRunner().invoke(cli, ["calibrate", str(squares), "--model", str(b), "--decide-by", "area",
                                 "--method", "recall", "--target-recall", "1.0"])
    assert r.exit_code == 0, r.output
    assert "decides by the mask areas from now on" in r.output and "min area per defect class" in r.output
    cal = json.loads((b / "manifest.json").read_text())["calibration"]
    assert cal["decide_by"] == "area" and "decide_by" not in cal["previous"] and cal["validation"]["recall"] == 1.0
    st = open_stage(b)
    assert st.decides_by_area and st.threshold == min(cal["min_area"].values())
    r = CliRunner().invoke(cli, ["calibrate", str(squares), "--model", str(b), "--decide-by", "class"])
    assert r.exit_code == 0 and "decides by the class head from now on" in r.output and "ng_threshold" in r.output
    cal = json.loads((b / "manifest.json").read_text())["calibration"]
    assert cal["decide_by"] == "class" and cal["previous"]["decide_by"] == "area"
    r = CliRunner().invoke(cli, ["calibrate", str(squares), "--model", str(b), "--decide-by", "peak",
                                 "--method", "zero-false-reject"])
    assert r.exit_code == 0 and "decides by the mask's peak probability from now on" in r.output, r.output
    cal = json.loads((b / "manifest.json").read_text())["calibration"]
    assert cal["decide_by"] == "peak" and cal["validation"]["false_reject_rate"] == 0.0
    assert open_stage(b).threshold == cal["peak_threshold"] and "peak_threshold" in r.output
    seg = make_supervised_bundle(tmp_path / "s", "segmenter")
    r = CliRunner().invoke(cli, ["calibrate", str(squares), "--model", str(seg), "--decide-by", "class"])
    assert r.exit_code != 0 and "a segmenter decides by area or peak" in r.output


def test_calibrate_switches_a_segmenter_to_its_peak_and_back(tmp_path, squares):
    seg = make_supervised_bundle(tmp_path / "s", "segmenter")
    assert open_stage(seg).rule == "area"  # a segmenter's default
    r = CliRunner().invoke(cli, ["calibrate", str(squares), "--model", str(seg), "--decide-by", "peak",
                                 "--method", "recall", "--target-recall", "1.0"])
    assert r.exit_code == 0, r.output
    cal = json.loads((seg / "manifest.json").read_text())["calibration"]
    assert cal["decide_by"] == "peak" and 0 < cal["peak_threshold"] <= 1 and cal["validation"]["recall"] == 1.0
    st = open_stage(seg)
    assert st.rule == "peak" and st.threshold == cal["peak_threshold"]
    ev = tmp_path / "ev"
    r = CliRunner().invoke(cli, ["eval", str(squares), "--model", str(seg), "--out", str(ev)])
    assert r.exit_code == 0, r.output
    m = json.loads((ev / "metrics.json").read_text())
    assert m["threshold"]["decides_by"] == "peak" and m["threshold"]["peak"] == cal["peak_threshold"]
    assert m["inspector_details"]["decides_by"] == "the mask's peak probability" and m["at_threshold"]
    assert "decided by the mask's peak probability" in r.output
    assert "largest defect probability of any pixel" in (ev / "report.html").read_text(encoding="utf-8")
    r = CliRunner().invoke(cli, ["calibrate", str(squares), "--model", str(seg), "--decide-by", "area"])
    assert r.exit_code == 0 and "decides by the mask areas from now on" in r.output
    assert open_stage(seg).rule == "area"


def _sized_squares(root, n_good=6, n_defect=4, sides=(("bright", 255, 16), ("dark", 0, 8))):
    """MVTec layout whose defect kinds differ in size: big bright squares, small dark ones."""
    from edge.imageio import write_png

    rng = np.random.default_rng(5)
    for sub in ("train/good", "test/good"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        write_png(root / "train" / "good" / f"{i:03d}.png", grey(rng))
        write_png(root / "test" / "good" / f"{i:03d}.png", grey(rng))
    for kind, value, side in sides:
        (root / "test" / kind).mkdir(parents=True)
        (root / "ground_truth" / kind).mkdir(parents=True)
        for i in range(n_defect):
            top, left = (int(v) for v in rng.integers(4, 64 - side - 4, 2))
            img, mask = with_square(grey(rng), value, top, left, side)
            write_png(root / "test" / kind / f"{i:03d}.png", img)
            write_png(root / "ground_truth" / kind / f"{i:03d}_mask.png", mask)
    return root


def test_calibrate_segmenter_sets_a_min_area_per_class(tmp_path):
    cat = _sized_squares(tmp_path / "sized")
    b = make_supervised_bundle(tmp_path / "s", "segmenter")
    r = CliRunner().invoke(cli, ["calibrate", str(cat), "--model", str(b), "--method", "recall",
                                 "--target-recall", "1.0"])
    assert r.exit_code == 0, r.output
    cal = json.loads((b / "manifest.json").read_text())["calibration"]
    areas = cal["min_area"]
    # each class's min area is its own smallest defect: dark squares are 8x8, bright ones 16x16
    assert 20 < areas["dark"] <= 64 + 40 < 150 < areas["bright"] <= 256 + 80, areas
    per = cal["validation"]["per_class"]
    assert per["dark"]["judged_on"] == "good and test/dark" and per["dark"]["n_defect"] == 4
    assert per["bright"]["recall"] == 1.0 and per["dark"]["recall"] == 1.0
    assert per["bright"]["min_area"] == areas["bright"] and cal["validation"]["recall"] == 1.0
    assert "bright" in r.output and "dark" in r.output and "→" in r.output  # one line per class
    # the stage decides with them: every defect caught, no good part rejected
    out = tmp_path / "eval"
    ev = CliRunner().invoke(cli, ["eval", str(cat), "--model", str(b), "--out", str(out)])
    assert ev.exit_code == 0, ev.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["confusion"]["fn"] == 0 and m["confusion"]["fp"] == 0 and m["threshold"]["min_area"] == areas
    recs = list(read_records(out / "test-results" / "results.jsonl"))
    dark_rec = next(x for x in recs if "/dark/" in x["image"])
    assert dark_rec["decision"] == "NG" and dark_rec["label"] == "dark"
    info = CliRunner().invoke(cli, ["info", str(b)])
    assert info.exit_code == 0, info.output
    assert f"bright {areas['bright']}, dark {areas['dark']}" in info.output
    assert "dark: min area" in info.output and "on good and test/dark" in info.output


def test_per_class_min_areas_without_folders_named_like_the_classes():
    from edge.supervised.calibrate import per_class_min_areas

    kinds = ["good"] * 3 + ["crack"] * 2 + ["hole"]
    areas = [{"defect": 0.0}, {"defect": 3.0}, {"defect": 5.0}, {"defect": 40.0}, {"defect": 30.0}, {"defect": 20.0}]
    got, per, _ = per_class_min_areas(areas, kinds, {"defect": 7}, "zero-false-reject", 0.95)
    assert per["defect"]["judged_on"] == "good and every defect" and per["defect"]["n_defect"] == 3
    assert 5 < got["defect"] <= 20 and per["defect"]["recall"] == 1.0  # between the top good and the least defect
    # a class with no folder of its name, beside one that has one, keeps its min area
    kinds2 = ["good"] * 3 + ["crack"] * 3
    areas2 = [{"crack": 0.0, "rust": 9.0}] * 3 + [{"crack": 50.0, "rust": 0.0}] * 3
    got2, per2, _ = per_class_min_areas(areas2, kinds2, {"crack": 1, "rust": 12}, "f1", 0.95)
    assert got2["rust"] == 12 and "no test/rust folder" in per2["rust"]["kept"] and 1 < got2["crack"] <= 50
