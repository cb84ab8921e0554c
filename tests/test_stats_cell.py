"""--stats-cell K: per-position statistics shared by K×K grid cells, so per-tile statistics of large photos
fit in memory; the memory guard names the K that fits."""

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge import fitting
from edge.cli import cli
from edge.demo_data import make_category
from edge.errors import ConfigError, DataError
from edge.padim.tiling import Tiling
from edge.records import read_records


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def said(r) -> str:
    return r.output + (str(r.exception) if r.exception else "")


@pytest.mark.parametrize("tiling", [Tiling(cell=2), Tiling(2, 3, cell=2), Tiling(2, 2, "shared", cell=2),
                                    Tiling(cell=4)])
def test_cells_are_samples_of_one_gaussian_and_stitch_back_in_place(tiling):
    tile_grid = (8, 8)
    t = tiling
    n_img = 2
    emb = np.random.default_rng(0).normal(size=(n_img * t.count, 3, 64)).astype(np.float32)
    s = t.samples(emb, tile_grid)
    k = t.cell
    gh, gw = t._position_grid(tile_grid)
    assert t.stats_grid(tile_grid) == (gh // k, gw // k)
    assert s.shape == (n_img * t.samples_per_image, 3, (gh // k) * (gw // k))
    # a "distance" that is just channel 0 of each sample: stitched back, every position is where it was
    back = t.stitch(s[:, 0, :].reshape(s.shape[0], gh // k, gw // k))
    base = dataclasses.replace(t, cell=1)
    s0 = base.samples(emb, tile_grid)
    want = base.stitch(s0[:, 0, :].reshape(s0.shape[0], gh, gw))
    np.testing.assert_array_equal(back, want)


def test_windows_with_cells_round_trip():
    t = Tiling.windows_of("100", 20).laid_out(200, 200)
    tc = Tiling(mode=t.mode, tile=t.tile, overlap=t.overlap, image=t.image, rows=t.rows, cols=t.cols, cell=2)
    emb = np.random.default_rng(1).normal(size=(2 * t.count, 2, 16)).astype(np.float32)
    s = tc.samples(emb, (4, 4))
    assert tc.stats_grid((4, 4)) == (t.count * 2, 2) and s.shape[0] == 2 * 4
    back = tc.stitch(s[:, 0, :].reshape(8, t.count * 2, 2))
    want = t.stitch(t.samples(emb, (4, 4))[:, 0, :].reshape(2, t.count * 4, 4))
    np.testing.assert_allclose(back, want)
    assert Tiling.from_dict(tc.to_dict()) == tc
    assert "cell" not in t.to_dict()  # inspectors without cells keep their manifest as before


def test_a_cell_that_does_not_divide_the_grid_is_refused_naming_those_that_do():
    with pytest.raises(ConfigError) as e:
        Tiling(cell=3).check_cells((16, 16))
    assert "does not divide the model's 16x16 feature grid" in e.value.message
    assert "--stats-cell 2 or 4 or 8 or 16" in e.value.hint
    with pytest.raises(ConfigError, match="1 .* to 16"):
        Tiling(cell=0)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_category(tmp_path_factory.mktemp("photos") / "metal", "metal", n_train=12, n_test_good=2,
                         n_per_defect=1, defects=("spot",), size=(192, 192), seed=5)


def test_the_memory_guard_names_the_cell_that_fits_and_that_fit_works(tmp_path, tiny_bundle, photos, monkeypatch):
    # a 64x64 tiny backbone has a 16x16 grid; 9 windows of 96 px: 144x16 positions, d=12 → ~0.008 GB;
    # a limit of 0.003 GB stands in for a device that cannot hold per-position statistics
    monkeypatch.setattr(fitting, "MEMORY_LIMIT_GB", 0.003)
    args = ["fit", "--good", photos / "train" / "good", "--backbone", tiny_bundle, "-d", 12, "--mode", "aligned",
            "--aggregate", "1", "--target-frr", "0.1", "--tile", "96", "--tile-overlap", "16"]
    r = invoke(*args, "--out", tmp_path / "refused")
    assert r.exit_code != 0 and isinstance(r.exception, DataError)
    assert "--stats-cell 2 (a Gaussian per 2x2 grid cells, about 0.002 GB)" in said(r)
    assert not (tmp_path / "refused").exists()
    insp = tmp_path / "insp"
    r = invoke(*args, "--out", insp, "--stats-cell", "2")
    assert r.exit_code == 0, said(r)
    m = json.loads((insp / "manifest.json").read_text())
    assert m["padim"]["tiling"]["cell"] == 2 and m["padim"]["grid"] == [9 * 16 // 2, 16 // 2]
    # a defect across a window border is still found once, in the right place, at full resolution
    good = sorted((photos / "test" / "good").glob("*.png"))[0]
    img = cv2.imread(str(good))
    cv2.circle(img, (88, 96), 9, (15, 15, 15), -1)
    cv2.imwrite(str(tmp_path / "border.png"), img)
    out = tmp_path / "out"
    r = invoke("score", tmp_path / "border.png", good, "--inspector", insp, "--out", out, "--save-maps")
    assert r.exit_code == 0, said(r)
    recs = {Path(x["image"]).name: x for x in read_records(out / "results.jsonl")}
    assert recs[good.name]["decision"] == "OK" and recs["border.png"]["decision"] == "NG"
    amap = np.load(recs["border.png"]["anomaly_map"])
    assert amap.shape == (192, 192)
    cy, cx = np.unravel_index(amap.argmax(), amap.shape)
    assert abs(cx - 88) <= 16 and abs(cy - 96) <= 16, (cx, cy)
    mask = cv2.imread(recs["border.png"]["mask"], 0) > 0
    assert cv2.connectedComponents(mask.astype(np.uint8))[0] == 2  # one region
    # score confirms the cell, and refuses another
    r = invoke("score", good, "--inspector", insp, "--out", tmp_path / "o2", "--stats-cell", "4")
    assert r.exit_code != 0 and "stats cell 4 asked, but 2x2 grid cells share each Gaussian" in said(r)
    r = invoke("info", insp)
    assert "statistics shared by 2x2 grid cells" in r.output
    # fit --update keeps the cells
    r = invoke("fit", "--update", "--good", photos / "test" / "good", "--out", insp)
    assert r.exit_code == 0, said(r)
    assert json.loads((insp / "manifest.json").read_text())["padim"]["tiling"]["cell"] == 2
