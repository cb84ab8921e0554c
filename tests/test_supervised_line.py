"""Supervised bundles on the line: `run --model`, `[model]` in a station config, validate-config,
and the same records from `score` and `run`."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.config import config_problems, parse_config
from edge.daemon import serve
from edge.errors import ConfigError
from edge.imageio import read_mask, write_png
from edge.records import read_records
from edge.scoring import score_paths
from edge.stage import TIMING_KEYS, open_stage

from .tiny_supervised import grey, make_supervised_bundle, with_square


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    return make_supervised_bundle(tmp_path_factory.mktemp("seg") / "seg", "segmenter")


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Six good parts, two with a white square, one with a black square."""
    folder = tmp_path_factory.mktemp("parts")
    rng = np.random.default_rng(5)
    for i in range(6):
        write_png(folder / f"good-{i}.png", grey(rng))
    for i, (value, name) in enumerate(((255, "bright"), (255, "bright"), (0, "dark"))):
        write_png(folder / f"{name}-{i}.png", with_square(grey(rng), value, 10 + 8 * i, 20)[0])
    return folder


def _config(seg, out, folder, **extra):
    return {"station": "t", "model": {"path": str(seg)}, "source": {"uri": f"folder:{folder}"},
            "capture": {"drop_policy": "every", "batch_size": 2},
            "storage": {"root": str(out), "save_masks": "ng", "retention": {"min_free_mb": 0}}, **extra}


def test_a_model_section_runs_the_bundle_on_the_line(seg, parts, tmp_path):
    cfg = parse_config(_config(seg, tmp_path / "run", parts), "test")
    assert cfg.model.path == str(seg)
    serve(cfg)
    recs = {r["image"].rsplit("/", 1)[-1]: r for r in read_records(tmp_path / "run" / "decisions.jsonl")}
    assert len(recs) == 9
    assert {k for k, r in recs.items() if r["decision"] == "NG"} == {"bright-0.png", "bright-1.png", "dark-2.png"}
    r = recs["dark-2.png"]
    assert r["label"] == "dark" and r["areas"]["dark"] > 100 and set(r["classes"]) == {"bright", "dark"}
    assert r["inspector"] == open_stage(seg, open_runtime=False).id
    assert read_mask(r["class_masks"]["dark"]).sum() == r["areas"]["dark"]  # the per-class mask is saved
    assert np.array_equal(read_mask(r["class_masks"]["dark"]), read_mask(r["mask"]))


def test_score_and_run_give_the_same_records_for_a_model(seg, parts, tmp_path):
    files = sorted(parts.glob("*.png"))
    score_paths(open_stage(seg), files, tmp_path / "score")
    serve(parse_config(_config(seg, tmp_path / "run", parts), "test"))
    scored = {r["image"]: r for r in read_records(tmp_path / "score" / "results.jsonl")}
    ran = {r["image"]: r for r in read_records(tmp_path / "run" / "decisions.jsonl")}
    assert set(ran) == set(scored) == {str(p) for p in files}
    for image, r in ran.items():
        s = scored[image]
        assert (r["decision"], r["inspector"], r.get("label")) == (s["decision"], s["inspector"], s.get("label"))
        assert r["raw_score"] == pytest.approx(s["raw_score"], rel=1e-4) and r["areas"] == s["areas"]
        assert r["classes"] == pytest.approx(s["classes"], rel=1e-4)
        assert set(TIMING_KEYS) <= set(r["timings_ms"]) and set(TIMING_KEYS) <= set(s["timings_ms"])
        # the same fields, but for where the line keeps its images (it saves masks of NG parts only)
        assert set(s) - {"anomaly_map"} <= set(r) | {"mask", "overlay", "class_masks"}
        if r["decision"] == "NG":
            assert set(r["class_masks"]) == set(s["class_masks"])


def test_run_model_flag(seg, parts, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["run", "--source", f"folder:{parts}", "--model", str(seg), "--out", str(out),
                                 "--gpio", "sim"])
    assert r.exit_code == 0, r.output
    recs = read_records(out / "decisions.jsonl")
    assert len(recs) == 9 and sum(x["decision"] == "NG" for x in recs) == 3
    ng_lines = [json.loads(x) for x in (out / "gpio.jsonl").read_text().splitlines() if '"NG"' in x]
    assert ng_lines  # the NG line was driven


def test_run_refuses_model_and_inspector_together(seg, tmp_path):
    r = CliRunner().invoke(cli, ["run", "--source", "synthetic", "--model", str(seg), "--inspector", str(tmp_path)])
    assert r.exit_code == 2 and "not both" in r.output


def test_validate_config_knows_the_model_section(seg, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text(f'[model]\npath = "{seg}"\nbackend = "onnxruntime"\n[capture]\ndrop_policy = "every"\n')
    assert config_problems(good) == []
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[model]\npath = "{seg}"\nthreshold = 0.3\ndevice = "GPU"\nbackend = "onnxruntime"\n'
                   '[inspector]\npath = "insp"\n[capture]\ndrop_policy = "every"\n')
    problems = config_problems(bad)
    assert any(p.startswith("model.threshold: unknown key") for p in problems)
    assert any(p.startswith("model.device:") for p in problems)
    assert any("not both" in p for p in problems)
    missing = tmp_path / "missing.toml"
    missing.write_text('[model]\nbackend = "auto"\n[capture]\ndrop_policy = "every"\n')
    assert config_problems(missing) == ["model.path: is required"]
    r = CliRunner().invoke(cli, ["validate-config", "--explain"])
    assert "model.path" in r.output and "calibration" in r.output
    with pytest.raises(ConfigError):
        parse_config({"model": {"path": str(seg)}, "inspector": {"path": "x"}, "capture": {"drop_policy": "every"}})


def test_the_model_flag_replaces_the_configs_inspector_and_keeps_its_runtime(seg, parts, tmp_path):
    from edge.cli.line_commands import _run_overrides

    raw = {"inspector": {"path": "insp", "backend": "onnxruntime", "threads": 1}, "capture": {"drop_policy": "every"}}
    ov = _run_overrides(raw, None, f"folder:{parts}", None, str(tmp_path), None, None, None, "cpu", None, str(seg))
    cfg = parse_config(raw, "test", ov)
    assert cfg.model.path == str(seg) and cfg.model.backend == "onnxruntime" and cfg.model.threads == 1
    assert cfg.model.device == "cpu"  # --device goes to what runs
    raw = {"model": {"path": str(seg)}, "capture": {"drop_policy": "every"}}
    ov = _run_overrides(raw, None, f"folder:{parts}", "insp", str(tmp_path), None, None, None, None, None)
    assert parse_config(raw, "test", ov).model is None  # --inspector replaces the config's [model]
