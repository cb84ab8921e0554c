"""Camera loss and return on a triggered line: parts that pass while the camera is away get ERROR records
saying no frame was captured; the camera is reopened with backoff and the next parts are inspected."""

import threading
import time

import numpy as np

from edge.demo_data import texture
from edge.errors import SourceError
from edge.pipeline.runtime import LineRuntime

from .runtime_helpers import records, station


class Camera:
    """A camera that can be unplugged: reads fail and reopening fails while ``up`` is clear."""

    def __init__(self):
        self.up = threading.Event()
        self.up.set()
        self.opens = 0

    def open(self, spec, cfg):
        if not self.up.is_set():
            raise SourceError("camera 0: /dev/video0 does not exist (unplugged)")
        self.opens += 1
        return self

    def read(self):
        time.sleep(0.01)
        if not self.up.is_set():
            return False, None
        return True, texture("metal", (64, 64), np.random.default_rng(self.opens))  # a part like the good ones

    def release(self):
        pass


def wait_for(pred, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_parts_passing_while_the_camera_is_away_get_records_saying_so(tiny_inspector_ro, tmp_path, monkeypatch):
    cam = Camera()
    monkeypatch.setattr("edge.sources.camera.open_capture", cam.open)
    cfg = station(tiny_inspector_ro, tmp_path, source={"uri": "camera:0", "reconnect_initial_s": 0.05,
                                                       "reconnect_max_s": 0.2, "read_timeout_s": 0.3},
                  capture={"drop_policy": "latest"}, trigger={"mode": "gpio", "line": "TRIG"},
                  gpio={"backend": "sim", "ready": {"line": "READY"}})
    rt = LineRuntime(cfg)
    rt.start()

    def parts(k):
        for _ in range(k):
            rt.chip.edge("trigger", t=time.monotonic())
            time.sleep(0.05)

    n_rec = lambda: len(records(tmp_path / "decisions.jsonl")) if (tmp_path / "decisions.jsonl").exists() else 0
    parts(3)
    wait_for(lambda: n_rec() == 3)
    cam.up.clear()  # unplugged
    wait_for(lambda: not rt.health.ready)
    parts(2)
    wait_for(lambda: n_rec() == 5)
    cam.up.set()  # back
    wait_for(lambda: rt.health.ready)
    parts(3)
    wait_for(lambda: n_rec() == 8)
    rt.stop()
    assert rt.wait(30)
    summary = rt.shutdown()
    recs = records(tmp_path / "decisions.jsonl")
    assert summary.captured == len(recs) == 8  # one record per part, camera or not
    decisions = [r["decision"] for r in recs]
    assert decisions[3:5] == ["ERROR", "ERROR"]
    assert all("no frame within 0.3 s of the trigger" in r["error"] for r in recs[3:5])
    assert all(d in ("OK", "NG") for d in decisions[:3] + decisions[5:])
    assert cam.opens >= 2  # reopened after the outage
    assert rt.telemetry.count("frames_captured") == 8
