"""Large photos cut into tiles: the layout maths, and fit → score → run on tiled inspectors."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.bundle import InputSpec
from edge.cli import cli
from edge.demo_data import make_category
from edge.errors import ConfigError, DataError
from edge.padim.tiling import Tiling
from edge.preprocess import to_tensor
from edge.records import read_records

SPEC = InputSpec("image", 8, 12, (0.5,) * 3, (0.25,) * 3)


def test_tiles_are_the_quadrants_of_the_resized_image():
    img = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    t = Tiling(2, 2).tensors(img, SPEC)
    assert t.shape == (4, 3, 8, 12)
    np.testing.assert_array_equal(t[1], to_tensor(img[0:8, 12:24], SPEC))
    np.testing.assert_array_equal(t[2], to_tensor(img[8:16, 0:12], SPEC))
    assert Tiling().tensors(img, SPEC).shape == (1, 3, 8, 12)


def test_per_tile_samples_form_the_stitched_grid_and_shared_maps_stitch_back():
    rows, cols, gh, gw, d = 2, 3, 2, 4, 5
    big = np.random.default_rng(1).normal(size=(2, d, rows * gh, cols * gw)).astype(np.float32)
    # tile embeddings as the backbone gives them: (B*T, d, gh*gw), tiles row-major
    tiles = np.stack([big[b, :, r * gh:(r + 1) * gh, c * gw:(c + 1) * gw].reshape(d, gh * gw)
                      for b in range(2) for r in range(rows) for c in range(cols)])
    per = Tiling(rows, cols).samples(tiles, (gh, gw))
    np.testing.assert_array_equal(per, big.reshape(2, d, -1))
    shared = Tiling(rows, cols, "shared")
    assert shared.samples(tiles, (gh, gw)) is tiles
    maps = tiles[:, 0].reshape(-1, gh, gw)  # any per-tile map: stitching must rebuild the big layout
    np.testing.assert_array_equal(shared.stitch(maps), big[:, 0])
    assert Tiling(rows, cols).stats_grid((gh, gw)) == (4, 12) and shared.stats_grid((gh, gw)) == (gh, gw)


@pytest.mark.parametrize("text,err", [("0x2", "must be"), ("2by2", "ROWSxCOLS"), ("9x9", "at most 64")])
def test_bad_tiles_are_clear_errors(text, err):
    with pytest.raises(ConfigError, match=err):
        Tiling.parse(text)


@pytest.fixture(scope="module")
def big_category(tmp_path_factory):
    """128x128 parts for a 64x64 backbone: 2x2 tiles see them at full detail."""
    return make_category(tmp_path_factory.mktemp("big") / "metal", "metal", n_train=30, n_test_good=3,
                         n_per_defect=3, defects=("spot", "stain"), size=(128, 128), seed=3, strength=(0.9, 1.0))


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


@pytest.mark.parametrize("mode", ["per-tile", "shared"])
def test_tiled_fit_score_and_line_run(tmp_path, tiny_bundle, big_category, mode):
    insp = tmp_path / "insp"
    run("fit", "--good", big_category / "train" / "good", "--backbone", tiny_bundle, "--out", insp, "-d", 20,
        "--tiles", "2x2", "--tile-mode", mode)
    m = json.loads((insp / "manifest.json").read_text())
    assert m["padim"]["tiling"] == {"rows": 2, "cols": 2, "mode": mode}
    assert m["padim"]["n_images"] == 30 and m["padim"]["grid"] == ([32, 32] if mode == "per-tile" else [16, 16])
    out = tmp_path / "out"
    run("score", big_category / "test", "--inspector", insp, "--out", out, "--save-maps")
    recs = read_records(out / "results.jsonl")
    assert len(recs) == 9
    for r in recs:
        kind = Path(r["image"]).parent.name
        assert r["decision"] == ("OK" if kind == "good" else "NG"), r
        amap = np.load(r["anomaly_map"])
        assert amap.shape == (128, 128)
        if kind != "good":
            gt = cv2.imread(str(big_category / "ground_truth" / kind / (Path(r["image"]).stem + "_mask.png")), 0) > 0
            mask = cv2.imread(r["mask"], 0) > 0
            assert (gt & mask).any()
    # the line runtime runs the same tiled inspector and reaches the same decisions
    line = tmp_path / "line"
    run("run", "--source", f"folder:{big_category / 'test' / 'spot'}", "--inspector", insp, "--out", line,
        "--drop-policy", "every")
    got = read_records(line / "decisions.jsonl")
    assert len(got) == 3 and all(g["decision"] == "NG" for g in got)
    by_name = {Path(r["image"]).name: r["raw_score"] for r in recs if "spot" in r["image"]}
    for g in got:
        assert g["raw_score"] == pytest.approx(by_name[Path(g["image"]).name], rel=1e-4)


def test_tiled_update_keeps_the_tiling(tmp_path, tiny_bundle, big_category):
    insp = tmp_path / "insp"
    run("fit", "--good", big_category / "train" / "good", "--backbone", tiny_bundle, "--out", insp, "-d", 20,
        "--tiles", "1x2", "--tile-mode", "shared")
    run("fit", "--good", big_category / "test" / "good", "--out", insp, "--update")
    m = json.loads((insp / "manifest.json").read_text())
    assert m["padim"]["tiling"]["cols"] == 2 and m["padim"]["n_images"] == 33 and m["padim"]["n_samples"] == 66


def test_statistics_too_large_for_a_device_are_refused_before_reading(tmp_path, tiny_bundle, monkeypatch):
    from edge import fitting
    from edge.fitting import FitOptions, fit_inspector

    monkeypatch.setattr(fitting, "MEMORY_LIMIT_GB", 0.1)  # the tiny backbone's 128x128 grid needs 0.34 GB

    with pytest.raises(DataError, match=r"need about .* GB") as e:
        fit_inspector([tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"], tmp_path / "i", tiny_bundle,
                      FitOptions(d=None, tiling=Tiling(8, 8)))
    assert "--tile-mode shared" in str(e.value)
