"""The aligned model's position scale: each position's distances divided by how far held-out good
images strayed there (padim/crossfit.PositionScale), learned by `fit` and used by scoring."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.fitting import FitOptions, fit_inspector
from edge.inspector import Inspector
from edge.padim.crossfit import PositionScale
from edge.padim.embed import embed
from edge.padim.score import mahalanobis


def test_scale_without_an_image_is_the_others_mean_and_the_full_scale_has_mean_one():
    rng = np.random.default_rng(0)
    grids = [rng.uniform(1, 3, (2, 4, 5)) for _ in range(6)]  # 2 rows per image (tiles sharing statistics)
    ps = PositionScale((4, 5))
    assert ps.scale() is None  # no spread to measure yet
    for k, g in enumerate(grids):
        ps.add(k, g)
    full = ps.scale()
    assert full.shape == (4, 5) and full.dtype == np.float32
    assert full.mean() == pytest.approx(1.0, rel=1e-6)
    per_image = np.array([g.mean(axis=0) for g in grids])
    np.testing.assert_allclose(full, per_image.mean(0) / per_image.mean(), rtol=1e-6)
    others = np.delete(per_image, 2, axis=0).mean(0)
    left_out = ps.scale(without=2)
    np.testing.assert_allclose(left_out / left_out.mean(), others / others.mean(), rtol=1e-5)  # image 2 not in it
    with pytest.raises(ValueError):
        ps.add(2, grids[2])


def _part(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A positioned part: a fixed pattern, with a corner where good parts really vary (fresh noise)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = 120 + 40 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 3, (size, size))
    img[:20, :20] = rng.uniform(30, 230, (20, 20))
    return cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


@pytest.fixture(scope="module")
def varying_corner(tmp_path_factory, tiny_bundle) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("corner")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(10):
        paths.append(root / f"good{i:02d}.png")
        cv2.imwrite(str(paths[-1]), _part(rng))
    out = root / "insp"
    fit_inspector(paths, out, tiny_bundle, FitOptions(d=20, mode="aligned", aggregate=1, batch_size=4,
                                                      register="off"))
    return out, paths


def test_fit_learns_where_good_parts_stray_and_scoring_divides_by_it(varying_corner):
    out, paths = varying_corner
    insp = Inspector.load(out)
    scale = insp.stats.position_scale
    assert scale is not None and scale.shape == (insp.stats.grid[0] * insp.stats.grid[1],)
    assert scale.mean() == pytest.approx(1.0, rel=1e-3)
    grid = scale.reshape(insp.stats.grid)
    gh, gw = insp.stats.grid
    corner = grid[: gh // 4, : gw // 4].mean()  # the varying 20x20 px of 64 px
    quiet = grid[gh // 2:, gw // 2:].mean()
    assert corner > 1.5 * quiet

    img = cv2.imread(str(paths[0]))
    feats = insp.backend.infer({insp.backend.input_name: insp.tensors([img])})
    raw = mahalanobis(embed(feats, insp.spec), insp.stats)
    np.testing.assert_allclose(insp.grid_maps([img]), raw / grid[None], rtol=1e-4)


def test_a_defect_where_good_parts_are_steady_stands_out_more_from_the_corner_that_varies(varying_corner):
    out, _ = varying_corner
    insp = Inspector.load(out)
    rng = np.random.default_rng(7)
    good = [_part(rng) for _ in range(6)]
    bad = []
    for im in (_part(rng) for _ in range(6)):
        im = im.copy()
        cv2.circle(im, (44, 44), 3, (90, 90, 90), -1)  # a faint spot in the steady part
        bad.append(im)

    def margin():  # how far the weakest defect is above the strongest good part
        return min(insp.grid_maps(bad).max(axis=(1, 2))) / max(insp.grid_maps(good).max(axis=(1, 2)))

    with_scale = margin()
    insp.stats = dataclasses.replace(insp.stats, position_scale=None)  # the same statistics without it
    without = margin()
    assert with_scale > 1.0
    assert with_scale > 1.2 * without


def test_info_shows_the_scale_and_update_keeps_it(tmp_path, varying_corner):
    out, _ = varying_corner
    insp_dir = tmp_path / "insp"
    shutil.copytree(out, insp_dir)
    before = Inspector.load(insp_dir).stats.position_scale.copy()
    info = CliRunner().invoke(cli, ["info", str(insp_dir)])
    assert info.exit_code == 0, info.output
    assert "position scale: maps divided by how far held-out good images strayed" in info.output
    more = tmp_path / "more"
    more.mkdir()
    rng = np.random.default_rng(11)
    for i in range(3):
        cv2.imwrite(str(more / f"new{i}.png"), _part(rng))
    r = CliRunner().invoke(cli, ["fit", "--good", str(more), "--out", str(insp_dir), "--update"])
    assert r.exit_code == 0, r.output
    after = Inspector.load(insp_dir)
    assert after.stats.n == 13
    np.testing.assert_array_equal(after.stats.position_scale, before)  # measured by the first fit, kept
