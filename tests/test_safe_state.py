"""A backend that keeps failing puts the station in its safe state: READY low, every frame an ERROR record,
the reject gate as gpio.on_error says; the first good batch ends it."""

import pytest

from edge.daemon import serve
from edge.pipeline import model_stages
from edge.pipeline.runtime import LineRuntime

from .runtime_helpers import gpio_events, records, seq_of, station

BROKEN = range(5, 15)  # frames whose inference fails: the GPU fell over, then came back


def failing_infer(b):
    if any(f.seq in BROKEN for f in b.frames):
        raise RuntimeError("CUDA error: unspecified launch failure")
    model_stages.infer(b)


@pytest.mark.parametrize("on_error", ["reject", "ignore"])
def test_a_backend_that_keeps_failing_puts_the_station_in_its_safe_state(tiny_inspector_ro, tmp_path, monkeypatch,
                                                                        on_error):
    monkeypatch.setattr("edge.pipeline.stage_threads.infer", failing_infer)
    cfg = station(tiny_inspector_ro, tmp_path, source={"synthetic": {"defect_rate": 0.0}},
                  capture={"drop_policy": "every", "batch_size": 1}, pipeline={"fault_after_failures": 3},
                  gpio={"backend": "sim", "on_error": on_error, "ng": {"line": "NG"}, "ready": {"line": "READY"},
                        "reject": {"line": "REJECT", "width_ms": 1}})
    health = []
    rt_holder = {}

    def started(rt: LineRuntime):
        rt_holder["rt"] = rt
        rt.health.on_change(lambda ok: health.append((ok, rt.health.snapshot()["components"].get("inference"))))

    summary = serve(cfg, max_frames=25, on_started=started)
    recs = sorted(records(tmp_path / "decisions.jsonl"), key=lambda r: seq_of(r["image"]))
    assert summary.captured == len(recs) == 25  # one record per frame, through the whole fault
    errors = [seq_of(r["image"]) for r in recs if r["decision"] == "ERROR"]
    assert errors == list(BROKEN)
    assert all("infer failed: RuntimeError: CUDA error" in r["error"] for r in recs if r["decision"] == "ERROR")
    # READY: on at start, off after the 3rd failure in a row, on again after the first good batch, off at exit
    ready = [e["active"] for e in gpio_events(tmp_path / "gpio.jsonl") if e["line"] == "ready"]
    assert ready == [False, True, False, True, False]
    down = next(c for ok, c in health if not ok and c)
    assert down["ok"] is False and "3 batches in a row failed" in down["reason"]
    rejects = [e for e in gpio_events(tmp_path / "gpio.jsonl") if e["line"] == "reject" and e.get("active")
               and not e.get("init")]
    ok_ng = [r for r in recs if r["decision"] == "NG"]
    if on_error == "reject":  # fail safe: each ERROR part is driven to the reject gate
        assert len(rejects) >= 1 and len(rejects) <= len(errors) + len(ok_ng)
    else:
        assert len(rejects) <= len(ok_ng)
    m = rt_holder["rt"].telemetry.prometheus()
    assert "edge_inspect_safe_state_entered_total 1" in m and "edge_inspect_safe_state 0" in m
