"""Position-free distances: |L(x − μ_p)| / s_p, computed as |L·x − L·μ_p| without a centred copy."""

from __future__ import annotations

import numpy as np
import pytest

from edge.padim.position_free import PooledMoments, gaussian_from_pooled
from edge.padim.score import distance_maps


@pytest.mark.parametrize("d", [1, 3, 12, 13])  # the factor's row blocks: fewer rows than blocks, even, uneven
def test_distances_equal_the_definition(d):
    rng = np.random.default_rng(0)
    b, p = 5, 30
    train = (rng.standard_normal((40, d, p)) * 2 + 3).astype(np.float32)
    m = PooledMoments.empty(train.mean(axis=0).T.astype(np.float64))
    m.add(train)
    stats = gaussian_from_pooled(m, np.arange(d), (5, 6))
    x = (rng.standard_normal((b, d, p)) * 2 + 3).astype(np.float32)
    got = distance_maps(x, stats, "texture", stats.grid).reshape(b, p)  # where the position scale is applied
    centred = x - stats.mean.T[None].astype(np.float64)
    z = np.einsum("ij,bjp->bip", stats.factor[0].astype(np.float64), centred)
    want = np.sqrt((z ** 2).sum(axis=1)) / stats.position_scale[None]
    assert got.shape == (b, p) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
