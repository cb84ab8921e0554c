"""The accuracy benchmark's bookkeeping: means, target verdicts, what it reads from fit's calibration."""

import json

import pytest

from benchmarks.accuracy_report import Row, means, per_kind_table, table, verdicts


def _row(cat, kind, n, img, frr, recall, lo=None, hi=None):
    return Row(cat, kind, n, img, img, frr, recall, 30, 48, img - 0.01, img - 0.02,
               expected_frr=None if lo is None else (lo + hi) / 2, expected_lo=lo, expected_hi=hi,
               per_kind=(("scratch", recall),))


ROWS = [_row("a", "aligned", 80, 0.96, 0.0, 0.9, 0.0, 0.05), _row("b", "surface", 80, 0.94, 0.1, 0.7, 0.0, 0.02),
        _row("a", "aligned", 20, 0.90, 0.0, 0.8), _row("b", "surface", 20, 0.92, 0.0, 0.7)]


def test_means_and_verdicts_follow_the_numbers():
    m = means([r for r in ROWS if r.n == 80])
    assert m["image_auroc"] == pytest.approx(0.95) and m["frr"] == pytest.approx(0.05)
    v80, v20 = verdicts(ROWS)
    assert v80.startswith("N=80") and "image AUROC 0.950 (≥ 0.950: met)" in v80
    assert "good rejected 5.0% (≤ 2.0%: NOT met)" in v80 and "defects caught 80.0% (≥ 80.0%: met)" in v80
    assert "image AUROC 0.910 (≥ 0.890: met)" in v20 and "defects caught 75.0% (≥ 70.0%: met)" in v20


def test_expected_frr_is_checked_against_the_count_not_the_rate():
    r = _row("a", "aligned", 20, 0.9, 0.0, 0.8, 0.003, 0.022)
    assert r.expected_holds  # 0 of 30 rejected is likely at a 1% rate
    assert not _row("a", "aligned", 20, 0.9, 4 / 30, 0.8, 0.003, 0.022).expected_holds
    assert _row("a", "aligned", 20, 0.9, 0.0, 0.8).expected_holds is None


def test_table_has_a_row_per_category_and_means():
    t = table(ROWS)
    assert t.count("| a (aligned) |") == 2 and "**mean, surface**" in t and t.count("**mean**") == 2
    assert "consistent on 1/2" in t  # b: 3 of 30 is too many for any rate in [0%, 2%]
    assert "| scratch |" in per_kind_table(ROWS)


def test_expected_frr_and_choice_are_read_when_fit_records_them(tmp_path):
    pytest.importorskip("cv2")
    from benchmarks.accuracy import chosen_variant, expected_frr

    assert expected_frr({"image_threshold": 1.0}) == (None, None, None)
    assert expected_frr({"expected_frr": {"estimate": 0.01, "interval": [0.002, 0.04]}}) == (0.01, 0.002, 0.04)
    assert expected_frr({"expected_frr": 0.02, "expected_frr_interval": [0.01, 0.05]}) == (0.02, 0.01, 0.05)
    (tmp_path / "calibration.json").write_text(json.dumps({"model_choice": {"mode": "texture", "reason": "..."}}))
    (tmp_path / "manifest.json").write_text(json.dumps({"padim": {"mode": "aligned"}}))
    assert chosen_variant(tmp_path) == "texture"
    (tmp_path / "calibration.json").write_text(json.dumps({}))
    assert chosen_variant(tmp_path) == "aligned"
    (tmp_path / "manifest.json").write_text(json.dumps({"padim": {}}))
    assert chosen_variant(tmp_path) == ""


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path):
    """Real Lite0 backbone and the torch reference on two tiny categories (a few minutes)."""
    pytest.importorskip("torch")
    pytest.importorskip("skimage")
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "benchmarks.accuracy", "--quick"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "| coins (aligned) | 10 |" in r.stdout and "| brick (surface) | 10 |" in r.stdout


def test_saved_reference_must_come_from_the_same_data(tmp_path):
    pytest.importorskip("cv2")
    from benchmarks.accuracy import load_reference

    (tmp_path / "dataset.json").write_text(json.dumps({"version": 1, "group": "holdout", "size": 256, "seed": 0}))
    saved = {"data": {"version": 1, "group": "holdout", "size": 256, "seed": 0},
             "rows": [{"category": "cup", "n": 20, "ref_image_auroc": 0.9, "ref_pixel_auroc": 0.8}]}
    (tmp_path / "r.json").write_text(json.dumps(saved))
    assert load_reference(tmp_path / "r.json", tmp_path) == {("cup", 20): {"ref_image_auroc": 0.9,
                                                                          "ref_pixel_auroc": 0.8}}
    saved["data"]["seed"] = 1
    (tmp_path / "r.json").write_text(json.dumps(saved))
    with pytest.raises(SystemExit, match="other data"):
        load_reference(tmp_path / "r.json", tmp_path)
