"""The native Mahalanobis kernel: its layout, both code paths, both precisions, threads and fallback.

CI sets EDGE_INSPECT_REQUIRE_KERNEL=1, so there a kernel that failed to build is a failure, not a skip.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.padim import kernel
from edge.padim.score import mahalanobis, mahalanobis_bands
from edge.padim.stats import GaussianStats

if kernel.library() is None:
    if os.environ.get("EDGE_INSPECT_REQUIRE_KERNEL") == "1":
        raise RuntimeError(f"the native kernel is required here but: {kernel.status()}")
    pytest.skip(f"native kernel not built: {kernel.status()}", allow_module_level=True)


def _problem(d: int, p: int, b: int, seed: int = 0, scale: float = 1.0):
    """Random SPD covariances → lower-triangular precision factors, means and query embeddings."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(p, d, d))
    cov = (a @ a.transpose(0, 2, 1) / d + 0.1 * np.eye(d)) * scale**2
    inv = np.linalg.inv(cov)
    u = np.linalg.cholesky(inv[:, ::-1, ::-1])[:, ::-1, ::-1]  # inv = U Uᵀ, U upper → L = Uᵀ lower
    factor = np.ascontiguousarray(u.transpose(0, 2, 1), dtype=np.float32)
    mean = (rng.normal(size=(p, d)) * scale).astype(np.float32)
    x = (rng.normal(size=(b, d, p)) * scale).astype(np.float32)
    v = x.transpose(0, 2, 1).astype(np.float64) - mean
    exact = np.sqrt(np.einsum("bpi,pij,bpj->bp", v, inv, v))
    return factor, mean, x, exact


def test_layout_size_agrees_with_the_c_code():
    lib = kernel.library()
    for d in (1, 7, 8, 9, 16, 45, 100, 550):
        assert kernel.block_elems(d) == lib.ei_block_elems(d)
    # ~58% of dense at the paper's d=100, in fp32; half of that in fp16
    assert kernel.block_elems(100) / 100**2 == pytest.approx(0.579, abs=0.001)


def test_factor_is_lower_triangular_and_matches_the_inverse():
    factor, _, _, _ = _problem(6, 3, 1)
    assert np.allclose(np.triu(factor, 1), 0)


@pytest.mark.parametrize("d", [1, 5, 8, 13, 45, 100])
@pytest.mark.parametrize("b", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("generic", [False, True])
def test_distances_equal_the_inverse_formula(d, b, generic):
    factor, mean, x, exact = _problem(d, 12, b, seed=d * 31 + b)
    for precision, rtol in (("fp32", 2e-5), ("fp16", 2e-3)):
        bf = kernel.BlockedFactor.from_dense(factor, mean, precision, force_generic=generic)
        assert bf.precision == precision
        np.testing.assert_allclose(bf.distances(x, threads=1), exact, rtol=rtol)


def test_fp16_keeps_its_accuracy_at_any_feature_scale():
    errs = []
    for scale in (1e-3, 1.0, 1e3):  # factors ~1e3 .. ~1e-3: outside fp16's comfortable range unscaled
        factor, mean, x, exact = _problem(32, 8, 2, seed=4, scale=scale)
        got = kernel.BlockedFactor.from_dense(factor, mean, "fp16").distances(x)
        errs.append(np.abs(got / exact - 1).max())
    assert max(errs) < 2e-3
    assert max(errs) / min(errs) < 3  # the per-position scale makes the error independent of the scale


def test_threads_split_positions_without_changing_results(monkeypatch):
    monkeypatch.setattr(kernel, "MIN_POSITIONS_PER_THREAD", 4)
    factor, mean, x, _ = _problem(20, 37, 3, seed=9)  # 37 positions: uneven ranges
    bf = kernel.BlockedFactor.from_dense(factor, mean, "fp32")
    one = bf.distances(x, threads=1)
    for t in (2, 3, 5):
        np.testing.assert_array_equal(bf.distances(x, threads=t), one)


def test_shape_mismatch_is_refused():
    factor, mean, x, _ = _problem(8, 4, 1)
    bf = kernel.BlockedFactor.from_dense(factor, mean, "fp32")
    with pytest.raises(ValueError, match="does not fit"):
        bf.distances(x[:, :5])


def _stats(d=24, grid=(4, 5), seed=2):
    factor, mean, x, exact = _problem(d, grid[0] * grid[1], 3, seed=seed)
    st = GaussianStats(mean, factor, np.arange(d), grid, n=100, eps=0.01, shrinkage="none", shrink_mean=0.0)
    return st, x, exact


def test_mahalanobis_picks_the_kernel_and_agrees_with_numpy_bands():
    st, x, exact = _stats()
    bands = mahalanobis_bands(x, st)
    np.testing.assert_allclose(bands.reshape(3, -1), exact, rtol=1e-4)
    for prec, rtol in (("fp32", 1e-5), ("fp16", 2e-3), ("auto", 2e-3)):
        got = mahalanobis(x, st, prec)
        assert got.shape == (3, 4, 5)
        np.testing.assert_allclose(got, bands, rtol=rtol)
    assert st.scorer("fp32") is st.scorer("fp32")  # built once per precision
    assert st.scorer("auto").precision == kernel.resolve_precision("auto")


def test_without_the_kernel_scoring_falls_back_to_numpy(monkeypatch):
    st, x, _ = _stats(seed=3)
    fast = mahalanobis(x, st, "fp32")
    monkeypatch.setattr(kernel, "library", lambda: None)
    assert st.__class__.scorer(st, "fp32") is None
    np.testing.assert_allclose(mahalanobis(x, st, "fp32"), fast, rtol=1e-5)


def test_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match="auto, fp16, fp32"):
        kernel.resolve_precision("fp8")


def test_disabled_kernel_is_reported(tmp_path):
    code = "from edge.padim import kernel; print(kernel.status()); print(kernel.resolve_precision('auto'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "EDGE_INSPECT_KERNEL": ""}, check=True)
    assert "numpy bands, fp32" in r.stdout
    assert r.stdout.split()[-1] == "fp32"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "EDGE_INSPECT_KERNEL": str(tmp_path / "missing.so")}, check=True)
    assert "could not be loaded" in r.stdout


def test_the_kernel_version_is_the_same_in_the_c_source_and_python():
    import re

    src = (Path(kernel.__file__).with_name("_mahal.c")).read_text()
    assert int(re.search(r"#define EI_VERSION (\d+)", src).group(1)) == kernel.KERNEL_VERSION


def test_a_library_built_from_an_older_source_is_reported_with_how_to_rebuild(monkeypatch):
    class Old:
        isa, version = 2, 1

    monkeypatch.setattr(kernel, "library", lambda: Old())
    line = kernel.status()
    assert "built from an older source (version 1" in line and "build_ext --inplace" in line
    Old.version = kernel.KERNEL_VERSION
    assert "older" not in kernel.status()


def test_inspector_warns_when_fp16_factors_cannot_be_had(monkeypatch, tiny_inspector_ro):
    from edge.inspector import Inspector

    assert not Inspector.load(tiny_inspector_ro, factor_precision="fp16").warnings
    monkeypatch.setattr(kernel, "library", lambda: None)
    insp = Inspector.load(tiny_inspector_ro, factor_precision="fp16")
    assert any("fp16 factors need the native kernel" in w for w in insp.warnings)
    from edge.demo_data import texture

    assert insp.inspect([texture("metal", (64, 64), np.random.default_rng(0))])[0].decision in ("OK", "NG")


@pytest.mark.parametrize("generic", [False, True])
@pytest.mark.parametrize("b,p", [(7, 70), (13, 33), (90, 41)])
def test_position_tiles_and_image_chunks_do_not_change_distances(b, p, generic, monkeypatch):
    """Above 512 rows of x (b*d), positions are gathered in tiles of 32 (a partial one at the end), images
    in groups of 8, 4 and the rest, and in chunks of 80 at d=100 (b=90: two chunks): every image and
    position still gets its own exact distance, also when threads split the positions inside a tile.
    (Smaller batches read each position directly: the tests above.)"""
    monkeypatch.setattr(kernel, "MIN_POSITIONS_PER_THREAD", 4)
    factor, mean, x, exact = _problem(100, p, b, seed=b * 7 + p)
    for precision, rtol in (("fp32", 2e-5), ("fp16", 2e-3)):
        bf = kernel.BlockedFactor.from_dense(factor, mean, precision, force_generic=generic)
        one = bf.distances(x, threads=1)
        np.testing.assert_allclose(one, exact, rtol=rtol)
        np.testing.assert_array_equal(bf.distances(x, threads=3), one)
