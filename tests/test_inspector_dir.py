"""The inspector directory's owner (edge/inspector_dir.py): a damaged manifest is refused, naming the entry."""

import json
import shutil

import pytest

from edge.bundle import MANIFEST, write_json
from edge.errors import BundleError
from edge.inspector import Inspector
from edge.inspector_dir import Calibration, replace_calibration, set_manifest_entry


@pytest.mark.parametrize("key, value, says", [
    ("padim", None, "padim is null"),
    ("backbone", None, "backbone is null"),
    ("thresholds", [1, 2], "thresholds is a list"),
    ("inference", 3, "inference is a int"),
    ("padim.grid", "x", "padim.grid is 'x'"),
    ("padim.grid", [0, 4], "padim.grid is [0, 4]"),
    ("padim.tiling", 3, "padim.tiling is 3"),
    ("padim.blur_sigma", "a", "padim.blur_sigma is 'a'"),
    ("padim.aggregate", True, "padim.aggregate is True"),
    ("backbone.input", 7, "backbone.input is 7"),
    ("backbone.input", [64], "backbone.input is [64]"),
])
def test_a_malformed_manifest_entry_is_refused_by_name(tiny_inspector, key, value, says):
    m = json.loads((tiny_inspector / MANIFEST).read_text())
    top, _, sub = key.partition(".")
    if sub:
        m[top][sub] = value
    else:
        m[top] = value
    write_json(tiny_inspector / MANIFEST, m)
    with pytest.raises(BundleError, match="malformed") as e:
        Inspector.load(tiny_inspector, open_runtime=False)
    assert says in str(e.value) and "refit" in e.value.hint


def test_calibration_and_manifest_entries_are_replaced_through_the_owner(tiny_inspector):
    before = Inspector.load(tiny_inspector, open_runtime=False)
    cal = Calibration(before.threshold * 2, before.calibration.pixel_threshold, "zero-false-reject", {"note": "x"})
    replace_calibration(tiny_inspector, cal)
    after = Inspector.load(tiny_inspector, open_runtime=False)  # every hash still verifies
    assert after.threshold == pytest.approx(before.threshold * 2) and after.id != before.id
    assert after.describe()["threshold"]["method"] == "zero-false-reject"
    set_manifest_entry(tiny_inspector, "inference", {"approved": {}, "note": "fp32: measured"})
    assert Inspector.load(tiny_inspector, open_runtime=False).describe()["inference"] == "fp32: measured"
    with pytest.raises(ValueError, match="derived"):
        set_manifest_entry(tiny_inspector, "files", {})
    shutil.rmtree(tiny_inspector)


def test_held_out_good_scores_are_what_fit_recorded():
    cal = Calibration(2.0, 2.0, "good-crossfit", {"good_scores": {"values": [1.0, float("nan"), 1.5, 1.7, 1.2]}})
    assert cal.held_out_good_scores().tolist() == [1.0, 1.5, 1.7, 1.2]  # a non-finite value is left out
    assert Calibration(2.0, 2.0, "f1", {"good_scores": {"values": [1.0, 1.5]}}).held_out_good_scores() is None
    assert Calibration(2.0, 2.0, "f1").held_out_good_scores() is None
