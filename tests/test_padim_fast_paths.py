"""Golden tests for the fast paths of issue 5: each one against the direct, slow formula."""

import json

import numpy as np
import pytest

from edge.padim.factor import BlockRows, band_edges, pack_lower, unpack_lower
from edge.padim.moments import Moments, ledoit_wolf, precision_factor
from edge.padim.score import mahalanobis, mahalanobis_dense
from edge.padim.stats import GaussianStats, gaussian_from_moments


def _stream(x: np.ndarray, batch: int) -> Moments:
    m = Moments.empty(x[:batch].mean(axis=0).T.astype(np.float64))
    for i in range(0, x.shape[0], batch):
        m.add(x[i:i + batch])
    return m


def _tril(rng, p, d):
    return np.tril(rng.normal(size=(p, d, d))).astype(np.float32)


@pytest.mark.parametrize("d", [1, 7, 20, 33, 100])
@pytest.mark.parametrize("b", [1, 3])
def test_block_rows_equal_dense_matmul(d, b):
    rng = np.random.default_rng(d)
    f = _tril(rng, 11, d)
    y = rng.normal(size=(11, d, b)).astype(np.float32)
    br = BlockRows.from_dense(f)
    np.testing.assert_allclose(br.apply(y), np.matmul(f, y), rtol=1e-5, atol=1e-5)
    edges = band_edges(d)
    assert edges[0] == 0 and edges[-1] == d and all(b > a for a, b in zip(edges[:-1], edges[1:]))
    if d >= 40:  # bands skip most of the zeros above the diagonal
        assert br.nbytes < 0.65 * f.nbytes


def test_pack_unpack_roundtrip():
    rng = np.random.default_rng(0)
    f = _tril(rng, 5, 9)
    packed = pack_lower(f)
    assert packed.shape == (5, 45)
    np.testing.assert_array_equal(unpack_lower(packed, 9), f)


@pytest.mark.parametrize("chunk", [1, 4, 128])
def test_chunked_add_equals_stacked(chunk):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(13, 6, 9)) * 3 + 50).astype(np.float32)
    m = Moments.empty(x[:4].mean(axis=0).T.astype(np.float64))
    for i in range(0, 13, 4):
        m.add(x[i:i + 4], chunk=chunk)
    y = x.transpose(2, 0, 1).astype(np.float64)
    mean, cov = m.mean_cov()
    np.testing.assert_allclose(mean, y.mean(axis=1), atol=1e-9)
    np.testing.assert_allclose(cov, np.stack([np.cov(y[p].T, bias=True) for p in range(9)]), atol=1e-9)
    assert m.n == 13


def test_add_rejects_mismatched_shape():
    m = Moments.empty(np.zeros((9, 6)))
    with pytest.raises(ValueError):
        m.add(np.zeros((2, 9, 6), np.float32))


def _direct_gaussian(m: Moments, eps: float, lw: bool):
    """Whole-array finalisation: the formula the chunked one must reproduce."""
    mean, cov = m.mean_cov()
    if lw:
        cov, _ = ledoit_wolf(cov, m.sum_fourth_centered(), m.n)
    cov = cov * (m.n / (m.n - 1)) + eps * np.eye(cov.shape[-1])
    return mean, precision_factor(cov)


@pytest.mark.parametrize("n,shrinkage", [(30, "none"), (5, "auto"), (30, "ledoit-wolf")])
@pytest.mark.parametrize("chunk", [1, 4, 256])
def test_chunked_finalisation_equals_whole(n, shrinkage, chunk):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(n, 8, 10)).astype(np.float32)
    m = _stream(x, 4)
    st = gaussian_from_moments(m, np.arange(8), (2, 5), eps=0.01, shrinkage=shrinkage, chunk=chunk)
    lw = shrinkage == "ledoit-wolf" or n <= 8
    mean, factor = _direct_gaussian(m, 0.01, lw)
    np.testing.assert_allclose(st.mean, mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(st.factor, factor, rtol=1e-5, atol=1e-5)
    assert st.shrinkage == ("ledoit-wolf" if lw else "none")
    if lw:
        _, k = ledoit_wolf(m.mean_cov()[1], m.sum_fourth_centered(), m.n)
        assert st.shrink_mean == pytest.approx(k.mean())


@pytest.mark.parametrize("precision,rtol", [("fp32", 1e-5), ("auto", 1e-3)])
def test_fast_mahalanobis_equals_inverse_formula(precision, rtol):
    rng = np.random.default_rng(3)
    d, p = 45, 6
    x = rng.normal(size=(80, d, p)).astype(np.float32)
    st = gaussian_from_moments(_stream(x, 16), np.arange(d), (2, 3), eps=0.01, shrinkage="none")
    q = rng.normal(size=(4, d, p)).astype(np.float32)
    got = mahalanobis(q, st, precision).reshape(4, p)
    np.testing.assert_allclose(got, mahalanobis_dense(q, st).reshape(4, p), rtol=rtol)
    y = x.transpose(2, 0, 1).astype(np.float64)
    for j in range(p):
        inv = np.linalg.inv(np.cov(y[j].T) + 0.01 * np.eye(d))
        v = q[:, :, j] - y[j].mean(0)
        np.testing.assert_allclose(got[:, j], np.sqrt(np.einsum("bi,ij,bj->b", v, inv, v)), rtol=1e-3)


@pytest.mark.parametrize("fmt", ["packed-lower", "dense"])
def test_stats_file_formats_roundtrip(tmp_path, fmt):
    rng = np.random.default_rng(5)
    st = gaussian_from_moments(_stream(rng.normal(size=(10, 3, 4)).astype(np.float32), 5), np.array([0, 2, 5]),
                               (2, 2))
    st.save(tmp_path / "s.npz", factor_format=fmt)
    with np.load(tmp_path / "s.npz") as z:
        assert str(z["factor_format"]) == fmt
    back = GaussianStats.load(tmp_path / "s.npz")
    np.testing.assert_array_equal(back.factor, st.factor)
    np.testing.assert_array_equal(back.mean, st.mean)


def test_schema1_stats_file_without_format_flag_loads(tmp_path):
    rng = np.random.default_rng(6)
    st = gaussian_from_moments(_stream(rng.normal(size=(10, 3, 4)).astype(np.float32), 5), np.arange(3), (2, 2))
    np.savez(tmp_path / "old.npz", mean=st.mean, factor=st.factor, channel_idx=st.channel_idx,
             grid=np.array(st.grid), n=np.array(st.n), eps=np.array(st.eps), shrinkage=np.array(st.shrinkage),
             shrink_mean=np.array(st.shrink_mean))
    np.testing.assert_array_equal(GaussianStats.load(tmp_path / "old.npz").factor, st.factor)


def test_packed_stats_file_is_about_half_the_dense_one(tmp_path):
    rng = np.random.default_rng(7)
    st = gaussian_from_moments(_stream(rng.normal(size=(60, 40, 16)).astype(np.float32), 20), np.arange(40),
                               (4, 4))
    st.save(tmp_path / "p.npz")
    st.save(tmp_path / "d.npz", factor_format="dense")
    assert (tmp_path / "p.npz").stat().st_size < 0.6 * (tmp_path / "d.npz").stat().st_size


def test_inspector_schema1_directory_still_loads(tiny_inspector):
    from edge.bundle import hash_tree, write_json
    from edge.inspector import Inspector, inspector_id

    st = GaussianStats.load(tiny_inspector / "stats.npz")
    st.save(tiny_inspector / "stats.npz", factor_format="dense")
    m = json.loads((tiny_inspector / "manifest.json").read_text())
    m["schema_version"] = 1
    m["files"] = hash_tree(tiny_inspector)
    m["id"] = inspector_id(m["files"])
    write_json(tiny_inspector / "manifest.json", m)
    insp = Inspector.load(tiny_inspector)
    from edge.demo_data import texture

    img = texture("metal", (64, 64), np.random.default_rng(0))  # a part like the good ones
    assert insp.inspect([img])[0].anomaly_map.shape == (64, 64)
