"""Texture (position-free) mode, the automatic choice, and what `fit` says about its threshold."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.fitting import FitOptions, fit_inspector
from edge.inspector import Inspector
from edge.metrics import auroc


def _texture_crops(seed: int, n: int, size: int = 64) -> list[np.ndarray]:
    """Crops of one woven-looking texture at random positions and any rotation (an unaligned surface)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    big = 128 + 50 * np.sin(xx / 3.0) * np.sin(yy / 5.0) + rng.normal(0, 8, (256, 256))
    big = cv2.GaussianBlur(big.astype(np.float32), (0, 0), 1.0)
    out = []
    for _ in range(n):
        m = cv2.getRotationMatrix2D((128, 128), float(rng.uniform(0, 360)), 1.0)
        rot = cv2.warpAffine(big, m, (256, 256), borderMode=cv2.BORDER_REFLECT)
        y, x = rng.integers(40, 256 - size - 40, 2)
        out.append(cv2.cvtColor(np.clip(rot[y:y + size, x:x + size], 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    return out


@pytest.fixture(scope="module")
def surface(tmp_path_factory) -> tuple[list[Path], list[np.ndarray], list[np.ndarray]]:
    root = tmp_path_factory.mktemp("surface")
    train = []
    for i, im in enumerate(_texture_crops(0, 8)):
        train.append(root / f"good{i:02d}.png")
        cv2.imwrite(str(train[-1]), im)
    rng = np.random.default_rng(3)
    bad = []
    for im in _texture_crops(2, 6):
        im = im.copy()
        cv2.circle(im, tuple(int(v) for v in rng.integers(20, 44, 2)), 7, (90, 90, 90), -1)
        bad.append(im)
    return train, _texture_crops(1, 6), bad


def test_texture_mode_finds_defects_on_a_shifted_rotated_texture_where_per_position_cannot(
        tmp_path, tiny_bundle, surface):
    train, good, bad = surface
    auc = {}
    for mode in ("aligned", "texture"):
        # per-position statistics as the paper has them (no registration: a texture has no view to register to)
        fit_inspector(train, tmp_path / mode, tiny_bundle, FitOptions(d=20, mode=mode, aggregate=1, batch_size=4,
                                                                      register="off"))
        insp = Inspector.load(tmp_path / mode)
        assert insp.mode == mode
        scores = [r.raw_score for r in insp.inspect(good + bad)]
        auc[mode] = auroc(scores, [0] * len(good) + [1] * len(bad))
    # each position sees 8 crops at random shifts and angles: per-position Gaussians learn nothing
    assert auc["aligned"] < 0.65 and auc["texture"] >= auc["aligned"] + 0.2, auc


def _fit(*args):
    return CliRunner().invoke(cli, ["fit", *map(str, args)], catch_exceptions=False)


def test_the_choice_is_recorded_and_printed_and_mode_overrides_it(tmp_path, tiny_bundle, tiny_category):
    good = tiny_category / "train" / "good"
    r = _fit("--good", good, "--backbone", tiny_bundle, "--out", tmp_path / "auto", "-d", 12)
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    cal = json.loads((tmp_path / "auto" / "calibration.json").read_text())
    chosen = m["padim"]["mode"]
    assert chosen in ("aligned", "texture") and m["padim"]["choice"]["asked"] == "auto"
    assert m["padim"]["choice"]["reason"] in r.output and f"model: {chosen}" in r.output
    cands = cal["model_choice"]["candidates"]
    assert set(cands) == {"aligned", "texture"}
    assert all(0 <= c["synthetic_image_auroc"] <= 1 and c["n_held_out"] == 16 for c in cands.values())
    other = "texture" if chosen == "aligned" else "aligned"
    r = _fit("--good", good, "--backbone", tiny_bundle, "--out", tmp_path / "forced", "-d", 12, "--mode", other)
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "forced" / "manifest.json").read_text())
    assert m["padim"]["mode"] == other and m["padim"]["choice"]["reason"] == f"--mode {other} given"
    assert Inspector.load(tmp_path / "forced").mode == other


def test_each_model_gets_its_own_aggregation_and_the_flag_overrides_it(tmp_path, tiny_bundle, tiny_category):
    """By default aligned statistics see raw cells and the texture model 3x3 averages; the inspector
    records the aggregation of the model it kept, and scoring uses it."""
    from edge.fitting import AGGREGATE_FOR_MODE

    good = tiny_category / "train" / "good"
    for mode in ("aligned", "texture"):
        r = _fit("--good", good, "--backbone", tiny_bundle, "--out", tmp_path / mode, "-d", 12, "--mode", mode)
        assert r.exit_code == 0, r.output
        m = json.loads((tmp_path / mode / "manifest.json").read_text())
        assert m["padim"]["aggregate"] == AGGREGATE_FOR_MODE[mode]
        assert Inspector.load(tmp_path / mode).spec.aggregate == AGGREGATE_FOR_MODE[mode]
    assert AGGREGATE_FOR_MODE == {"aligned": 1, "texture": 3}
    taps = json.loads((Path(tiny_bundle) / "manifest.json").read_text())["taps"]
    m = json.loads((tmp_path / "texture" / "manifest.json").read_text())["padim"]
    assert m["d"] == 12  # -d given: every model uses it
    assert FitOptions().d_for("aligned") == 100 and FitOptions().d_for("texture") is None  # None: every channel
    assert FitOptions(d=12).d_for("texture") == 12
    r = _fit("--good", good, "--backbone", tiny_bundle, "--out", tmp_path / "tex-all", "--mode", "texture")
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "tex-all" / "manifest.json").read_text())["padim"]["d"] == \
        sum(t["channels"] for t in taps)
    r = _fit("--good", good, "--backbone", tiny_bundle, "--out", tmp_path / "auto", "-d", 12)
    m = json.loads((tmp_path / "auto" / "manifest.json").read_text())
    assert m["padim"]["aggregate"] == AGGREGATE_FOR_MODE[m["padim"]["mode"]]
    r = _fit("--good", good, "--backbone", tiny_bundle, "--out", tmp_path / "k3", "-d", 12, "--mode", "aligned",
             "--aggregate", 3)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "k3" / "manifest.json").read_text())["padim"]["aggregate"] == 3


def test_auto_embeds_each_candidate_as_it_would_run_from_one_backbone_pass(tiny_bundle, tiny_category):
    """In auto, each candidate is cross-fitted on the embedding it would score with (aligned: raw
    cells; texture: 3x3 averages), and the backbone runs once for both."""
    from edge.backends import open_backend
    from edge.bundle import load_bundle
    from edge.fitting import _Streamer
    from edge.imageio import read_image
    from edge.padim.embed import embed, make_spec

    bundle = load_bundle(tiny_bundle)
    be = open_backend(bundle, "onnxruntime")
    calls = []
    real = be.infer

    def counting(feeds):
        calls.append(1)
        return real(feeds)

    be.infer = counting
    hw = (bundle.input.height, bundle.input.width)
    specs = {m: make_spec(bundle.taps, hw, 12, 0, k) for m, k in (("aligned", 1), ("texture", 3))}
    imgs = [read_image(p) for p in sorted((tiny_category / "train" / "good").glob("*.png"))[:3]]
    got = _Streamer(be, bundle, specs, 4, None).samples(imgs)
    assert len(calls) == 1
    feats = real({be.input_name: _Streamer(be, bundle, specs, 4, None).tiling.batch(imgs, bundle.input)})
    for mode, spec in specs.items():
        np.testing.assert_array_equal(got[mode], embed(feats, spec))
    assert not np.array_equal(got["aligned"], got["texture"])


def test_fit_on_few_images_prints_the_expected_frr_and_warns(tmp_path, tiny_bundle, tiny_category):
    few = tmp_path / "few"
    few.mkdir()
    for p in sorted((tiny_category / "train" / "good").glob("*.png"))[:10]:
        shutil.copy(p, few / p.name)
    r = _fit("--good", few, "--backbone", tiny_bundle, "--out", tmp_path / "i", "-d", 12, "--target-frr", 0.01)
    assert r.exit_code == 0, r.output
    e = json.loads((tmp_path / "i" / "calibration.json").read_text())["expected_frr"]
    assert e["target"] == 0.01 and e["low"] <= e["value"] <= e["high"] and e["n"] == 10
    assert f"expected false-reject rate {e['value']:.1%} (90% interval {e['low']:.1%}..{e['high']:.1%}" in r.output
    assert "too few for a 1.0% false-reject target" in r.output


def test_update_keeps_the_texture_model(tmp_path, tiny_bundle, tiny_category):
    """--update keeps the model and its features as fitted (here without centring, not the default)."""
    good = sorted((tiny_category / "train" / "good").glob("*.png"))
    fit_inspector(good[:10], tmp_path / "i", tiny_bundle, FitOptions(d=12, mode="texture", batch_size=4,
                                                                     centre="none"))
    before = json.loads((tmp_path / "i" / "calibration.json").read_text())
    new = tmp_path / "new"
    new.mkdir()
    for p in good[10:]:
        shutil.copy(p, new / p.name)
    r = _fit("--good", new, "--out", tmp_path / "i", "--update")
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "i" / "manifest.json").read_text())
    after = json.loads((tmp_path / "i" / "calibration.json").read_text())
    assert m["padim"]["mode"] == "texture" and m["padim"]["n_images"] == 16 and m["padim"]["centre"] == "none"
    assert after["good_scores"]["n"] == before["good_scores"]["n"] + 6 and after["target_frr"] == 0.01
    insp = Inspector.load(tmp_path / "i")
    assert insp.mode == "texture" and insp.stats.factor.shape == (1, 12, 12)  # one shared covariance


def test_eval_says_whether_the_false_rejects_it_saw_fit_what_fit_expected():
    import numpy as np

    from edge.evaluate import at_threshold

    expected = {"value": 0.01, "low": 0.002, "high": 0.024}
    labels = np.r_[np.zeros(20, bool), np.ones(4, bool)]
    one = np.r_[np.eye(1, 20, 0, dtype=bool)[0], np.ones(4, bool)]  # 1 of 20 good rejected, all defects caught
    r = at_threshold(one, labels, expected)
    assert r["false_reject_rate"] == 0.05 and r["recall"] == 1.0 and r["n_good"] == 20
    assert r["consistent_with_expected"]  # one in 20 can come from a 2.4% rate
    five = np.r_[np.arange(20) < 5, np.ones(4, bool)]
    assert not at_threshold(five, labels, expected)["consistent_with_expected"]  # 5 in 20 cannot
    assert "fit --good NEW_OK" in at_threshold(five, labels, expected)["advice"]  # says what to do
    named = at_threshold(five, labels, expected, "lines/l3/insp", "data/bracket")["advice"]
    assert "--out lines/l3/insp --update" in named and "calibrate data/bracket --inspector lines/l3/insp" in named
    assert "advice" not in r
    none = np.r_[np.zeros(20, bool), np.ones(4, bool)]
    assert "advice" not in at_threshold(none, labels, {"value": 0.2, "low": 0.15, "high": 0.3})  # too few: no advice


def test_eval_says_what_to_do_when_good_parts_differ_from_those_fit_saw(tmp_path, tiny_inspector_ro, tiny_category):
    """Good test parts from another lot (here: a coarser, noisier surface, lit as before) are rejected far
    more often than fit expected; eval says so and what to do, in its output and in metrics.json. (A lot
    that is only darker is not it: the texture model centres each image's features on their own mean,
    and a far darker one is the capture check's: test_capture.py.)"""
    cat = tmp_path / "other-lot"
    shutil.copytree(tiny_category, cat)
    for p in (cat / "test" / "good").glob("*.png"):
        img = cv2.imread(str(p))
        noise = np.random.default_rng(0).normal(0, 60, img.shape)
        cv2.imwrite(str(p), np.clip(img + noise, 0, 255).astype(np.uint8))
    r = CliRunner().invoke(cli, ["eval", str(cat), "--inspector", str(tiny_inspector_ro), "--out",
                                 str(tmp_path / "ev")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    t = json.loads((tmp_path / "ev" / "metrics.json").read_text())["at_threshold"]
    assert t["false_reject_rate"] == 1.0 and not t["consistent_with_expected"]
    assert "note: more good parts are rejected than fit expected" in r.output and "--update" in r.output


def test_centring_removes_each_images_own_level_of_every_channel():
    """centre_on_image: each channel of each image minus its mean over the positions; so a per-image
    offset of any channel (another exposure, a denser stretch) changes nothing, and a local bump stays
    the most unusual place of its image."""
    from edge.padim.embed import centre_on_image

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 64))
    x[1, :, 10] += 6.0  # a local defect in image 1
    offset = rng.normal(0, 3, (3, 5, 1))
    a, b = centre_on_image(x.copy()), centre_on_image(x + offset)
    np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_allclose(a.mean(axis=2), 0, atol=1e-9)
    np.testing.assert_allclose(a - x, np.broadcast_to(-x.mean(axis=2, keepdims=True), x.shape), atol=1e-9)
    assert int(np.argmax((a[1] ** 2).sum(axis=0))) == 10


def test_the_texture_model_centres_each_image_by_default_and_the_flag_overrides_it(tmp_path, tiny_bundle,
                                                                                      tiny_category):
    from edge.fitting import CENTRE_FOR_MODE

    assert CENTRE_FOR_MODE == {"aligned": "none", "texture": "image"}
    good = tiny_category / "train" / "good"
    for mode, flag, want in (("texture", (), "image"), ("aligned", (), "none"),
                             ("texture", ("--centre", "none"), "none"), ("aligned", ("--centre", "image"), "image")):
        out = tmp_path / f"{mode}-{want}"
        r = _fit("--good", good, "--backbone", tiny_bundle, "--out", out, "-d", 12, "--mode", mode, *flag)
        assert r.exit_code == 0, r.output
        assert json.loads((out / "manifest.json").read_text())["padim"]["centre"] == want
        insp = Inspector.load(out)
        assert insp.spec.centre == want and insp.describe()["centre"] == want
        said = "each image's channels centred on their own mean"
        assert ("  features: d=12 channels" in r.output) and ((said in r.output) == (want == "image")), r.output
        info = CliRunner().invoke(cli, ["info", str(out)], catch_exceptions=False).output
        assert f"  features: {insp.spec.describe()}" in info and (said in info) == (want == "image"), info
    # the scores come from centred features: the same images through a spec without it differ
    imgs = [cv2.imread(str(p)) for p in sorted(good.glob("*.png"))[:4]]
    insp = Inspector.load(tmp_path / "texture-image")
    with_norm = [r.raw_score for r in insp.inspect(imgs)]
    import dataclasses

    insp.spec = dataclasses.replace(insp.spec, centre="none")
    assert not np.allclose(with_norm, [r.raw_score for r in insp.inspect(imgs)])


def test_an_unknown_centring_is_refused_saying_what_to_do(tmp_path, tiny_inspector):
    from edge.errors import BundleError

    m = json.loads((tiny_inspector / "manifest.json").read_text())
    m["padim"]["centre"] = "wavelet"
    (tiny_inspector / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="unknown feature centring 'wavelet'") as e:
        Inspector.load(tiny_inspector)
    assert "newer than this edge-inspect" in (e.value.hint or "")
