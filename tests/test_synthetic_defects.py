"""The generic synthetic defects `fit --mode auto` plants into held-out good images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.model_choice import MAX_PER_IMAGE, synthetic_per_image
from edge.synthetic_defects import KINDS, plant


def _part(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((96, 128, 3), 90, np.uint8)
    img[20:70, 30:100] = 200  # a bright part with edges a warp can move
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_changes_the_image_only_near_its_mask(kind):
    img, donor = _part(0), _part(1)[::-1].copy()
    for seed in range(5):
        out, mask, k = plant(img, donor, np.random.default_rng(seed), kind)
        assert k == kind and out.shape == img.shape and out.dtype == np.uint8 and mask.shape == img.shape[:2]
        diff = np.abs(out.astype(int) - img.astype(int)).max(axis=-1)
        if mask.any():
            assert diff[mask].mean() > diff[~mask].mean()  # the change is where the mask says
        # nothing changes far from the defect: dilate the mask generously, outside it the image is intact
        near = cv2.dilate(mask.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool) | (diff <= 2)
        assert near.all(), f"{kind}: pixels changed far from the mask"


def test_a_warp_on_a_flat_region_changes_nothing_and_marks_nothing():
    flat = np.full((64, 64, 3), 128, np.uint8)
    out, mask, _ = plant(flat, flat, np.random.default_rng(0), "warp")
    assert not mask.any() and np.array_equal(out, flat)  # content moved onto identical content is no defect


def test_some_defects_are_faint():
    img, donor = _part(0), _part(1)
    peaks = [np.abs(plant(img, donor, np.random.default_rng(s), "stain")[0].astype(int) - img).max()
             for s in range(30)]
    assert min(peaks) < 0.7 * max(peaks)  # random strength, not always the full blend


def test_small_fits_plant_several_defects_per_image():
    assert synthetic_per_image(200) == 1 and synthetic_per_image(60) == 1
    assert synthetic_per_image(20) == 3 and synthetic_per_image(30) == 2
    assert synthetic_per_image(3) == MAX_PER_IMAGE
