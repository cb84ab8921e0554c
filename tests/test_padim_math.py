"""Golden tests: the streaming, vectorised PaDiM math against direct, slow formulas."""

import cv2
import numpy as np
import pytest

from edge.bundle import Tap
from edge.padim.embed import embed, make_spec
from edge.padim.moments import Moments, ledoit_wolf
from edge.padim.score import anomaly_mask, full_res_map, image_score, mahalanobis
from edge.padim.stats import GaussianStats, gaussian_from_moments


def _stream(x: np.ndarray, batch: int) -> Moments:
    m = None
    for i in range(0, x.shape[0], batch):
        b = x[i:i + batch]
        if m is None:
            m = Moments.empty(b.mean(axis=0).T.astype(np.float64))
        m.add(b)
    return m


@pytest.mark.parametrize("batch", [1, 3, 7, 40])
def test_streaming_moments_equal_stacked(batch):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(40, 6, 9)) * 5 + 100).astype(np.float32)  # offset: tests the shift
    m = _stream(x, batch)
    mean, cov = m.mean_cov()
    y = x.transpose(2, 0, 1).astype(np.float64)  # (P, N, d) stacked embeddings
    np.testing.assert_allclose(mean, y.mean(axis=1), rtol=0, atol=1e-9)
    direct = np.stack([np.cov(y[p].T, bias=True) for p in range(y.shape[0])])
    np.testing.assert_allclose(cov, direct, rtol=1e-9, atol=1e-9)
    fourth = np.stack([(np.linalg.norm(y[p] - y[p].mean(0), axis=1) ** 4).sum() for p in range(y.shape[0])])
    np.testing.assert_allclose(m.sum_fourth_centered(), fourth, rtol=1e-8)


def test_merge_and_persistence_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20, 4, 5)).astype(np.float32)
    a = _stream(x[:12], 4)
    b = Moments.empty(a.shift)
    b.add(x[12:])
    whole = _stream(x, 20)
    merged = a.merge(b)
    np.testing.assert_allclose(merged.mean_cov()[1], whole.mean_cov()[1], atol=1e-12)
    np.savez(tmp_path / "m.npz", **merged.to_arrays())
    with np.load(tmp_path / "m.npz", allow_pickle=False) as z:
        back = Moments.from_arrays(z)
    np.testing.assert_array_equal(back.s2, merged.s2)
    assert back.n == 20


def _lw_direct(xc: np.ndarray):
    n, p = xc.shape
    s = xc.T @ xc / n
    mu = np.trace(s) / p
    delta = ((s - mu * np.eye(p)) ** 2).sum() / p
    beta = sum(((np.outer(v, v) - s) ** 2).sum() for v in xc) / (n * n * p)
    k = min(beta, delta) / delta
    return (1 - k) * s + k * mu * np.eye(p), k


def test_ledoit_wolf_matches_direct_formula():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 10, 3)).astype(np.float32)  # n=8 < d=10: singular sample covariance
    m = _stream(x, 3)
    _, cov = m.mean_cov()
    shrunk, k = ledoit_wolf(cov, m.sum_fourth_centered(), m.n)
    y = x.transpose(2, 0, 1).astype(np.float64)
    for p in range(3):
        ref, kr = _lw_direct(y[p] - y[p].mean(0))
        np.testing.assert_allclose(shrunk[p], ref, atol=1e-10)
        assert k[p] == pytest.approx(kr)
    assert np.all(np.linalg.eigvalsh(shrunk) > 0)  # shrinkage makes it invertible


@pytest.mark.parametrize("precision,rel", [("fp32", 1e-4), ("auto", 2e-3)])
def test_mahalanobis_matches_inverse_formula(precision, rel):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 5, 6)).astype(np.float32)
    st = gaussian_from_moments(_stream(x, 8), np.arange(5), (2, 3), eps=0.01, shrinkage="none")
    q = rng.normal(size=(4, 5, 6)).astype(np.float32)
    got = mahalanobis(q, st, precision).reshape(4, 6)
    y = x.transpose(2, 0, 1).astype(np.float64)
    for p in range(6):
        mu = y[p].mean(0)
        inv = np.linalg.inv(np.cov(y[p].T) + 0.01 * np.eye(5))  # paper: unbiased covariance + eps I
        for b in range(4):
            v = q[b, :, p] - mu
            assert got[b, p] == pytest.approx(np.sqrt(v @ inv @ v), rel=rel)


def test_auto_shrinkage_only_when_few_images():
    rng = np.random.default_rng(4)
    few = _stream(rng.normal(size=(5, 8, 2)).astype(np.float32), 5)
    many = _stream(rng.normal(size=(50, 8, 2)).astype(np.float32), 10)
    assert gaussian_from_moments(few, np.arange(8), (1, 2), shrinkage="auto").shrinkage == "ledoit-wolf"
    assert gaussian_from_moments(many, np.arange(8), (1, 2), shrinkage="auto").shrinkage == "none"
    assert gaussian_from_moments(few, np.arange(8), (1, 2)).shrinkage == "none"  # the default: eps·I alone


def test_stats_npz_roundtrip_without_pickle(tmp_path):
    rng = np.random.default_rng(5)
    st = gaussian_from_moments(_stream(rng.normal(size=(10, 3, 4)).astype(np.float32), 5), np.array([0, 2, 5]),
                               (2, 2))
    st.save(tmp_path / "s.npz")
    back = GaussianStats.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.factor, st.factor)
    assert back.grid == (2, 2) and back.n == 10


def test_embed_gathers_channels_and_upsamples_nearest():
    taps = (Tap("a", 4, 2), Tap("b", 8, 3))
    spec = make_spec(taps, (16, 16), d=None)
    a = np.arange(2 * 4 * 4, dtype=np.float32).reshape(1, 2, 4, 4)
    b = np.arange(3 * 2 * 2, dtype=np.float32).reshape(1, 3, 2, 2) + 100
    e = embed({"a": a, "b": b}, spec).reshape(1, 5, 4, 4)
    np.testing.assert_array_equal(e[0, :2], a[0])
    np.testing.assert_array_equal(e[0, 2:, 0:2, 0:2], np.broadcast_to(b[0, :, 0:1, 0:1], (3, 2, 2)))
    sub = make_spec(taps, (16, 16), d=3, seed=7)
    assert sub.d == 3 and np.all(np.diff(sub.channel_idx) > 0)
    assert np.array_equal(sub.channel_idx, make_spec(taps, (16, 16), d=3, seed=7).channel_idx)  # seeded


@pytest.mark.parametrize("size", [(16, 16), (16, 40), (20, 28), (13, 9)])
def test_embed_equals_the_nearest_cell_definition_on_any_grid(size):
    """Every output cell (c, y, x) holds its tap's channel at (y // ry, x // rx), whether the grid divides
    evenly (one strided write) or not (repeat and crop)."""
    taps = (Tap("a", 4, 3), Tap("b", 8, 2), Tap("c", 16, 4))
    spec = make_spec(taps, size, d=6, seed=1)
    rng = np.random.default_rng(0)
    outs = {t.name: rng.normal(size=(2, t.channels, -(-size[0] // t.stride), -(-size[1] // t.stride)))
            .astype(np.float32) for t in taps}
    gh, gw = spec.grid
    e = embed(outs, spec).reshape(2, spec.d, gh, gw)
    want = []
    for t, local in zip(taps, spec.per_tap()):
        f = outs[t.name][:, local]
        ry, rx = -(-gh // f.shape[2]), -(-gw // f.shape[3])
        want.append(f[:, :, np.arange(gh)[:, None] // ry, np.arange(gw)[None, :] // rx])
    np.testing.assert_array_equal(e, np.concatenate(want, axis=1))


def test_embed_into_a_scratch_buffer_gives_the_same_embedding_and_reuses_it_per_thread():
    import threading

    from edge.padim.embed import Scratch

    taps = (Tap("a", 4, 3), Tap("b", 8, 2), Tap("c", 16, 4))
    spec = make_spec(taps, (16, 24), d=6, seed=1)
    rng = np.random.default_rng(3)

    def outs(b):
        return {t.name: rng.normal(size=(b, t.channels, 16 // t.stride, 24 // t.stride)).astype(np.float32)
                for t in taps}

    scratch = Scratch()
    big, small = outs(5), outs(2)
    e1 = embed(big, scratch=scratch, spec=spec)
    np.testing.assert_array_equal(e1, embed(big, spec))
    e2 = embed(small, spec, scratch)  # a smaller batch: the same memory, its own values
    assert np.shares_memory(e1, e2) and e2.shape == (2, 6, 4 * 6)
    np.testing.assert_array_equal(e2, embed(small, spec))
    other = []
    t = threading.Thread(target=lambda: other.append(embed(small, spec, scratch)))
    t.start()
    t.join()
    assert not np.shares_memory(other[0], e2)  # another thread never writes into this one's embedding
    np.testing.assert_array_equal(other[0], e2)


def test_postprocess_sizes_and_mask_opening():
    grid = np.zeros((8, 8), np.float32)
    grid[3:5, 3:5] = 10
    amap = full_res_map(grid, (50, 70), sigma=1.0)
    assert amap.shape == (50, 70)
    mask = anomaly_mask(amap, 5.0, open_radius=2)
    assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255} and mask.any()
    speck = np.zeros((40, 40), np.float32)
    speck[20, 20] = 9  # a one-pixel speck is removed by the opening
    assert not anomaly_mask(speck, 5.0, open_radius=2).any()


def test_ng_mask_keeps_small_peak():
    amap = np.zeros((40, 40), np.float32)
    amap[20, 20] = 9
    assert not anomaly_mask(amap, 5.0, open_radius=2).any()
    kept = anomaly_mask(amap, 5.0, open_radius=2, keep_peak=True)
    assert kept[20, 20] == 255 and kept.sum() == 255


def _mask_of_whole_image(amap, threshold, radius, keep_peak=False):
    """The mask's definition: threshold, then an opening of the whole image."""
    import cv2

    m = (amap >= threshold).astype(np.uint8) * 255
    if radius > 0 and m.any():
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        opened = cv2.morphologyEx(m, cv2.MORPH_OPEN, k)
        m = m if keep_peak and not opened.any() else opened
    return m


@pytest.mark.parametrize("seed", range(6))
def test_mask_opened_on_the_defects_box_equals_the_opening_of_the_whole_image(seed):
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(30, 200)), int(rng.integers(30, 200))
    amap = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 5))):  # blobs and specks, some cut by the image's edges
        y, x = int(rng.integers(-5, h + 5)), int(rng.integers(-5, w + 5))
        r = int(rng.integers(0, 12))
        amap[max(0, y - r):max(0, y + r + 1), max(0, x - r):max(0, x + r + 1)] += rng.uniform(4, 9)
    amap += rng.normal(0, 0.5, amap.shape).astype(np.float32)
    for radius in (0, 1, 3, 4):
        for keep in (False, True):
            np.testing.assert_array_equal(anomaly_mask(amap, 5.0, radius, keep), _mask_of_whole_image(amap, 5.0, radius, keep))
    full = np.full((20, 30), 9.0, np.float32)  # everything above: the box is the image
    np.testing.assert_array_equal(anomaly_mask(full, 5.0, 4), _mask_of_whole_image(full, 5.0, 4))
    assert not anomaly_mask(np.zeros((20, 30), np.float32), 5.0, 4, True).any()


def test_aggregation_is_the_mean_of_each_3x3_neighbourhood_with_edges_replicated():
    from edge.padim.embed import box_average

    f = np.random.default_rng(5).normal(size=(2, 3, 6, 5)).astype(np.float32)
    p = np.pad(f, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    direct = sum(p[:, :, i:i + 6, j:j + 5] for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(box_average(f, 3), direct, rtol=1e-5, atol=1e-6)
    assert box_average(f, 1) is f


@pytest.mark.parametrize("grid,out,roi", [((50, 60), (400, 480), False), ((40, 40), (640, 640), False),
                                          ((50, 60), (400, 480), True), ((30, 200), (240, 1600), True)])
def test_big_cells_are_blurred_at_a_coarser_size_with_the_full_size_score(grid, out, roi):
    """8- and 16-pixel cells (big photos in windows): the blur runs at 1/2 or 1/4 of the size and the peak's
    neighbourhood at full size, so the image score is the full-size blur's (float noise) and the mask at a
    high threshold nearly the same; a region of interest still zeroes everything outside it."""
    from edge.padim.score import _blurred, work_scale

    assert work_scale(grid, out, 4.0) > 1
    rng = np.random.default_rng(sum(grid))
    g = cv2.GaussianBlur((rng.random(grid) * 2 + 10).astype(np.float32), (0, 0), 1.0)
    g[grid[0] // 2:grid[0] // 2 + 2, grid[1] // 3:grid[1] // 3 + 6] += 8  # a scratch two cells wide
    inside = None
    if roi:
        inside = np.ones(out, bool)
        inside[:, : out[1] // 3] = False
        g[grid[0] // 4, 2] += 20  # a higher peak outside the region: never scored
    fast, full = full_res_map(g, out, 4.0, inside), _blurred(g, out, 4.0, inside)
    assert fast.shape == full.shape == out and fast.dtype == np.float32
    assert image_score(fast) == pytest.approx(image_score(full), rel=1e-5)
    thr = 0.5 * (np.median(full) + full.max())
    a, b = fast >= thr, full >= thr
    assert b.any() and (a & b).sum() / (a | b).sum() > 0.93
    if roi:
        assert not fast[~inside].any()


def test_cells_of_four_pixels_are_blurred_at_full_size_exactly():
    """Images at the model's input (4-pixel cells, 256x256 on a 64x64 grid) keep the one full-size blur."""
    from edge.padim.score import _blurred, work_scale

    g = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    assert work_scale((64, 64), (256, 256), 4.0) == 1 and work_scale((64, 400), (256, 1600), 4.0) == 1
    np.testing.assert_array_equal(full_res_map(g, (256, 256), 4.0), _blurred(g, (256, 256), 4.0, None))
