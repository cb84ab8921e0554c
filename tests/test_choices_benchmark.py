"""The choices benchmark's bookkeeping: configurations, the verdict bar, accumulating rows, dev only."""

import json

import pytest

from benchmarks.choices_report import ChoiceRow, means_table, per_category_table, verdicts


def _row(config, cat, img, px, ms, kind="aligned", n=20):
    return ChoiceRow(config, "b", 100, cat, kind, n, img, px, 0.0, 0.5, 30, 48, "aligned, 1x1", 10.0, ms,
                     ms / 10.0, 80.0, 250.0, "cmd")


BASE = [_row("lite0", "a", 0.80, 0.90, 10.0), _row("lite0", "b", 0.70, 0.90, 10.0, "surface")]


def test_clearly_better_needs_image_gain_pixel_not_worse_and_speed():
    better = [_row("x", "a", 0.83, 0.91, 12.0), _row("x", "b", 0.72, 0.90, 12.0, "surface")]
    (v,) = verdicts(BASE + better, "lite0")
    assert "image AUROC +0.025 (higher on 2 of 2)" in v and "scoring 1.20x" in v and "— clearly better" in v
    slow = [_row("y", "a", 0.90, 0.95, 16.0), _row("y", "b", 0.80, 0.95, 16.0, "surface")]
    worse_px = [_row("z", "a", 0.90, 0.89, 10.0), _row("z", "b", 0.80, 0.90, 10.0, "surface")]
    small = [_row("w", "a", 0.81, 0.95, 10.0), _row("w", "b", 0.71, 0.95, 10.0, "surface")]
    for rows in (slow, worse_px, small):
        (v,) = verdicts(BASE + rows, "lite0")
        assert "not clearly better" in v


def test_tables_have_means_per_configuration_and_a_row_per_category():
    rows = BASE + [_row("x", "a", 0.90, 0.95, 15.0)]
    m = means_table(rows)
    assert "| lite0 | 2 | **0.750** | **0.900** | 0.800 / 0.700 |" in m and "| x | 1 | **0.900** |" in m
    t = per_category_table(rows)
    assert t.index("| a (aligned) | lite0 |") < t.index("| a (aligned) | x |") < t.index("| b (surface) | lite0 |")


def test_configurations_name_a_bundle_and_d(tmp_path, monkeypatch):
    pytest.importorskip("cv2")
    from benchmarks import choices

    bb = tmp_path / "bb"
    bb.mkdir()
    (bb / "manifest.json").write_text(json.dumps({"taps": [{"channels": 24}, {"channels": 40}]}))
    assert choices.parse_config(f"mine={bb}:all") == ("mine", bb, 64)
    assert choices.parse_config(f"mine={bb}:50") == ("mine", bb, 50)
    with pytest.raises(SystemExit, match="64 channels"):
        choices.parse_config(f"mine={bb}:100")
    with pytest.raises(SystemExit, match="not a preset"):
        choices.parse_config("lite9")
    monkeypatch.setattr(choices, "default_backbone_dir", lambda: tmp_path / "efficientnet-lite0")
    (tmp_path / "efficientnet-lite1").mkdir()
    (tmp_path / "efficientnet-lite1" / "manifest.json").write_text(json.dumps({"taps": [{"channels": 176}]}))
    assert choices.parse_config("lite1") == ("lite1", tmp_path / "efficientnet-lite1", 100)


def test_rows_accumulate_and_a_row_measured_again_replaces_the_old(tmp_path):
    pytest.importorskip("cv2")
    from benchmarks.choices import merge, saved_rows, write_results

    (tmp_path / "dataset.json").write_text(json.dumps({"version": 1, "group": "dev", "size": 256, "seed": 0}))
    out = tmp_path / "r.md"
    write_results(BASE, out, tmp_path, "lite0")
    desc = json.loads((tmp_path / "dataset.json").read_text())
    old = saved_rows(out.with_suffix(".json"), desc)
    assert old == BASE
    rows = merge(old, [_row("lite0", "a", 0.5, 0.5, 9.0), _row("lite0", "a", 0.6, 0.6, 9.0, n=80)])
    assert [(r.category, r.n, r.image_auroc) for r in rows] == [("b", 20, 0.70), ("a", 20, 0.5), ("a", 80, 0.6)]
    text = write_results(rows, out, tmp_path, "lite0")
    assert "## N=20" in text and "## N=80" in text
    assert saved_rows(out.with_suffix(".json"), {**desc, "seed": 1}) == []  # other data: not mixed in
    out.write_text("")
    from benchmarks.choices import main
    assert main(["--data", str(tmp_path), "--out", str(out), "--rewrite"]) == 0
    assert out.read_text().count("| a (aligned) | lite0 |") == 2 and "- lite0: bundle `b`, taps" in out.read_text()


def test_the_holdout_group_is_refused(tmp_path, capsys):
    pytest.importorskip("cv2")
    from benchmarks.choices import main

    (tmp_path / "manifest.json").write_text(json.dumps({"taps": [{"channels": 8}]}))
    (tmp_path / "dataset.json").write_text(json.dumps({"version": 1, "group": "holdout", "size": 256, "seed": 0,
                                                       "categories": [{"name": "coins"}]}))
    with pytest.raises(SystemExit):
        main(["--data", str(tmp_path), "--categories", "coins", "--config", f"x={tmp_path}:1"])
    assert "choices are measured on dev only" in capsys.readouterr().err
