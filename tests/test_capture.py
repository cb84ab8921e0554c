"""The capture check: fit records how bright and how contrasted the good images were; an image far
outside that (a failed lamp, a covered lens) gets an ERROR record saying why, in `score`, `eval` and on
the line, and never an OK."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.capture import CaptureRange, measure, parse_tolerance
from edge.cli import cli
from edge.errors import BundleError, ConfigError, ImageError
from edge.inspector import Inspector
from edge.records import read_records

from .runtime_helpers import records


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args):
    r = invoke(*args)
    assert r.exit_code == 0, r.output + (str(r.exception) if r.exception else "")
    return r


def grey(value: float, spread: float, shape=(64, 64), seed=0) -> np.ndarray:
    g = np.random.default_rng(seed).normal(value, spread, shape)
    return np.repeat(np.clip(g, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_the_range_and_its_limits():
    r = CaptureRange.of([(100.0, 20.0), (120.0, 30.0), (110.0, 25.0)], tolerance=0.25)
    assert r.brightness == (100.0, 120.0) and r.contrast == (20.0, 30.0) and r.n == 3
    lo, hi = r.limits("brightness")
    assert lo == pytest.approx(100 / 1.25 - 2) and hi == pytest.approx(120 * 1.25 + 2)
    assert r.problem(grey(110, 25)) is None
    dark = r.problem(grey(25, 6))
    assert dark is not None and "brightness" in dark and "lower than the lowest of the 3 good images" in dark
    bright = r.problem(grey(250, 2))
    assert bright is not None and "higher than the highest" in bright
    flat = r.problem(grey(110, 1))  # lit right, but no contrast: a fogged or covered lens
    assert flat is not None and "contrast" in flat
    assert r.problem(grey(110, 60)) is None  # more contrast (a bold defect on a plain part) is the model's to judge
    with pytest.raises(ImageError, match="capture check") as e:
        r.check(grey(25, 6))
    assert "fit --update" in e.value.hint
    wide = r.widened([(60.0, 15.0)])
    assert wide.brightness == (60.0, 120.0) and wide.contrast == (15.0, 30.0) and wide.n == 4
    assert CaptureRange.from_dict(json.loads(json.dumps(r.to_dict()))) == r


def test_measure_reads_a_big_photo_from_a_sample_of_its_pixels():
    big = grey(90, 30, shape=(2000, 3000), seed=3)
    b, c = measure(big)
    g = cv2.cvtColor(big, cv2.COLOR_BGR2GRAY).astype(np.float64)
    assert b == pytest.approx(g.mean(), abs=1.0) and c == pytest.approx(g.std(), abs=1.0)
    assert measure(big[..., 0]) == pytest.approx((b, c), abs=1.0)  # grey images too


@pytest.mark.parametrize("bad", [{"brightness": [10, 5], "contrast": [1, 2], "n": 3, "tolerance": 0.25},
                                 {"brightness": [1], "contrast": [1, 2], "n": 3, "tolerance": 0.25},
                                 {"contrast": [1, 2], "n": 3, "tolerance": 0.25}])
def test_an_unreadable_range_is_refused(bad):
    with pytest.raises(ValueError):
        CaptureRange.from_dict(bad)


def test_tolerance_option():
    assert parse_tolerance("0.5") == 0.5 and parse_tolerance("off") is None
    for bad in ("-1", "lots", "nan"):
        with pytest.raises(ConfigError):
            parse_tolerance(bad)


@pytest.fixture
def folders(tmp_path, tiny_category):
    """A test folder of two good images as they are and the same two 4x darker."""
    test = tmp_path / "parts"
    test.mkdir()
    for i, p in enumerate(sorted((tiny_category / "test" / "good").glob("*.png"))[:2]):
        img = cv2.imread(str(p))
        cv2.imwrite(str(test / f"ok{i}.png"), img)
        cv2.imwrite(str(test / f"dark{i}.png"), (img * 0.25).astype(np.uint8))
    return tiny_category / "train" / "good", test


def test_fit_records_it_and_score_gives_a_dark_image_an_error(tmp_path, tiny_bundle, folders):
    good, test = folders
    insp = tmp_path / "insp"
    r = ok("fit", "--good", good, "--backbone", tiny_bundle, "--out", insp, "-d", 20, "--aggregate", 1)
    assert "capture check: brightness" in r.output and "is an ERROR (tolerance 0.25)" in r.output
    assert "capture check: brightness" in ok("info", insp).output
    res = tmp_path / "res"
    r = invoke("score", test, "--inspector", insp, "--out", res, "--strict")
    assert r.exit_code == 1  # ERROR fails a strict run, like NG
    assert "2 ERROR" in r.output and "first ERROR (and 1 more" in r.output and "capture check" in r.output
    recs = {Path(x["image"]).stem: x for x in read_records(res / "results.jsonl")}
    assert {recs[f"dark{i}"]["decision"] for i in (0, 1)} == {"ERROR"}
    assert "brightness" in recs["dark0"]["error"] and "lower than the lowest" in recs["dark0"]["error"]
    assert {recs[f"ok{i}"]["decision"] for i in (0, 1)} <= {"OK", "NG"}
    # the same refusal in the API: the stage's tensors refuse it before the model runs
    stage = Inspector.load(insp)
    with pytest.raises(ImageError, match="capture check"):
        stage.tensors([cv2.imread(str(test / "dark0.png"))])


def test_tolerance_off_records_no_check(tmp_path, tiny_bundle, folders):
    good, test = folders
    insp = tmp_path / "insp"
    r = ok("fit", "--good", good, "--backbone", tiny_bundle, "--out", insp, "-d", 20, "--aggregate", 1,
           "--capture-tolerance", "off")
    assert "capture check" not in r.output
    assert "capture check: none" in ok("info", insp).output
    ok("score", test, "--inspector", insp, "--out", tmp_path / "res")
    assert {x["decision"] for x in read_records(tmp_path / "res" / "results.jsonl")} <= {"OK", "NG"}
    assert "no such option" not in invoke("fit", "--capture-tolerance", "bogus", "--good", good).output
    assert invoke("fit", "--good", good, "--backbone", tiny_bundle, "--out", tmp_path / "x",
                  "--capture-tolerance", "bogus").exit_code != 0


def test_update_with_darker_good_images_widens_the_range(tmp_path, tiny_bundle, folders):
    good, test = folders
    insp = tmp_path / "insp"
    ok("fit", "--good", good, "--backbone", tiny_bundle, "--out", insp, "-d", 20, "--aggregate", 1)
    before = Inspector.load(insp, open_runtime=False).capture
    dim = tmp_path / "dim"
    dim.mkdir()
    for i, p in enumerate(sorted(good.glob("*.png"))[:4]):
        cv2.imwrite(str(dim / f"{i}.png"), (cv2.imread(str(p)) * 0.3).astype(np.uint8))
    probe = cv2.imread(str(dim / "0.png"))
    assert before.problem(probe) is not None
    ok("fit", "--good", dim, "--out", insp, "--update")
    after = Inspector.load(insp, open_runtime=False).capture
    assert after.brightness[0] < before.brightness[0] and after.brightness[1] == before.brightness[1]
    assert after.n == before.n + 4 and after.problem(probe) is None


def test_a_damaged_capture_entry_is_refused(tmp_path, tiny_inspector):
    m = json.loads((tiny_inspector / "manifest.json").read_text())
    m["padim"]["capture"] = {"brightness": [200, 10], "contrast": [1, 2], "n": 3, "tolerance": 0.25}
    (tiny_inspector / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(BundleError, match="padim.capture"):
        Inspector.load(tiny_inspector, open_runtime=False)


def test_eval_leaves_refused_images_out_of_the_numbers_and_says_so(tmp_path, tiny_inspector_ro, tiny_category):
    cat = tmp_path / "cat"
    shutil.copytree(tiny_category, cat)
    for p in sorted((cat / "test" / "good").glob("*.png"))[:1]:
        cv2.imwrite(str(p), (cv2.imread(str(p)) * 0.25).astype(np.uint8))
    r = ok("eval", cat, "--inspector", tiny_inspector_ro, "--out", tmp_path / "ev")
    assert "1 test images got an ERROR record" in r.output and "capture check" in r.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["n_errors"] == 1 and m["errors_by_kind"] == {"good": 1} and m["at_threshold"]["n_good"] == 3
    assert "(1 good, 0 defective" in r.output


def test_the_line_gives_a_dark_frame_an_error(tmp_path, tiny_inspector_ro, folders):
    _, test = folders
    out = tmp_path / "out"
    r = ok("run", "--source", f"folder:{test}", "--inspector", tiny_inspector_ro, "--out", out, "--gpio", "sim",
       "--max-frames", "4")
    recs = {Path(x["image"]).stem: x for x in records(out / "decisions.jsonl")}
    assert recs["dark0"]["decision"] == "ERROR" and recs["dark0"]["error"].startswith("capture check:")
    assert recs["ok0"]["decision"] in ("OK", "NG")
    assert "frame refused before inference" in r.output  # the log says so (throttled: a dead lamp refuses all)


def test_the_runtimes_own_probes_are_not_screened_but_parts_are(tiny_inspector_ro):
    """The line's warm-up frame and the cascade's shared-pass check feed the model probes it makes itself
    (flat grey, random noise): a narrow capture range must not refuse them, nor stop a cascade opening."""
    from edge.cascade.stage import same_backbone_input
    from edge.pipeline.model_stages import StageSlot

    a, b = Inspector.load(tiny_inspector_ro), Inspector.load(tiny_inspector_ro)
    for insp in (a, b):
        insp.capture = CaptureRange((10.0, 11.0), (1.0, 2.0), 5, 0.0)  # refuses grey 128 and noise alike
    spec = a.bundle.input
    grey = np.full((spec.height, spec.width, 3), 128, np.uint8)
    with pytest.raises(ImageError, match="capture check: the image's brightness"):
        a.tensors([grey])  # a part like this is refused ...
    assert a.tensors([grey], screen=False).shape[0] == 1  # ... the runtime's own probe is not
    assert same_backbone_input(a, b)  # the shared-pass check runs on a noise probe
    assert StageSlot(lambda: a).current is a  # the warm-up runs on the grey probe
    assert a.capture.brightness == (10.0, 11.0)  # and leaves the range as it was
