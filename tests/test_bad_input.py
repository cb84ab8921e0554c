"""Bad input: every image asked for gets exactly one record; odd but valid images are converted as documented."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.errors import ConfigError, ImageError
from edge.imageio import list_images, read_image
from edge.inspector import Inspector
from edge.records import read_records
from edge.scoring import score_paths

from .bad_inputs import bad_folder, huge_png, odd_valid, part

AS_ROOT = os.geteuid() == 0


@pytest.fixture
def mixed_folder(tmp_path, tiny_category):
    """2 good images, every bad input, every odd-but-valid image; returns (folder, bad reasons, odd names)."""
    folder = tmp_path / "todays-images"
    good = sorted((tiny_category / "test" / "good").glob("*.png"))[:2]
    folder.mkdir()
    for g in good:
        shutil.copy(g, folder / g.name)
    bad = bad_folder(folder, good[0])
    odd = odd_valid(folder, np.random.default_rng(0))
    if not AS_ROOT:  # root reads anything: the permission case is covered by the monkeypatched test below
        locked = folder / "locked.png"
        shutil.copy(good[0], locked)
        locked.chmod(0)
        bad["locked.png"] = "permission denied"
    return folder, bad, odd, [g.name for g in good]


def test_a_folder_of_every_bad_input_gets_one_record_per_input(mixed_folder, tiny_inspector_unscreened, tmp_path):
    """(The odd pictures look nothing like the good parts: an inspector without the capture check judges them.)"""
    folder, bad, odd, good = mixed_folder
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["score", str(folder), "--inspector", str(tiny_inspector_unscreened), "--out",
                                 str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    recs = read_records(out / "results.jsonl")
    names = [Path(x["image"]).name for x in recs]
    assert sorted(names) == sorted([*bad, *odd, *good])  # exactly one record each, nothing lost or doubled
    by = {Path(x["image"]).name: x for x in recs}
    for name, reason in bad.items():
        assert by[name]["decision"] == "ERROR" and reason in by[name]["error"], (name, by[name])
    for name in [*odd, *good]:
        if name == "wide.png":  # 4000x40 into a 64x64 model: an ERROR saying so, not a squashed guess
            assert by[name]["decision"] == "ERROR" and "stretch it 100.0x" in by[name]["error"], by[name]
            continue
        assert by[name]["decision"] in ("OK", "NG") and by[name]["score"] >= 0, (name, by[name])
    n_err = len(bad) + 1
    assert f"{len(recs)} images:" in r.output and f"{n_err} ERROR" in r.output
    assert len((out / "results.csv").read_text().splitlines()) == len(recs) + 1
    # the mask of each scored image has that image's size; the sideways JPEG was turned upright first
    assert cv2.imread(by["exif-rotated.jpg"]["mask"], 0).shape == (64, 64)


def test_score_with_strict_flags_the_bad_folder(mixed_folder, tiny_inspector_ro, tmp_path):
    folder, *_ = mixed_folder
    r = CliRunner().invoke(cli, ["score", str(folder), "--inspector", str(tiny_inspector_ro), "--out",
                                 str(tmp_path / "o"), "--strict"])
    assert r.exit_code == 1


def test_a_path_that_vanishes_between_listing_and_reading_gets_an_error_record(tmp_path, tiny_category,
                                                                              tiny_inspector_ro):
    folder = tmp_path / "in"
    shutil.copytree(tiny_category / "test" / "good", folder)
    paths = list_images([folder])
    paths[1].unlink()  # e.g. an operator's script moved it away meanwhile
    summary = score_paths(Inspector.load(tiny_inspector_ro), paths, tmp_path / "out")
    assert summary.total == len(paths) and summary.counts["ERROR"] == 1
    rec = next(r for r in summary.records if r.decision == "ERROR")
    assert rec.image == str(paths[1]) and "no such file" in rec.error


def test_permission_denied_is_an_error_record(tmp_path, monkeypatch):
    p = tmp_path / "locked.png"
    p.write_bytes(cv2.imencode(".png", part(np.random.default_rng(1)))[1].tobytes())
    real_open = os.open

    def deny(path, *a, **k):
        if Path(path) == p:
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(ImageError, match="locked.png: permission denied") as e:
        read_image(p)
    assert "readable by the user" in str(e.value)


def test_explicitly_named_missing_and_dangling_inputs_are_listed_not_dropped(tmp_path):
    os.symlink(tmp_path / "nowhere.png", tmp_path / "link.png")
    (tmp_path / "notes.txt").write_text("x")
    listed = list_images([tmp_path / "link.png", tmp_path / "notes.txt", tmp_path / "later.png"])
    assert [p.name for p in listed] == ["link.png", "notes.txt", "later.png"]
    assert [p.name for p in list_images([tmp_path])] == ["link.png"]  # in a folder: image names only


@pytest.mark.parametrize("name, check", [
    ("gray.png", lambda img, bgr: (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
     and np.abs(img[..., 0].astype(int) - cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).max() <= 1),
    ("deep16.png", lambda img, bgr: (img == bgr).all()),
    ("rgba.png", lambda img, bgr: (img == bgr).all()),
    ("cmyk.jpg", lambda img, bgr: np.abs(img.astype(int) - bgr).mean() < 4),
    ("palette.png", lambda img, bgr: np.abs(img.astype(int) - bgr).mean() < 8),
    ("exif-rotated.jpg", lambda img, bgr: img.shape == bgr.shape and np.abs(img.astype(int) - bgr).mean() < 4
     and img[2, 2, 1] > 200),  # the green corner is back at the top-left
    ("wide.png", lambda img, bgr: img.shape == (40, 4000, 3)),
])
def test_odd_but_valid_images_are_converted_as_documented(tmp_path, name, check):
    rng = np.random.default_rng(0)
    odd_valid(tmp_path, rng)
    bgr = np.ascontiguousarray(part(np.random.default_rng(0))[..., ::-1])
    img = read_image(tmp_path / name)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert check(img, bgr), name


def test_a_huge_png_is_refused_from_its_header_without_decoding(tmp_path):
    """A 30,000 x 30,000 PNG (2.7 GB decoded) gets a clear ERROR, and the process stays small."""
    big = huge_png(tmp_path / "huge.png")
    assert big.stat().st_size < 2_000_000
    code = ("import resource, sys\nfrom edge.imageio import read_image\nfrom edge.errors import ImageError\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    read_image(sys.argv[1])\nexcept ImageError as e:\n    print(e)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    r = subprocess.run([sys.executable, "-c", code, str(big)], capture_output=True, text=True, timeout=120)
    msg, grew_kb = r.stdout.strip().rsplit("\n", 1)
    assert "30000x30000 = 900 MP, over the 100 MP limit" in msg and "EDGE_INSPECT_MAX_PIXELS" in msg
    assert int(grew_kb) < 50_000  # the file's bytes only; a decode would take 2.7 GB
    with pytest.raises(ImageError, match="over the 1 MP limit"):
        read_image(tmp_path / "huge.png", max_pixels=1_000_000)


def test_the_pixel_limit_can_be_raised_and_a_bad_setting_is_refused(tmp_path, monkeypatch):
    p = tmp_path / "big.png"
    p.write_bytes(cv2.imencode(".png", np.zeros((200, 300, 3), np.uint8))[1].tobytes())
    monkeypatch.setenv("EDGE_INSPECT_MAX_PIXELS", "50000")
    with pytest.raises(ImageError, match="300x200 = 0.06 MP, over the 0.05 MP limit"):
        read_image(p)
    monkeypatch.setenv("EDGE_INSPECT_MAX_PIXELS", "60000")
    assert read_image(p).shape == (200, 300, 3)
    monkeypatch.setenv("EDGE_INSPECT_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="EDGE_INSPECT_MAX_PIXELS='lots' is not a pixel count"):
        read_image(p)


@pytest.mark.parametrize("overlap", [True, False], ids=["overlapped", "sequential"])
def test_an_image_the_backend_rejects_gets_an_error_record_and_its_batch_goes_on(tiny_inspector_unscreened,
                                                                                tiny_category, tmp_path, monkeypatch,
                                                                                overlap):
    folder = tmp_path / "in"
    shutil.copytree(tiny_category / "test" / "good", folder)
    cv2.imwrite(str(folder / "001-poison.png"), np.full((64, 64, 3), 255, np.uint8))
    insp = Inspector.load(tiny_inspector_unscreened)  # the capture check would refuse the white image first
    real = insp.backend.infer

    def infer(inputs):
        x = next(iter(inputs.values()))
        if (x.reshape(x.shape[0], -1).min(axis=1) > 1.5).any():  # the all-white image, normalised
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(inputs)

    monkeypatch.setattr(insp.backend, "infer", infer)
    summary = score_paths(insp, list_images([folder]), tmp_path / "out", batch_size=4, overlap=overlap)
    by = {Path(r.image).name: r for r in summary.records}
    assert summary.total == 5 and summary.counts["ERROR"] == 1
    assert by["001-poison.png"].decision == "ERROR"
    assert "inference failed: RuntimeError: CUDA error" in by["001-poison.png"].error
    assert all(r.decision in ("OK", "NG") for n, r in by.items() if n != "001-poison.png")
