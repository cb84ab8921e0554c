"""Windows with overlap (--tile/--tile-overlap) and the region of interest (--roi), through the CLI."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.bundle import InputSpec
from edge.cli import cli
from edge.demo_data import make_category
from edge.errors import ConfigError
from edge.padim.tiling import Tiling, parse_size
from edge.records import read_records
from edge.roi import Roi

SPEC = InputSpec("image", 64, 64, (0.5,) * 3, (0.25,) * 3)


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return r


def test_windows_cover_the_photo_with_the_asked_overlap():
    t = Tiling.windows_of("100", 20).laid_out(250, 330)
    ys = sorted({y for y, _ in t.windows()})
    xs = sorted({x for _, x in t.windows()})
    assert ys == [0, 80, 150] and xs == [0, 80, 160, 230]  # the last window flush with the edge
    assert t.count == 12 and (t.rows, t.cols) == (3, 4)
    assert all(b - a <= 100 - 20 for a, b in zip(xs, xs[1:]))  # neighbours share at least 20 px
    x = t.tensors(np.zeros((250, 330, 3), np.uint8), SPEC)
    assert x.shape == (12, 3, 64, 64)


def test_blending_keeps_a_constant_map_constant_and_puts_each_tile_where_it_was_cut():
    t = Tiling.windows_of("100", 20, "shared").laid_out(200, 200)  # windows at 0, 80, 100
    g = np.full((t.count, 25, 25), 3.0, np.float32)
    c = t.stitch(g)
    assert c.shape == (1, 50, 50) and np.allclose(c, 3.0)
    # one hot cell in the middle of the first window lands at its place on the canvas (cell = 4 px)
    g = np.zeros((t.count, 25, 25), np.float32)
    g[0, 5, 7] = 1.0
    c = t.stitch(g)[0]
    assert np.unravel_index(c.argmax(), c.shape) == (5, 7)


def test_per_tile_samples_are_window_after_window():
    t = Tiling.windows_of("100", 20).laid_out(200, 200)
    emb = np.arange(2 * t.count * 3 * 4, dtype=np.float32).reshape(2 * t.count, 3, 4)
    s = t.samples(emb, (2, 2))
    assert s.shape == (2, 3, t.count * 4)
    np.testing.assert_array_equal(s[1, :, 4:8], emb[t.count + 1])
    assert t.stats_grid((2, 2)) == (2 * t.count, 2)


@pytest.mark.parametrize("kw, err", [
    (dict(tile="8"), "at least 16"), (dict(tile="64", overlap=40), "under half"),
    (dict(tiles="2x2", tile="64"), "not both"), (dict(tiles="2x2", overlap=8), "needs --tile"),
    (dict(tile="64by"), "PIXELS or HEIGHTxWIDTH")])
def test_bad_windows_are_clear_errors(kw, err):
    with pytest.raises(ConfigError, match=err):
        Tiling.from_options(kw.get("tiles"), kw.get("tile"), kw.get("overlap", 0), "per-tile")


def test_sizes_parse_as_height_by_width():
    assert parse_size("512") == (512, 512) and parse_size("256x1600") == (256, 1600)


def test_windows_round_trip_through_the_manifest():
    t = Tiling.windows_of("96x120", 16, "shared").laid_out(300, 500)
    assert Tiling.from_dict(json.loads(json.dumps(t.to_dict()))) == t


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """192x192 parts for a 64x64 backbone, cut into 96 px windows with 16 px overlap (starts 0, 80, 96)."""
    return make_category(tmp_path_factory.mktemp("photos") / "metal", "metal", n_train=30, n_test_good=2,
                         n_per_defect=1, defects=("spot",), size=(192, 192), seed=5)


def _plant(src: Path, dst: Path, centre: tuple[int, int], radius: int = 9) -> np.ndarray:
    img = cv2.imread(str(src))
    cv2.circle(img, centre, radius, (15, 15, 15), -1)
    cv2.imwrite(str(dst), img)
    gt = np.zeros(img.shape[:2], np.uint8)
    cv2.circle(gt, centre, radius, 255, -1)
    return gt > 0


@pytest.mark.parametrize("mode", ["per-tile", "shared"])
def test_a_defect_across_a_window_border_is_found_once_in_the_right_place(tmp_path, tiny_bundle, photos, mode):
    insp = tmp_path / "insp"
    run("fit", "--good", photos / "train" / "good", "--backbone", tiny_bundle, "--out", insp, "-d", 20,
        "--tile", "96", "--tile-overlap", "16", "--tile-mode", mode)
    t = json.loads((insp / "manifest.json").read_text())["padim"]["tiling"]
    assert t["tile"] == [96, 96] and t["overlap"] == 16 and t["image"] == [192, 192] and t["rows"] == 3
    good = sorted((photos / "test" / "good").glob("*.png"))[0]
    # (x, y) = (88, 96): across the first window's right edge (x=96), the second's left edge (x=80)
    # and, vertically, the border at y=96
    gt = _plant(good, tmp_path / "border.png", (88, 96))
    out = tmp_path / "out"
    run("score", tmp_path / "border.png", good, "--inspector", insp, "--out", out, "--save-maps")
    recs = {Path(r["image"]).name: r for r in read_records(out / "results.jsonl")}
    assert recs[good.name]["decision"] == "OK"
    r = recs["border.png"]
    assert r["decision"] == "NG"
    mask = cv2.imread(r["mask"], 0) > 0
    amap = np.load(r["anomaly_map"])
    assert mask.shape == amap.shape == (192, 192)  # one full-size mask and map per photo
    n, labels, st, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    assert n == 2, f"{n - 1} regions in the mask"  # found once: one region, not one per window
    assert (mask & gt).any()
    cy, cx = np.unravel_index(amap.argmax(), amap.shape)
    assert abs(cx - 88) <= 12 and abs(cy - 96) <= 12, (cx, cy)
    assert np.hypot(*(centroids[1] - (88, 96))) <= 12


def test_roi_pixels_never_appear_in_masks_or_scores(tmp_path, tiny_bundle, photos):
    roi = np.zeros((192, 192), np.uint8)
    roi[:, :96] = 255  # inspect the left half only
    cv2.imwrite(str(tmp_path / "roi.png"), roi)
    insp = tmp_path / "insp"
    run("fit", "--good", photos / "train" / "good", "--backbone", tiny_bundle, "--out", insp, "-d", 20,
        "--roi", tmp_path / "roi.png")
    assert "roi.png" in json.loads((insp / "manifest.json").read_text())["files"]
    good = sorted((photos / "test" / "good").glob("*.png"))[0]
    _plant(good, tmp_path / "outside.png", (150, 96), 14)
    _plant(good, tmp_path / "inside.png", (40, 96), 14)
    out = tmp_path / "out"
    run("score", tmp_path / "outside.png", tmp_path / "inside.png", "--inspector", insp, "--out", out,
        "--save-maps", "--overlays", "all")
    recs = {Path(r["image"]).name: r for r in read_records(out / "results.jsonl")}
    assert recs["outside.png"]["decision"] == "OK" and recs["inside.png"]["decision"] == "NG"
    for r in recs.values():
        amap, mask = np.load(r["anomaly_map"]), cv2.imread(r["mask"], 0)
        assert not amap[:, 96:].any() and not mask[:, 96:].any()
    # the same defect without the ROI is NG: the ROI, not the defect, made the difference
    out2 = tmp_path / "out2"
    full = np.full((192, 192), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "all.png"), full)
    run("score", tmp_path / "outside.png", "--inspector", insp, "--out", out2, "--roi", tmp_path / "all.png")
    assert read_records(out2 / "results.jsonl")[0]["decision"] == "NG"


def test_roi_polygon_and_bad_rois(tmp_path):
    r = Roi.from_polygons([[(0, 0), (9, 0), (9, 4), (0, 4)]])
    inside = r.inside((10, 20))
    assert inside[:5, :10].all() and not inside[6:].any() and not inside[:, 11:].any()
    with pytest.raises(ConfigError, match="no white pixel"):
        Roi(mask=np.zeros((4, 4), np.uint8))
    with pytest.raises(ConfigError, match="at least 3 points"):
        Roi.from_polygons([[(0, 0), (1, 1)]])
    with pytest.raises(ConfigError, match="covers no pixel"):
        Roi.from_polygons([[(500, 500), (600, 500), (600, 600)]]).inside((10, 10))
