import os
import shutil
import sys
import threading
import time

import numpy as np
import pytest

from edge.daemon import serve
from edge.errors import PipelineError
from edge.fitting import FitOptions, fit_inspector
from edge.imageio import read_image
from edge.inspector import Inspector
from edge.pipeline.frame_queue import FrameQueue
from edge.pipeline.runtime import LineRuntime
from edge.sources.frame import Frame
from edge.sources.synthetic import SyntheticSource
from edge.telemetry import Telemetry

from .runtime_helpers import gpio_events, records, seq_of, station


def planted(image_id: str) -> bool:
    return image_id.count("-") == 2  # synthetic-000012-spot


def test_synthetic_camera_drives_the_whole_pipeline(tiny_inspector_ro, tmp_path):
    cfg = station(tiny_inspector_ro, tmp_path, storage={"queue_size": 1000},
                  gpio={"backend": "sim", "ok": {"line": 1}, "ng": {"line": 2}, "ready": {"line": 3},
                        "reject": {"line": 4, "width_ms": 5}})
    summary = serve(cfg, max_frames=60)
    recs = records(tmp_path / "decisions.jsonl")
    assert summary.captured == summary.decided == len(recs) == 60
    assert sorted(seq_of(r["image"]) for r in recs) == list(range(60))
    # the runtime decides exactly as the inspector does on the same frames
    frames = [f for f, _ in zip(SyntheticSource(cfg.source.synthetic), range(60))]
    direct = Inspector.load(tiny_inspector_ro).inspect([f.image for f in frames])
    by_id = {r["image"]: r for r in recs}
    for f, res in zip(frames, direct):
        assert by_id[f.id]["decision"] == res.decision
        assert by_id[f.id]["raw_score"] == pytest.approx(res.raw_score, rel=1e-4, abs=1e-4)
    bad = [r for r in recs if planted(r["image"])]
    good = [r for r in recs if not planted(r["image"])]
    assert any(r["decision"] == "NG" for r in bad)  # the tiny random backbone misses subtle ones, not all
    assert sum(r["decision"] == "NG" for r in good) <= 0.05 * len(good)
    for r in recs:
        assert r["inspector"] == Inspector.load(tiny_inspector_ro, open_runtime=False).id
        assert {"preprocess", "infer", "score", "trigger_to_decision"} <= set(r["timings_ms"])
        if r["decision"] == "NG":
            assert os.path.isfile(r["saved_image"]) and os.path.isfile(r["overlay"]) and os.path.isfile(r["mask"])
    ng = sum(r["decision"] == "NG" for r in recs)
    ev = gpio_events(tmp_path / "gpio.jsonl")
    rises = [e for e in ev if e["line"] == "reject" and e.get("active") and not e.get("init")]
    assert 1 <= len(rises) <= ng  # back-to-back NG pulses may merge into one
    assert summary.budget_metric == "trigger_to_gpio" and summary.latency_ms["trigger_to_gpio"]["count"] == 60
    for stage in ("preprocess", "infer", "score", "decide"):
        s = summary.latency_ms[stage]
        assert s["p50_ms"] <= s["p99_ms"] and s["per_s"] > 0
    assert (tmp_path / "run-summary.json").is_file()


def test_folder_source_gives_the_same_scores_as_the_inspector(tiny_inspector_ro, tiny_category, tmp_path):
    folder = tiny_category / "test"
    cfg = station(tiny_inspector_ro, tmp_path / "out", source={"uri": f"folder:{folder}"},
                  capture={"drop_policy": "every", "batch_size": 3})
    summary = serve(cfg)
    recs = {r["image"]: r for r in records(tmp_path / "out" / "decisions.jsonl")}
    files = sorted(folder.rglob("*.png"))
    assert summary.captured == len(files) == len(recs)
    insp = Inspector.load(tiny_inspector_ro)
    direct = insp.inspect([read_image(p) for p in files])
    for p, res in zip(files, direct):
        r = recs[str(p)]
        assert r["decision"] == res.decision
        assert r["raw_score"] == pytest.approx(res.raw_score, rel=1e-4, abs=1e-4)
    assert all(recs[str(p)]["decision"] == "NG" for p in files if p.parent.name == "spot")


def test_unreadable_files_and_backend_failures_become_error_records(tiny_inspector_ro, tiny_category, tmp_path,
                                                                    monkeypatch):
    folder = tmp_path / "in"
    shutil.copytree(tiny_category / "test" / "good", folder)
    (folder / "zz-broken.png").write_bytes(b"garbage")
    from edge.pipeline import model_stages

    calls = {"n": 0}
    real_infer = model_stages.infer

    def flaky_infer(b):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA error: an illegal memory access")
        real_infer(b)

    monkeypatch.setattr("edge.pipeline.stage_threads.infer", flaky_infer)
    cfg = station(tiny_inspector_ro, tmp_path / "out", source={"uri": f"folder:{folder}"},
                  capture={"drop_policy": "every", "batch_size": 1})
    summary = serve(cfg)
    recs = records(tmp_path / "out" / "decisions.jsonl")
    assert len(recs) == summary.captured == 5
    errors = [r for r in recs if r["decision"] == "ERROR"]
    assert len(errors) == 2
    assert any("cannot decode" in r["error"] for r in errors)
    assert any("infer failed: RuntimeError: CUDA error" in r["error"] for r in errors)


def frame(i, required=False):
    return Frame(i, f"f{i}", np.zeros((16, 16, 3), np.uint8), 0.0, 0.0, required=required)


def test_latest_policy_drops_oldest_and_keeps_a_record_for_dropped_parts():
    tel = Telemetry()
    q = FrameQueue(2, "latest", tel)
    for i in range(5):
        q.put(frame(i, required=i in (0, 2)))
    batch = q.get_batch(8)
    assert [f.id for f in batch] == ["f0", "f2", "f3", "f4"]
    assert batch[0].image is None and "drop_policy = 'latest'" in batch[0].error and batch[1].image is None
    assert tel.count("frames_dropped") == 3
    q.close()
    assert q.get_batch(8) is None


def test_every_policy_makes_capture_wait():
    q = FrameQueue(2, "every", Telemetry())
    q.put(frame(0))
    q.put(frame(1))
    done = threading.Event()
    threading.Thread(target=lambda: (q.put(frame(2)), done.set()), daemon=True).start()
    assert not done.wait(0.2)  # blocked while full
    assert [f.id for f in q.get_batch(1)] == ["f0"]
    assert done.wait(10)
    assert [f.id for f in q.get_batch(5)] == ["f1", "f2"]


def test_a_crashed_stage_reaches_the_main_thread(tiny_inspector_ro, tmp_path):
    rt = LineRuntime(station(tiny_inspector_ro, tmp_path))

    def broken(d):
        raise RuntimeError("dispatcher bug")

    rt.pipeline.dispatch = broken
    rt.start()
    assert rt.wait(30), "pipeline hung after a stage crashed"
    with pytest.raises(PipelineError, match="score failed: RuntimeError: dispatcher bug"):
        rt.shutdown()


def test_a_slow_sink_does_not_hold_up_decisions(tiny_inspector_ro, tmp_path):
    slow = tmp_path / "slow.py"
    slow.write_text("import time\ntime.sleep(3)\n")
    cfg = station(tiny_inspector_ro, tmp_path, hook={"command": [sys.executable, str(slow)], "on": ["OK", "NG"],
                                                     "timeout_s": 10},
                  pipeline={"sink_queue_size": 2, "drain_timeout_s": 0.2})
    rt = LineRuntime(cfg, max_frames=30)
    rt.start()
    assert rt.wait(60)
    hook = next(w for w in rt.workers if w.sink.name == "hook")
    assert hook.pending() > 0  # the hook is still busy with its first decision...
    summary = rt.shutdown()
    assert len(records(tmp_path / "decisions.jsonl")) == 30  # ...while every decision is logged
    assert summary.sink_dropped["hook"] >= 27


def test_reload_swaps_the_inspector_without_losing_frames(tiny_inspector, tiny_bundle, tiny_category, tmp_path):
    cfg = station(tiny_inspector, tmp_path / "out", source={"synthetic": {"fps": 100}})
    rt = LineRuntime(cfg)
    old = rt.slot.current.id
    rt.start()
    good = sorted((tiny_category / "train" / "good").glob("*.png"))
    fit_inspector(good, tiny_inspector, tiny_bundle, FitOptions(d=16, batch_size=4))  # atomic replace
    ok, new = rt.reload()
    assert ok and new != old
    n = rt.pipeline.decided
    while rt.pipeline.decided < n + 10:
        time.sleep(0.02)
    rt.stop()
    summary = rt.shutdown()
    recs = records(tmp_path / "out" / "decisions.jsonl")
    assert len(recs) == summary.captured and sorted(seq_of(r["image"]) for r in recs) == list(range(len(recs)))
    ids = [r["inspector"] for r in recs]
    first_new = ids.index(new)
    assert set(ids[:first_new]) == {old} and set(ids[first_new:]) == {new}
    assert all(r["decision"] != "ERROR" for r in recs)


def test_failed_reload_keeps_the_running_inspector(tiny_inspector, tmp_path):
    rt = LineRuntime(station(tiny_inspector, tmp_path), max_frames=5)
    old = rt.slot.current.id
    (tiny_inspector / "stats.npz").write_bytes(b"tampered")
    ok, why = rt.reload()
    assert not ok and rt.slot.current.id == old
    rt.start()
    rt.wait(30)
    rt.shutdown()
    assert {r["inspector"] for r in records(tmp_path / "decisions.jsonl")} == {old}


def test_a_frame_the_backend_rejects_fails_alone_in_its_batch(tiny_inspector_unscreened, tiny_category, tmp_path,
                                                             monkeypatch):
    """Batches of 4: one poisoned frame makes the batch's inference fail; it is retried frame by frame,
    so only that frame is an ERROR and its neighbours are decided."""
    import cv2

    from edge.pipeline import model_stages

    folder = tmp_path / "in"
    shutil.copytree(tiny_category / "test" / "good", folder)
    cv2.imwrite(str(folder / "001-poison.png"), np.full((64, 64, 3), 255, np.uint8))
    calls = []

    def infer(b):
        x = b.tensor
        calls.append(0 if x is None else x.shape[0])
        if x is not None and (x.reshape(x.shape[0], -1).min(axis=1) > 1.5).any():  # the white frame, normalised
            raise RuntimeError("TensorRT: invalid value in input")
        model_stages.infer(b)

    monkeypatch.setattr("edge.pipeline.stage_threads.infer", infer)
    take = FrameQueue.get_batch

    def full_batches(self, max_n):  # wait for a full batch (or the end), so the poisoned frame has neighbours
        with self._cv:
            while len(self._q) < min(max_n, self.maxsize) and not self._closed:
                self._cv.wait(0.01)
        return take(self, max_n)

    monkeypatch.setattr(FrameQueue, "get_batch", full_batches)
    cfg = station(tiny_inspector_unscreened, tmp_path / "out", source={"uri": f"folder:{folder}"},
                  capture={"drop_policy": "every", "batch_size": 4})  # unscreened: the white frame reaches the model
    summary = serve(cfg)
    recs = records(tmp_path / "out" / "decisions.jsonl")
    assert len(recs) == summary.captured == 5
    by = {os.path.basename(r["image"]): r for r in recs}
    assert by["001-poison.png"]["decision"] == "ERROR"
    assert "infer failed: RuntimeError: TensorRT: invalid value" in by["001-poison.png"]["error"]
    assert all(r["decision"] in ("OK", "NG") for n, r in by.items() if n != "001-poison.png")
    assert 4 in calls and calls.count(1) >= 4  # the batch failed, then each of its frames went alone
