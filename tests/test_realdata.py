"""The real-photo evaluation set: MVTec layout, counts, masks that match their images, determinism."""

import json

import cv2
import numpy as np
import pytest

pytest.importorskip("skimage")

from benchmarks.realdata import CATEGORIES, GROUPS, Counts, generate, main  # noqa: E402
from edge.dataset import load_category  # noqa: E402

COUNTS = Counts(train=3, test_good=2, defects=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("realdata")
    generate(out, "all", 64, COUNTS, only=["coins", "gravel"], log=lambda *_: None)
    return out


@pytest.mark.parametrize("name", ["coins", "gravel"])
def test_layout_counts_and_masks(tiny, name):
    spec = next(c for c in CATEGORIES if c.name == name)
    cat = load_category(tiny / name)  # the product's own reader accepts it
    assert len(cat.train_good) == COUNTS.train
    assert sum(not t.is_defect for t in cat.test) == COUNTS.test_good
    defects = [t for t in cat.test if t.is_defect]
    assert len(defects) == COUNTS.defects
    assert sorted({t.kind for t in defects}) == sorted(spec.defects)  # one of each kind with 4 defects
    for t in defects:
        assert t.mask is not None and t.mask.name == f"{t.path.stem}_mask.png"
        img, mask = cv2.imread(str(t.path)), cv2.imread(str(t.mask), cv2.IMREAD_GRAYSCALE)
        assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
        assert set(np.unique(mask)) <= {0, 255} and (mask > 0).any(), t.mask
    records = json.loads((tiny / name / "defects.json").read_text())
    assert [r["image"] for r in records] == [str(t.path.relative_to(tiny / name)) for t in
                                             sorted(defects, key=lambda t: (spec.defects.index(t.kind), t.path.name))]
    assert not (tiny / name / "ground_truth" / "good").exists()


def test_readme_and_description(tiny):
    desc = json.loads((tiny / "dataset.json").read_text())
    assert [c["name"] for c in desc["categories"]] == ["coins", "gravel"]
    assert desc["size"] == 64 and desc["seed"] == 0
    text = (tiny / "README.txt").read_text()
    assert "coins" in text and "skimage:gravel.png" in text


def test_deterministic_and_train_test_differ(tiny, tmp_path):
    main([str(tmp_path), "--group", "holdout", "--size", "64", "--categories", "gravel",
          "--train", "3", "--test-good", "2", "--defects", "4"])
    for rel in ["train/good/000.png", "test/good/001.png", "ground_truth/scratch/000_mask.png"]:
        assert (tmp_path / "gravel" / rel).read_bytes() == (tiny / "gravel" / rel).read_bytes(), rel
    a = cv2.imread(str(tiny / "gravel/train/good/000.png")).astype(float)
    b = cv2.imread(str(tiny / "gravel/test/good/000.png")).astype(float)
    assert np.abs(a - b).mean() > 5  # a test crop is not a copy of a train crop


def test_groups_use_different_photographs():
    dev, hold = GROUPS["dev"], GROUPS["holdout"]
    assert len(dev) >= 4 and len(hold) >= 6
    assert {c.kind for c in dev} == {"aligned", "surface"}
    assert sum(c.kind == "aligned" for c in hold) == 2 and sum(c.kind == "surface" for c in hold) == 4
    assert not {c.photo for c in dev} & {c.photo for c in hold}
    assert all(len(c.defects) >= 3 for c in CATEGORIES)


def test_unknown_category_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="no category"):
        generate(tmp_path, "dev", 64, COUNTS, only=["nope"])
