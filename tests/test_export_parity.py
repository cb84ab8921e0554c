"""Parity maths against direct formulas, and the NNCF-missing path."""

import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from export.errors import ExportError  # noqa: E402
from export.parity import cosine, rankdata, spearman  # noqa: E402


def test_spearman_matches_the_textbook_formula_without_ties():
    rng = np.random.default_rng(0)
    for n in (3, 7, 50):
        a, b = rng.normal(size=n), rng.normal(size=n)
        d = np.argsort(np.argsort(a)) - np.argsort(np.argsort(b))
        assert spearman(a, b) == pytest.approx(1 - 6 * np.sum(d ** 2) / (n * (n ** 2 - 1)))
    assert spearman(a, 3 * a + 1) == pytest.approx(1.0) and spearman(a, -a) == pytest.approx(-1.0)


def test_ties_get_average_ranks_and_undefined_cases_are_none():
    np.testing.assert_allclose(rankdata([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
    assert spearman([1, 2], [2, 1]) is None
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def test_cosine():
    x = np.arange(1, 7, dtype=np.float32).reshape(2, 3)
    assert cosine(x, 2 * x) == pytest.approx(1.0) and cosine(x, -x) == pytest.approx(-1.0)
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0


def test_openvino_int8_without_nncf_says_how_to_get_it(monkeypatch, tmp_path):
    from export.quantize import quantize_openvino_int8

    monkeypatch.setitem(sys.modules, "nncf", None)  # import nncf now raises ImportError
    with pytest.raises(ExportError, match=r"needs NNCF.*\n.*edge-inspect\[int8\]"):
        quantize_openvino_int8(tmp_path / "m.onnx", tmp_path / "m.xml", np.zeros((1, 3, 32, 32), np.float32), {})
