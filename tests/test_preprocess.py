"""Image → model input: resize, colour order and per-channel normalisation, as the manifest says."""

import numpy as np
import pytest

from edge.bundle import InputSpec
from edge.preprocess import batch_tensor, to_tensor


def _direct(img_bgr, mean, std, color):
    x = img_bgr[:, :, ::-1] if color == "RGB" else img_bgr
    x = (x.astype(np.float64) / 255.0 - np.asarray(mean)) / np.asarray(std)
    return x.transpose(2, 0, 1)


@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_normalisation_and_channel_order_match_the_formula(color):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(8, 12, 3), dtype=np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    spec = InputSpec("image", 8, 12, mean, std, color=color)
    x = to_tensor(img, spec)
    assert x.shape == (3, 8, 12) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(x, _direct(img, mean, std, color), rtol=1e-6, atol=1e-6)
    # a pure-red BGR pixel lands in channel 0 of an RGB model and channel 2 of a BGR one
    red = np.zeros((8, 12, 3), np.uint8)
    red[..., 2] = 255
    hot = to_tensor(red, spec).mean(axis=(1, 2)) > to_tensor(np.zeros_like(red), spec).mean(axis=(1, 2))
    assert hot.tolist() == ([True, False, False] if color == "RGB" else [False, False, True])


def test_batch_resizes_each_image_to_the_model_input():
    spec = InputSpec("image", 8, 12, (0.5,) * 3, (0.25,) * 3)
    imgs = [np.full((16, 24, 3), 200, np.uint8), np.full((4, 6, 3), 10, np.uint8)]
    x = batch_tensor(imgs, spec)
    assert x.shape == (2, 3, 8, 12)
    np.testing.assert_allclose(x[0], (200 / 255 - 0.5) / 0.25, rtol=1e-6)
    np.testing.assert_allclose(x[1], (10 / 255 - 0.5) / 0.25, rtol=1e-6)
