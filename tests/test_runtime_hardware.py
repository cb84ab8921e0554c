"""The runtime against (simulated) line hardware: GPIO triggers and pulses, a camera that drops out."""

import time

import numpy as np

from edge.errors import SourceError
from edge.pipeline.runtime import LineRuntime

from .runtime_helpers import gpio_events, records, station

SLACK = 0.25  # generous upper tolerance; the lower bounds (never early) are exact


def test_gpio_triggered_parts_get_reject_pulses_delay_after_their_trigger(tiny_inspector_ro, tmp_path):
    cfg = station(tiny_inspector_ro, tmp_path,
                  source={"synthetic": {"defect_rate": 0.5, "seed": 11}},
                  trigger={"mode": "gpio", "line": "TRIG", "sim_interval_ms": 150},
                  gpio={"backend": "sim", "ready": {"line": "READY"}, "ng": {"line": "NG"},
                        "reject": {"line": "REJECT", "delay_ms": 60, "width_ms": 30}})
    rt = LineRuntime(cfg, max_frames=8)
    rt.start()
    assert rt.wait(60)
    summary = rt.shutdown()
    recs = records(tmp_path / "decisions.jsonl")
    ev = gpio_events(tmp_path / "gpio.jsonl")
    triggers = [e["t"] for e in ev if e["line"] == "trigger" and "edge" in e]
    assert len(recs) == 8 and len(triggers) >= 8
    rises = [e["t"] for e in ev if e["line"] == "reject" and e.get("active") and not e.get("init")]
    falls = [e["t"] for e in ev if e["line"] == "reject" and e.get("active") is False and not e.get("init")]
    ng_seqs = [int(r["image"].split("-")[1]) for r in recs if r["decision"] == "NG"]
    assert ng_seqs and len(rises) == len(ng_seqs) and len(falls) == len(ng_seqs)
    eps = 2e-6
    for k, up, down in zip(ng_seqs, rises, falls):  # frame k was taken for trigger k
        assert triggers[k] + 0.060 - eps <= up <= triggers[k] + 0.060 + SLACK
        assert triggers[k] + 0.090 - eps <= down <= triggers[k] + 0.090 + SLACK
    assert summary.late_rejects == 0
    assert summary.latency_ms["trigger_to_gpio"]["count"] == 8


class FakeCapture:
    def __init__(self, n, value):
        self.n, self.value = n, value

    def read(self):
        if self.n <= 0:
            return False, None
        self.n -= 1
        return True, np.full((64, 64, 3), self.value, np.uint8)

    def release(self):
        pass


def test_lost_camera_shows_not_ready_and_is_recovered(tiny_inspector_ro, tmp_path, monkeypatch):
    script = [SourceError("no camera yet"), FakeCapture(4, 120), SourceError("unplugged"),
              SourceError("still unplugged"), FakeCapture(100, 130)]
    health_log = []

    def opener(spec, cfg):
        step = script.pop(0) if script else SourceError("gone for good")
        if isinstance(step, Exception):
            raise step
        return step

    monkeypatch.setattr("edge.sources.camera.open_capture", opener)
    cfg = station(tiny_inspector_ro, tmp_path, source={"uri": "camera:0", "reconnect_initial_s": 0.01,
                                                       "reconnect_max_s": 0.05},
                  capture={"drop_policy": "every"},
                  gpio={"backend": "sim", "ready": {"line": "READY"}})
    rt = LineRuntime(cfg, max_frames=10, wait_for_camera=True)
    rt.health.on_change(health_log.append)
    assert rt.health.snapshot()["components"]["source"]["ok"] is False
    rt.start()
    assert rt.wait(60)
    summary = rt.shutdown()
    recs = records(tmp_path / "decisions.jsonl")
    assert summary.captured == len(recs) == 10
    values = [r["image"] for r in recs]
    assert values == [f"cam0-{i:06d}" for i in range(10)]
    ready = [e["active"] for e in gpio_events(tmp_path / "gpio.jsonl") if e["line"] == "ready"]
    # init off, on when the camera came, off when unplugged, on when back, off at shutdown
    assert ready == [False, True, False, True, False]
    assert health_log[:1] == [False] and health_log.count(True) == 2


def test_parts_triggered_before_a_stop_still_get_their_records(tiny_inspector_ro, tmp_path):
    cfg = station(tiny_inspector_ro, tmp_path, trigger={"mode": "gpio", "line": "TRIG"},
                  gpio={"backend": "sim", "ng": {"line": "NG"}})
    rt = LineRuntime(cfg)
    rt.start()
    t0 = time.monotonic()
    for k in range(6):  # six parts pass the light barrier, 10 ms apart (beyond the 2 ms debounce)...
        rt.chip.edge("trigger", t=t0 + 0.010 * k)
    rt.stop()  # ...and SIGTERM arrives at once
    assert rt.wait(60)
    summary = rt.shutdown()
    recs = records(tmp_path / "decisions.jsonl")
    assert summary.captured == len(recs) == 6
    assert all(r["decision"] in ("OK", "NG") for r in recs)
