from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edge.demo_data import make_category
from edge.fitting import FitOptions, fit_inspector

from .tiny_backbone import make_tiny_bundle


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    return make_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="session")
def tiny_category(tmp_path_factory) -> Path:
    """64x64 metal texture: 16 train/good, 4 test/good, 3 each of spot and stain, with masks."""
    return make_category(tmp_path_factory.mktemp("data") / "metal", "metal", n_train=16, n_test_good=4,
                         n_per_defect=3, defects=("spot", "stain"), size=(64, 64), seed=1,
                         strength=(0.9, 1.0))


@pytest.fixture(scope="session")
def tiny_inspector_ro(tmp_path_factory, tiny_bundle, tiny_category) -> Path:
    """A fitted inspector; tests that modify one must use ``tiny_inspector`` (a copy)."""
    out = tmp_path_factory.mktemp("insp") / "inspector"
    good = sorted((tiny_category / "train" / "good").glob("*.png"))
    # the tiny 16x16 grid is too coarse for a 3x3 average; 16 images cannot back a 1% target, so 5%
    fit_inspector(good, out, tiny_bundle, FitOptions(d=20, batch_size=4, aggregate=1, target_frr=0.05))
    return out


@pytest.fixture(scope="session")
def tiny_inspector_unscreened(tmp_path_factory, tiny_bundle, tiny_category) -> Path:
    """The same fit with ``--capture-tolerance off``: it judges whatever it is given (flat, black or odd
    pictures that the capture check would refuse), for tests of what happens to such pixels further on."""
    out = tmp_path_factory.mktemp("insp-unscreened") / "inspector"
    good = sorted((tiny_category / "train" / "good").glob("*.png"))
    fit_inspector(good, out, tiny_bundle, FitOptions(d=20, batch_size=4, aggregate=1, target_frr=0.05,
                                                     capture_tolerance=None))
    return out


@pytest.fixture
def tiny_inspector(tmp_path, tiny_inspector_ro) -> Path:
    dst = tmp_path / "inspector"
    shutil.copytree(tiny_inspector_ro, dst)
    return dst


@pytest.fixture(autouse=True)
def _no_user_backbone(monkeypatch, tmp_path):
    """Tests never see the user's real default backbone or data dir."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EDGE_INSPECT_BACKBONE", raising=False)
    yield
