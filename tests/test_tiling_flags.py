"""The tile options and --roi as a user passes them to fit, score, eval and a station config; strip bundles
in their own shape on the line; frames whose shape is far from the model's are refused, not squashed."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.config import config_problems
from edge.demo_data import make_category
from edge.errors import ConfigError, ImageError
from edge.padim.tiling import Tiling
from edge.preprocess import check_aspect
from edge.records import read_records

from .runtime_helpers import records
from .tiny_backbone import make_tiny_bundle


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def said(r) -> str:
    return r.output + (str(r.exception) if r.exception else "")


def ok(*args):
    r = invoke(*args)
    assert r.exit_code == 0, said(r)
    return r


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """192x192 parts in MVTec layout for the 64x64 tiny backbone."""
    return make_category(tmp_path_factory.mktemp("photos") / "metal", "metal", n_train=12, n_test_good=2,
                         n_per_defect=1, defects=("spot",), size=(192, 192), seed=5)


@pytest.fixture(scope="module")
def windowed(tmp_path_factory, tiny_bundle, photos):
    insp = tmp_path_factory.mktemp("windowed") / "insp"
    ok("fit", "--good", photos / "train" / "good", "--backbone", tiny_bundle, "--out", insp, "-d", 12,
       "--tile", "96", "--tile-overlap", "16", "--mode", "aligned", "--aggregate", "1", "--target-frr", "0.1")
    return insp


@pytest.mark.parametrize("flags, differs", [
    (["--tile", "64"], "tile 64x64 px asked, but its windows are 96x96 px"),
    (["--tile", "96", "--tile-overlap", "8"], "tile overlap 8 px asked, but its windows overlap by 16 px"),
    (["--tiles", "2x2"], "tiles 2x2 asked, but it was fitted with 9 windows of 96x96 px"),
    (["--tile-mode", "shared"], "tile mode shared asked, but its statistics are per-tile"),
])
def test_score_and_eval_refuse_tile_options_that_differ_from_the_inspectors(tmp_path, windowed, photos, flags,
                                                                            differs):
    img = sorted((photos / "test" / "good").glob("*.png"))[0]
    for cmd in (["score", img, "--inspector", windowed, "--out", tmp_path / "s"],
                ["eval", photos, "--inspector", windowed, "--out", tmp_path / "e"]):
        r = invoke(*cmd, *flags)
        assert r.exit_code != 0 and isinstance(r.exception, ConfigError), said(r)
        assert differs in said(r) and "scoring uses that" in said(r)
        assert "leave the tile options out when scoring" in said(r)
    assert not (tmp_path / "s" / "results.jsonl").exists()  # refused before anything was scored


def test_the_same_tile_options_as_fit_are_accepted_by_score_and_eval(tmp_path, windowed, photos):
    same = ["--tile", "96", "--tile-overlap", "16", "--tile-mode", "per-tile"]
    img = sorted((photos / "test" / "good").glob("*.png"))[0]
    ok("score", img, "--inspector", windowed, "--out", tmp_path / "s", "--save-maps", *same)
    rec = read_records(tmp_path / "s" / "results.jsonl")[0]
    assert rec["decision"] in ("OK", "NG") and np.load(rec["anomaly_map"]).shape == (192, 192)
    r = ok("eval", photos, "--inspector", windowed, "--out", tmp_path / "e", *same)
    assert "image AUROC" in r.output


def test_eval_with_an_inspector_applies_roi(tmp_path, windowed, photos):
    roi = np.zeros((192, 192), np.uint8)
    roi[:, :96] = 255
    cv2.imwrite(str(tmp_path / "roi.png"), roi)
    ok("eval", photos, "--inspector", windowed, "--out", tmp_path / "e", "--roi", tmp_path / "roi.png")
    recs = read_records(tmp_path / "e" / "test-results" / "results.jsonl")
    assert len(recs) == 3
    for r in recs:
        assert not cv2.imread(r["mask"], 0)[:, 96:].any()  # nothing outside the ROI is masked


def test_tile_options_and_roi_are_refused_where_they_cannot_apply(tmp_path, windowed, photos):
    (tmp_path / "c.toml").write_text(f'[[stage]]\nname = "a"\ninspector = "{windowed}"\n'
                                     f'[[stage]]\nname = "b"\ninspector = "{windowed}"\n')
    img = sorted((photos / "test" / "good").glob("*.png"))[0]
    r = invoke("score", img, "--cascade", tmp_path / "c.toml", "--out", tmp_path / "s", "--tile", "96")
    assert r.exit_code == 2 and "apply to PaDiM inspectors" in said(r)
    r = invoke("eval", photos, "--cascade", tmp_path / "c.toml", "--out", tmp_path / "e", "--tile-overlap", "16")
    assert r.exit_code == 2 and "a cascade's stages use what each was fitted with" in said(r)


def test_differences_read_nothing_into_options_not_given():
    t = Tiling.windows_of("512", 32).laid_out(3200, 3872)
    assert t.differences() == []
    assert t.differences(tile="512", overlap=32, mode="per-tile") == []
    big = Tiling.windows_of("4000").laid_out(3200, 3872)  # fit clamps a window larger than the photo to it
    assert big.differences(tile="4000") == [] and big.differences(tile="5000") == []
    assert Tiling(2, 2).differences(tiles="2x2", overlap=0) == []
    assert Tiling().differences(tiles="1x1") == []
    assert "tile 256 px asked" in Tiling(2, 2).differences(tile="256")[0]


# --- frames whose shape is far from the model's ---------------------------------------------------------

def test_check_aspect_refuses_strong_stretching_only():
    check_aspect((3200, 3872), (256, 256))  # 1.2x: resized as before
    check_aspect((256, 1600), (256, 1600))
    with pytest.raises(ImageError, match="stretch it 6.2x") as e:
        check_aspect((256, 1600), (256, 256))
    assert "--size 256x1600" in e.value.hint
    with pytest.raises(ImageError, match="1600x256 px") as e:  # a strip camera turned by 90 degrees
        check_aspect((1600, 256), (256, 1600))
    assert "--size 1600x256" in e.value.hint


def test_score_gives_a_squashed_image_an_error_record_and_scores_the_rest(tmp_path, tiny_inspector_ro,
                                                                          tiny_category):
    strip = np.full((16, 200, 3), 128, np.uint8)
    cv2.imwrite(str(tmp_path / "strip.png"), strip)
    good = sorted((tiny_category / "test" / "good").glob("*.png"))[0]
    ok("score", tmp_path / "strip.png", good, "--inspector", tiny_inspector_ro, "--out", tmp_path / "o")
    recs = {Path(r["image"]).name: r for r in read_records(tmp_path / "o" / "results.jsonl")}
    assert recs["strip.png"]["decision"] == "ERROR" and "stretch it" in recs["strip.png"]["error"]
    assert recs[good.name]["decision"] in ("OK", "NG")


def test_fit_skips_a_squashed_image_saying_why(tmp_path, tiny_bundle, tiny_category):
    import shutil

    good = tmp_path / "good"
    shutil.copytree(tiny_category / "train" / "good", good)
    cv2.imwrite(str(good / "zz-strip.png"), np.full((16, 200, 3), 128, np.uint8))
    r = ok("fit", "--good", good, "--backbone", tiny_bundle, "--out", tmp_path / "insp", "-d", 12,
           "--aggregate", "1", "--mode", "aligned", "--target-frr", "0.1")
    assert "fitted on 16 good images" in r.output
    assert "skipped unreadable image" in r.output and "zz-strip.png" in r.output and "stretch it" in r.output


def test_windows_that_would_be_squashed_are_refused_at_fit(tmp_path, tiny_bundle, photos):
    r = invoke("fit", "--good", photos / "train" / "good", "--backbone", tiny_bundle, "--out", tmp_path / "i",
               "--tile", "32x160")
    assert r.exit_code != 0 and "windows of 32x160 px (HxW) do not fit" in said(r)


# --- strips on the line ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def strip_inspector(tmp_path_factory):
    root = tmp_path_factory.mktemp("strip")
    bundle = make_tiny_bundle(root / "bundle", size=(32, 160))
    data = make_category(root / "data" / "metal", "metal", n_train=10, n_test_good=3, n_per_defect=1,
                         defects=("spot",), size=(32, 160), seed=2)
    insp = root / "insp"
    ok("fit", "--good", data / "train" / "good", "--backbone", bundle, "--out", insp, "-d", 12,
       "--aggregate", "1", "--mode", "aligned", "--target-frr", "0.1")
    return insp, data


def test_the_line_runs_a_strip_bundle_in_its_own_shape_and_refuses_turned_frames(tmp_path, strip_inspector):
    insp, data = strip_inspector
    m = json.loads((insp / "manifest.json").read_text())
    assert m["backbone"]["input"] == [32, 160] and m["padim"]["grid"] == [8, 40]  # no squashing to a square
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, p in enumerate(sorted((data / "test").rglob("*.png"))):
        (frames / f"{i:02d}-strip.png").write_bytes(p.read_bytes())
    turned = cv2.rotate(cv2.imread(str(p)), cv2.ROTATE_90_CLOCKWISE)  # 160 high, 32 wide
    cv2.imwrite(str(frames / "99-turned.png"), turned)
    out = tmp_path / "out"
    r = invoke("run", "--source", f"folder:{frames}", "--inspector", insp, "--out", out, "--gpio", "off",
               "--max-frames", "5")
    assert r.exit_code == 0, said(r)
    recs = {Path(r["image"]).name if "/" in r["image"] else r["image"]: r for r in records(out / "decisions.jsonl")}
    assert len(recs) == 5
    by_kind = {k: r for k, r in recs.items()}
    turned_rec = next(r for k, r in by_kind.items() if "turned" in k)
    assert turned_rec["decision"] == "ERROR" and "stretch it" in turned_rec["error"]
    assert all(r["decision"] in ("OK", "NG") for k, r in by_kind.items() if "turned" not in k)


def test_station_tile_keys_must_match_the_inspector(tmp_path, windowed, photos):
    base = (f'station = "t"\n[inspector]\npath = "{windowed}"\n{{keys}}\n'
            f'[source]\nuri = "folder:{photos / "test" / "good"}"\n'
            f'[storage]\nroot = "{tmp_path / "out"}"\n[capture]\ndrop_policy = "every"\n')
    good = tmp_path / "good.toml"
    good.write_text(base.replace("{keys}", 'tile = "96"\ntile_overlap = 16\ntile_mode = "per-tile"'))
    assert config_problems(good) == []
    ok("run", "--config", good, "--gpio", "off", "--max-frames", "1")
    bad = tmp_path / "bad.toml"
    bad.write_text(base.replace("{keys}", 'tile = "128"'))
    r = invoke("run", "--config", bad, "--gpio", "off", "--max-frames", "1")
    assert r.exit_code != 0 and "tile 128x128 px asked, but its windows are 96x96 px" in said(r)
    malformed = tmp_path / "malformed.toml"
    malformed.write_text(base.replace("{keys}", 'tiles = "two by two"'))
    assert any("inspector.tiles" in p for p in config_problems(malformed))


def test_overlays_of_large_photos_are_drawn_at_a_whole_fraction_under_a_megapixel():
    from edge.artifacts import OVERLAY_PIXELS, overlay_image, overlay_scale
    from edge.stage import Inspection

    img = np.full((2400, 3001, 3), 90, np.uint8)
    amap = np.zeros((2400, 3001), np.float32)
    amap[1000:1100, 2000:2100] = 5.0
    mask = np.zeros((2400, 3001), np.uint8)
    mask[1500:1700, 400:402] = 255  # a defect 2 px wide: 1/2 of a 4x4 block
    assert OVERLAY_PIXELS == 1024 * 1024 and overlay_scale(img.shape) == 3  # 7.2 MP: 1/2 is 1.8 MP, 1/3 0.8
    ov = overlay_image(img, Inspection(5.0, 2.5, "NG", amap, mask), threshold=2.0)
    assert ov.shape[:2] == (800, 1000)  # 1/3; the one column that does not fill a 3x3 block left out
    assert ov[1050 // 3, 2050 // 3, 2] > ov[100, 100, 2] + 50  # the hot spot is red, in place
    assert (ov[1520 // 3:1680 // 3, 395 // 3:408 // 3] == 255).all(axis=2).any()  # the thin defect's outline (white)
    assert not (ov[100:300, 100:300] == 255).all(axis=2).any()
    small = overlay_image(img[:600, :800], Inspection(5.0, 2.5, "NG", amap[:600, :800], mask[:600, :800]), 2.0)
    assert small.shape[:2] == (600, 800)
    assert overlay_scale((1024, 1024)) == 1 and overlay_scale((3200, 3872)) == 4 and overlay_scale((256, 1600)) == 1
    assert overlay_scale((1025, 1024)) == 2


def test_score_draws_a_big_photos_overlay_smaller_and_writes_its_mask_full_size(tmp_path, windowed):
    """`score` on a photo over a megapixel: the overlay (JPEG) is 1/k its size, the mask PNG full size."""
    from edge.imageio import read_image

    rng = np.random.default_rng(3)
    photo = tmp_path / "big.png"
    cv2.imwrite(str(photo), rng.integers(100, 180, (1100, 2100, 3), dtype=np.uint8))  # lit like the parts
    ok("score", photo, "--inspector", windowed, "--out", tmp_path / "s", "--overlays", "all")
    rec = read_records(tmp_path / "s" / "results.jsonl")[0]
    assert read_image(rec["overlay"]).shape[:2] == (550, 1050)  # 2.3 MP: k = 2
    assert rec["overlay"].endswith("_overlay.jpg") and Path(rec["overlay"]).read_bytes()[:2] == b"\xff\xd8"
    assert Path(rec["mask"]).read_bytes()[:4] == b"\x89PNG"  # the mask stays lossless
    assert cv2.imread(rec["mask"], 0).shape == (1100, 2100)
