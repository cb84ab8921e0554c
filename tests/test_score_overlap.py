"""`score` overlaps decoding, inference, scoring and writing; the records are the sequential loop's."""

import json

import cv2
import numpy as np
import pytest

from edge.inspector import Inspector
from edge.scoring import score_paths


def _records(out):
    recs = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for r in recs:
        r.pop("timestamp", None)
        r.pop("timings_ms", None)
    return recs


@pytest.fixture
def paths(tiny_category, tmp_path):
    ps = sorted((tiny_category / "test").rglob("*.png"))
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    return ps[:3] + [bad] + ps[3:]  # an unreadable image in the middle of a batch


def test_overlapped_score_writes_the_same_records_as_the_sequential_loop(tiny_inspector_ro, paths, tmp_path):
    insp = Inspector.load(tiny_inspector_ro, "onnxruntime")
    a = score_paths(insp, paths, tmp_path / "seq", save_maps=True, overlays="all", batch_size=3, overlap=False)
    b = score_paths(insp, paths, tmp_path / "ovl", save_maps=True, overlays="all", batch_size=3, overlap=True)
    assert a.counts == b.counts and a.counts["ERROR"] == 1
    ra, rb = _records(tmp_path / "seq"), _records(tmp_path / "ovl")
    assert len(ra) == len(paths)
    assert [r["image"] for r in rb] == [str(p) for p in paths]  # input order
    for x, y in zip(ra, rb):
        for k in ("mask", "anomaly_map", "overlay"):  # same files, in their own output folders
            if x.get(k):
                x[k], y[k] = x[k].replace(str(tmp_path / "seq"), ""), y[k].replace(str(tmp_path / "ovl"), "")
        assert x == y
    for x in ra:
        if x.get("mask"):
            m1 = cv2.imread(str(tmp_path / "seq") + x["mask"], 0)
            m2 = cv2.imread(str(tmp_path / "ovl") + x["mask"], 0)
            np.testing.assert_array_equal(m1, m2)
    for f in ("results.csv", "ng_list.txt"):
        assert (tmp_path / "seq" / f).read_text().replace(str(tmp_path / "seq"), "") == \
            (tmp_path / "ovl" / f).read_text().replace(str(tmp_path / "ovl"), "")


def test_a_failing_stage_stops_the_pipeline_and_raises(tiny_inspector_ro, paths, tmp_path, monkeypatch):
    insp = Inspector.load(tiny_inspector_ro, "onnxruntime")
    calls = {"n": 0}
    real = insp.results

    def flaky(outputs, images):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("scoring broke")
        return real(outputs, images)

    monkeypatch.setattr(insp, "results", flaky)
    with pytest.raises(RuntimeError, match="scoring broke"):
        score_paths(insp, paths * 3, tmp_path / "o", batch_size=2)
    assert len(_records(tmp_path / "o")) >= 2  # what was scored before is written


def test_batch_size_counts_model_rows_so_tiled_photos_are_batched_alone(tiny_inspector_ro, paths, tmp_path,
                                                                          monkeypatch):
    """--batch-size 8 with a 2x2-tiled inspector: 2 images (8 rows) per backbone call, not 8 images (32
    rows); a 56-window photo gets a batch of its own, so it is decoded and written while the next runs."""
    from dataclasses import replace
    from types import SimpleNamespace

    from edge.padim.tiling import Tiling
    from edge.scoring import images_per_batch

    assert images_per_batch(SimpleNamespace(tiling=Tiling(2, 2)), 8) == 2
    assert images_per_batch(SimpleNamespace(tiling=Tiling(7, 8)), 8) == 1
    assert images_per_batch(SimpleNamespace(tiling=Tiling()), 8) == 8
    assert images_per_batch(SimpleNamespace(), 8) == 8  # a stage without tiles (a classifier)

    insp = Inspector.load(tiny_inspector_ro, "onnxruntime")
    insp.tiling = replace(insp.tiling, rows=2, cols=2)  # as if fitted so; only the batching is looked at
    seen = []
    monkeypatch.setattr(insp, "tensors", lambda images, screen=True: seen.append(len(images)) or Tiling().batch(images, insp.bundle.input))
    monkeypatch.setattr(insp, "results", lambda outputs, images: [Inspector.decide(insp, np.zeros((2, 2), np.float32),
                                                                                   im.shape[:2]) for im in images])
    good = [p for p in paths if p.suffix == ".png" and p.name != "broken.png"][:5]
    score_paths(insp, good, tmp_path / "o", batch_size=8)
    assert seen == [2, 2, 1]


def test_records_are_committed_on_their_own_thread_after_their_files_in_input_order(tiny_inspector_ro, paths,
                                                                                    tmp_path, monkeypatch):
    """The fsynced record of an image is appended only once its mask and overlay exist; while one batch's
    records wait on fsync, the next batch's files are written (a slow fsync no longer holds them up)."""
    import os
    import threading
    import time

    from edge import records

    insp = Inspector.load(tiny_inspector_ro, "onnxruntime")
    events = []
    real_fsync = os.fsync

    def slow_fsync(fd):
        events.append(("fsync", threading.current_thread().name))
        time.sleep(0.02)
        real_fsync(fd)

    real_append = records.DecisionLog.append

    def append(self, rec):
        for k in ("mask", "overlay"):
            if getattr(rec, k):
                assert os.path.exists(getattr(rec, k)), f"{k} of {rec.image} not written before its record"
        events.append(("record", rec.image))
        return real_append(self, rec)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    monkeypatch.setattr(records.DecisionLog, "append", append)
    s = score_paths(insp, paths, tmp_path / "o", overlays="all", batch_size=2)
    assert [e[1] for e in events if e[0] == "record"] == [str(p) for p in paths]
    assert [r.image for r in s.records] == [str(p) for p in paths] and s.counts["ERROR"] == 1
    assert {e[1] for e in events if e[0] == "fsync"} == {"score-commit"}  # never on the thread writing files


def test_a_failing_commit_stops_the_pipeline_and_raises(tiny_inspector_ro, paths, tmp_path, monkeypatch):
    from edge import records

    insp = Inspector.load(tiny_inspector_ro, "onnxruntime")
    real_append, n = records.DecisionLog.append, {"n": 0}

    def append(self, rec):
        n["n"] += 1
        if n["n"] == 3:
            raise OSError("disk full")
        return real_append(self, rec)

    monkeypatch.setattr(records.DecisionLog, "append", append)
    with pytest.raises(OSError, match="disk full"):
        score_paths(insp, paths * 3, tmp_path / "o", batch_size=2)
    assert len(_records(tmp_path / "o")) == 2
