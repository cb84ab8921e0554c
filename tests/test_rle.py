"""Run-length masks (edge/supervised/rle.py): column-major, 1-indexed start/length pairs."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from edge.errors import DataError
from edge.supervised.rle import RleWriter, read_rle_csv, rle_decode, rle_encode


def test_known_encoding_is_column_major_and_1_indexed():
    m = np.zeros((3, 4), bool)
    m[0, 0] = m[1, 0] = True  # pixels 1, 2 (first column, top down)
    m[2, 1] = True  # pixel 6
    m[0, 2] = True  # pixel 7: joins the run 6-7
    m[2, 3] = True  # pixel 12: the last one
    assert rle_encode(m) == "1 2 6 2 12 1"
    assert np.array_equal(rle_decode("1 2 6 2 12 1", (3, 4)), m)


@pytest.mark.parametrize("case", ["empty", "full", "first", "last", "first_and_last", "one_column"])
def test_round_trip_edge_cases(case):
    m = np.zeros((5, 7), bool)
    if case == "full":
        m[:] = True
    elif case == "first":
        m[0, 0] = True
    elif case == "last":
        m[-1, -1] = True
    elif case == "first_and_last":
        m[0, 0] = m[-1, -1] = True
    elif case == "one_column":
        m[:, 3] = True
    text = rle_encode(m)
    assert np.array_equal(rle_decode(text, m.shape), m)
    expected = {"empty": "", "full": "1 35", "first": "1 1", "last": "35 1", "first_and_last": "1 1 35 1",
                "one_column": "16 5"}[case]
    assert text == expected


@settings(max_examples=60, deadline=None)
@given(arrays(np.bool_, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_round_trip_any_mask(m):
    assert np.array_equal(rle_decode(rle_encode(m), m.shape), m)


def test_0_255_masks_encode_like_booleans():
    m = np.zeros((4, 4), np.uint8)
    m[1:3, 1:3] = 255
    assert rle_encode(m) == rle_encode(m > 0) == "6 2 10 2"


@pytest.mark.parametrize("text", ["1", "0 2", "3 2 1 1", "1 2 2 1", "10 10", "a b"])
def test_bad_text_is_refused(text):
    with pytest.raises(DataError):
        rle_decode(text, (3, 3))


def test_writer_rows_per_image_and_class(tmp_path):
    w = RleWriter(tmp_path / "rle.csv", ["scratch", "dent"])
    m = np.zeros((3, 3), np.uint8)
    m[0, 0] = 255
    w.write("a.png", {"scratch": m, "dent": np.zeros((3, 3), np.uint8)})
    w.close()
    assert read_rle_csv(tmp_path / "rle.csv") == [("a.png", 1, "1 1"), ("a.png", 2, "")]
