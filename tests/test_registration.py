"""Registration of positioned parts to a reference view (edge/registration.py), through the functions,
the inspector and the CLI."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.errors import BundleError
from edge.fitting import FitOptions, fit_inspector, update_inspector
from edge.inspector import Inspector
from edge.padim.tiling import Tiling
from edge.registration import IDENTITY, REGISTRATION_FILE, Registration

from . import parts


def test_estimate_undoes_a_small_turn_and_shift():
    ref = parts.part()
    reg = Registration.build([ref], (256, 256))
    moved = parts.moved(parts.part(seed=1), 3.0, 6.0, -5.0)
    w = reg.estimate(moved)
    angle = math.degrees(math.atan2(float(w[1, 0]), float(w[0, 0])))
    assert angle == pytest.approx(-3.0, abs=0.3)  # the warp maps reference points into the moved image
    back = reg.apply(moved, w).astype(np.float64)
    inner = (slice(30, 226), slice(30, 226))  # away from the reflected border
    before = np.abs(moved.astype(np.float64) - ref)[inner].mean()
    after = np.abs(back - ref)[inner].mean()
    assert after < 0.3 * before
    # where the moved image has the hole's centre, the warp says the reference has it
    c_ref = np.array([80.0, 90.0, 1.0])
    hole_in_moved = cv2.transform(np.array([[[80.0, 90.0]]]),
                                  np.vstack([cv2.getRotationMatrix2D((127.5, 127.5), 3.0, 1.0)[:2]])
                                  + np.array([[0, 0, 6.0], [0, 0, -5.0]]))[0, 0]
    assert np.allclose(w.astype(np.float64) @ c_ref, hole_in_moved, atol=1.5)


def test_what_is_not_a_small_correction_is_left_as_it_is():
    reg = Registration.build([parts.part()], (256, 256))
    flat = np.full((256, 256, 3), 128, np.uint8)
    assert np.array_equal(reg.estimate(flat), IDENTITY)  # nothing to register on
    noise = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    assert np.array_equal(reg.estimate(noise), IDENTITY)  # another view entirely
    assert np.array_equal(reg.apply(flat, IDENTITY), flat)


def test_maps_go_back_to_the_image_frame():
    reg = Registration.build([parts.part()], (256, 256))
    w = np.array([[1, 0, 8.0], [0, 1, -4.0]], np.float32)  # reference point x is image point x + (8, -4)
    g = np.zeros((64, 64), np.float32)
    g[30, 20] = 1.0  # row 30, column 20 of the reference frame's grid (stride 4)
    back = reg.map_to_image(g, w)
    r, c = np.unravel_index(np.argmax(back), back.shape)
    assert (r, c) == (29, 22)  # 4 px up is one cell, 8 px right two
    assert np.array_equal(reg.map_to_image(g, IDENTITY), g)


def test_build_averages_registered_views():
    views = [parts.moved(parts.part(seed=i), a, dx, dy)
             for i, (a, dx, dy) in enumerate([(0, 0, 0), (2, 4, 3), (-2, -3, 5)])]
    reg = Registration.build(views, (256, 256))
    assert reg.reference.shape == (64, 64) and reg.reference.dtype == np.uint8
    first = Registration.build(views[:1], (256, 256))
    # averaging registered views keeps the part sharp: close to the first view, not a blur of three
    diff = np.abs(reg.reference.astype(float) - first.reference)[8:56, 8:56].mean()
    assert diff < 4.0


def test_aligned_inspector_registers_and_masks_stay_in_the_photo(tmp_path, tiny_bundle):
    good = parts.part_folder(tmp_path / "good", 12)
    out = tmp_path / "insp"
    rep = fit_inspector(good, out, tiny_bundle, FitOptions(d=12, batch_size=4, mode="aligned", target_frr=0.05))
    assert rep.registered and (out / REGISTRATION_FILE).is_file()
    m = json.loads((out / "manifest.json").read_text())
    assert m["padim"]["registration"]["file"] == REGISTRATION_FILE and REGISTRATION_FILE in m["files"]
    insp = Inspector.load(out)
    assert insp.registration is not None and insp.describe()["registration"].startswith("rigid")
    # a part turned and shifted, with a dark scratch: the mask's peak lands on the scratch, in the photo
    bad = parts.moved(parts.part(64, seed=99), 2.0, 2.0, -1.0)
    cv2.line(bad, (20, 40), (34, 44), (0, 0, 0), 2)
    res = insp.inspect([bad])[0]
    assert res.anomaly_map.shape == (64, 64)
    r, c = np.unravel_index(np.argmax(res.anomaly_map), res.anomaly_map.shape)
    assert abs(r - 42) <= 8 and abs(c - 27) <= 10
    # the same image twice gives the same result (the warp memo never mixes images up)
    a, b = insp.inspect([bad, bad.copy()])
    assert a.raw_score == pytest.approx(b.raw_score, rel=1e-6) == pytest.approx(res.raw_score, rel=1e-6)


def test_registration_is_kept_by_update_and_tamper_is_refused(tmp_path, tiny_bundle):
    good = parts.part_folder(tmp_path / "good", 10)
    more = parts.part_folder(tmp_path / "more", 4, seed=5)
    out = tmp_path / "insp"
    fit_inspector(good, out, tiny_bundle, FitOptions(d=12, batch_size=4, mode="aligned", target_frr=0.05))
    ref = (out / REGISTRATION_FILE).read_bytes()
    rep = update_inspector(out, more)
    assert rep.registered and (out / REGISTRATION_FILE).read_bytes() == ref
    assert json.loads((out / "manifest.json").read_text())["padim"]["registration"] is not None
    img = cv2.imread(str(out / REGISTRATION_FILE), cv2.IMREAD_GRAYSCALE)
    img[10:20, 10:20] = 255 - img[10:20, 10:20]
    cv2.imwrite(str(out / REGISTRATION_FILE), img)
    with pytest.raises(BundleError, match=REGISTRATION_FILE):
        Inspector.load(out)


def test_off_tiled_and_texture_do_not_register(tmp_path, tiny_bundle):
    good = parts.part_folder(tmp_path / "good", 8)
    for name, opts in {"off": FitOptions(d=12, batch_size=4, mode="aligned", register="off", target_frr=0.05),
                       "tiled": FitOptions(d=12, batch_size=4, mode="aligned", tiling=Tiling(1, 2, "shared"),
                                           target_frr=0.05),
                       "texture": FitOptions(d=12, batch_size=4, mode="texture", aggregate=1, target_frr=0.05)}.items():
        out = tmp_path / name
        rep = fit_inspector(good, out, tiny_bundle, opts)
        assert not rep.registered and not (out / REGISTRATION_FILE).exists(), name
        assert Inspector.load(out).registration is None


def test_cli_fit_register_flag_and_info(tmp_path, tiny_bundle):
    good = tmp_path / "good"
    parts.part_folder(good, 8)
    r = CliRunner().invoke(cli, ["fit", "--good", str(good), "--out", str(tmp_path / "a"), "--backbone",
                                 str(tiny_bundle), "-d", "12", "--mode", "aligned", "--target-frr", "0.05"])
    assert r.exit_code == 0, r.output
    assert "registration:" in r.output and "registration.png" in r.output
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "a")])
    assert info.exit_code == 0 and "registration" in info.output and "rigid" in info.output
    r = CliRunner().invoke(cli, ["fit", "--good", str(good), "--out", str(tmp_path / "b"), "--backbone",
                                 str(tiny_bundle), "-d", "12", "--mode", "aligned", "--register", "off",
                                 "--target-frr", "0.05"])
    assert r.exit_code == 0, r.output
    assert "registration:" not in r.output and not (tmp_path / "b" / REGISTRATION_FILE).exists()
    assert "--register" in CliRunner().invoke(cli, ["fit", "--help"]).output


def test_a_surface_fitted_aligned_is_not_registered_and_fit_says_why(tmp_path, tiny_bundle):
    """--register auto tries the reference on further good images: on a random surface ECC finds no
    small correction, so nothing is registered (every image would pay the ECC for nothing)."""
    from edge.registration import worth_registering

    good = tmp_path / "good"
    good.mkdir()
    rng = np.random.default_rng(3)
    for i in range(16):  # fine noise with no structure to lock onto: each image a different patch
        cv2.imwrite(str(good / f"{i:03d}.png"), rng.integers(60, 200, (64, 64, 3), dtype=np.uint8))
    r = CliRunner().invoke(cli, ["fit", "--good", str(good), "--out", str(tmp_path / "s"), "--backbone",
                                 str(tiny_bundle), "-d", "12", "--mode", "aligned", "--target-frr", "0.05"])
    assert r.exit_code == 0, r.output
    assert "registration: not registered: ECC found a small correction for only" in r.output
    assert not (tmp_path / "s" / REGISTRATION_FILE).exists() and Inspector.load(tmp_path / "s").registration is None
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "s")])
    assert "none (not registered: ECC found" in info.output
    # the positioned part, moved a little in each image, is corrected in every one
    views = [cv2.imread(str(p)) for p in parts.part_folder(tmp_path / "parts", 12)]
    keep, why = worth_registering(Registration.build(views[:8], (64, 64)), views[8:])
    assert keep and "for 4 of the 4 good images" in why


def test_a_frame_fit_skips_is_not_the_reference(tmp_path, tiny_bundle):
    """An image too far off the model's shape is skipped by fit (with its reason), also for the reference."""
    folder = tmp_path / "good"
    parts.part_folder(folder, 8)
    cv2.imwrite(str(folder / "000a_strip.png"), np.full((40, 200, 3), 128, np.uint8))  # sorts first
    rep = fit_inspector(sorted(folder.glob("*.png")), tmp_path / "insp", tiny_bundle,
                        FitOptions(d=12, batch_size=4, mode="aligned", target_frr=0.05))
    assert rep.registered and rep.n_fit == 8
    assert len(rep.errors) == 1 and "000a_strip.png" in rep.errors[0]


def test_a_strip_registers_on_a_copy_of_the_same_area_and_refuses_shifts_beyond_its_short_side():
    from edge.registration import _small_size

    assert _small_size((256, 256)) == (64, 64)
    assert _small_size((256, 1600)) == (26, 160)  # the same ~64² pixels, not 64x400
    rng = np.random.default_rng(4)
    wide = cv2.GaussianBlur(rng.uniform(0, 255, (64, 520)).astype(np.float32), (0, 0), 4)
    wide = cv2.normalize(wide, None, 0, 255, cv2.NORM_MINMAX)

    def strip(dx):
        return cv2.cvtColor(wide[:, 60 + dx:460 + dx].astype(np.uint8), cv2.COLOR_GRAY2BGR)

    reg = Registration.build([strip(0)], (64, 400))
    assert reg.small == _small_size((64, 400))
    near = reg.estimate(strip(4))
    assert float(near[0, 2]) == pytest.approx(-4, abs=1.5)  # a small correction is made (the content moved 4 px left)
    far = reg.estimate(strip(30))  # 47% of the strip's height: a look-alike, not the part slightly moved
    np.testing.assert_array_equal(far, IDENTITY)


def test_an_inspector_fitted_with_the_older_128_px_reference_still_registers(tmp_path):
    """REGISTRATION_SIDE went 128 -> 64; a reference saved at 128x128 keeps its own size."""
    part = parts.part(seed=0)
    grey = cv2.resize(cv2.cvtColor(part, cv2.COLOR_BGR2GRAY), (128, 128), interpolation=cv2.INTER_AREA)
    old = Registration(grey, (256, 256))
    old.save(tmp_path)
    loaded = Registration.load(tmp_path, (256, 256), {"motion": "euclidean", "size": [128, 128]})
    assert loaded.small == (128, 128)
    w = loaded.estimate(parts.moved(part, 0, 4, -3))
    assert abs(float(w[0, 2])) > 2 and abs(float(w[1, 2])) > 1.5  # the shift is found at the old size
