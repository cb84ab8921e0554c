"""The station page: state, HTTP API, token, operator feedback (mark good → refit → swap → undo), drift."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.config import parse_config
from edge.daemon import serve, status_text
from edge.inspector import Inspector
from edge.station.drift import DriftMonitor

from .runtime_helpers import free_port, records, station_dict


def get(url: str, data: dict | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def state(base: str, **kw) -> dict:
    code, body = get(base + "api/state", **kw)
    assert code == 200, body
    return json.loads(body)


def wait_until(cond, timeout=60.0, what="condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = cond()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Station:
    """serve() on a thread with the station page on a free loopback port."""

    def __init__(self, cfg_dict: dict, max_frames: int | None = None):
        self.port = free_port()
        cfg_dict.setdefault("station_page", {})["listen"] = f"127.0.0.1:{self.port}"
        self.cfg = parse_config(cfg_dict, "test")
        self.stop = threading.Event()
        self.started = threading.Event()
        self.rt = None
        self.result: dict = {}

        def on_started(rt):
            self.rt = rt
            self.started.set()

        self.thread = threading.Thread(target=lambda: self.result.setdefault(
            "s", serve(self.cfg, max_frames=max_frames, stop_event=self.stop, on_started=on_started)), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> "Station":
        self.thread.start()
        assert self.started.wait(60), "station did not start"
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(120)

    def summary(self):
        self.thread.join(120)
        return self.result["s"]


def test_page_api_counts_gallery_and_part_record(tiny_inspector_ro, tmp_path):
    d = station_dict(tiny_inspector_ro, tmp_path / "out", source={"synthetic": {"fps": 40, "defect_rate": 0.5}})
    with Station(d) as st:
        page = get(st.base)[1].decode()
        assert "<script>" in page and "http://" not in page.replace(st.base, "") and "https://" not in page
        s1 = wait_until(lambda: (lambda s: s if s["gallery"] else None)(state(st.base)), what="an NG part")
        s2 = wait_until(lambda: (lambda s: s if s["total"] > s1["total"] + 3 else None)(state(st.base)),
                        what="counters to move")
        assert s2["counts"]["OK"] + s2["counts"]["NG"] + s2["counts"]["ERROR"] == s2["total"]
        assert s2["ready"] is True and s2["throughput_per_s"] > 0 and s2["latency"]["p99_ms"] > 0
        assert s2["ng_rate"] == pytest.approx(s2["counts"]["NG"] / s2["total"])
        assert s2["trend"] and all(len(p) == 3 for p in s2["trend"])
        code, jpg = get(st.base + "live.jpg")
        assert code == 200 and jpg[:2] == b"\xff\xd8"
        ng = s2["gallery"][0]
        code, html = get(st.base + f"part/{ng['seq']}")
        assert code == 200 and ng["image"] in html.decode() and "This part is good" in html.decode()
        code, ov = get(st.base + f"part/{ng['seq']}/overlay.jpg")
        assert code == 200 and ov[:2] == b"\xff\xd8"  # overlays are JPEG
        code, png = get(st.base + f"part/{ng['seq']}/mask.png")
        assert code == 200 and png[:4] == b"\x89PNG"  # masks stay lossless
        assert get(st.base + "part/99999999")[0] == 404
        assert get(st.base + "nothing")[0] == 404
        assert "fps" in status_text(st.rt) and "NG rate" in status_text(st.rt) and "drift" in status_text(st.rt)


def test_token_is_required_when_configured(tiny_inspector_ro, tmp_path):
    tok = tmp_path / "token"
    tok.write_text("0123456789abcdef0123")
    tok.chmod(0o600)
    d = station_dict(tiny_inspector_ro, tmp_path / "out", source={"synthetic": {"fps": 20}},
                     station_page={"token_file": str(tok)})
    with Station(d) as st:
        assert get(st.base + "api/state")[0] == 401
        assert get(st.base + "?token=wrong")[0] == 401
        assert get(st.base + "?token=0123456789abcdef0123")[0] == 200
        assert get(st.base + "api/state", headers={"Authorization": "Bearer 0123456789abcdef0123"})[0] == 200
        assert get(st.base + "refit", data={"note": "x"})[0] == 401


def test_station_beyond_loopback_needs_a_token():
    from edge.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        parse_config({"station_page": {"listen": "0.0.0.0:8765"}}, "t")
    assert "station_page.listen" in str(e.value) and "allow_remote" in str(e.value)
    with pytest.raises(ConfigError) as e:
        parse_config({"station_page": {"listen": "0.0.0.0:8765", "allow_remote": True}}, "t")
    assert "station_page.token_file" in str(e.value)


def test_mark_good_and_refit_lowers_its_score_and_drops_no_frame(tiny_inspector, tmp_path):
    """The issue's acceptance test: an NG part marked good, a refit in the background, a swap while
    frames flow (none dropped), the part now below the threshold; then undo goes back."""
    n_frames = 160
    d = station_dict(tiny_inspector, tmp_path / "out", source={"synthetic": {"fps": 25, "defect_rate": 0.3}})
    old_id = Inspector.load(tiny_inspector, open_runtime=False).id
    with Station(d, max_frames=n_frames) as st:
        s = wait_until(lambda: (lambda s: s if any(g["has_image"] for g in s["gallery"]) else None)(state(st.base)),
                       what="an NG part with its image kept")
        part = next(g for g in s["gallery"] if g["has_image"])
        code, body = get(st.base + f"part/{part['seq']}/good", {"operator": "anna", "note": "glare, part is fine"})
        assert code == 200, body
        assert state(st.base)["feedback"]["pending_good"] == 1
        code, body = get(st.base + "refit", {"operator": "anna", "note": "after glare"})
        assert code == 200 and json.loads(body)["state"] == "running"
        job = wait_until(lambda: (lambda j: j if j["state"] != "running" else None)(
            state(st.base)["feedback"]["job"]), what="the refit")
        assert job["state"] == "done", job
        assert state(st.base)["inspector"] != old_id and state(st.base)["feedback"]["can_undo"]
        summary = st.summary()
    recs = records(tmp_path / "out" / "decisions.jsonl")
    assert summary.captured == summary.decided == n_frames == len(recs)
    assert summary.frames_dropped == 0
    assert sorted(int(r["image"].split("-")[1]) for r in recs) == list(range(n_frames))
    ids = [r["inspector"] for r in recs]
    assert ids[0] == old_id and ids[-1] != old_id, "the refitted inspector took over during the run"
    assert ids == sorted(ids, key=lambda i: i != old_id), "one swap, no mixing back"

    fb = tmp_path / "out" / "feedback"
    used = list((fb / "used").rglob("*.png"))
    assert len(used) == 1 and not list((fb / "train" / "good").glob("*.png"))
    meta = json.loads(used[0].with_suffix(".json").read_text())
    assert meta["operator"] == "anna" and meta["note"] == "glare, part is fine" and meta["record"]["decision"] == "NG"
    new = Inspector.load(tiny_inspector)
    img = __import__("edge.imageio", fromlist=["read_image"]).read_image(used[0])
    after = new.inspect([img])[0]
    assert after.decision == "OK" and after.score < 1.0, "marked good and refitted: the part now passes"
    assert meta["record"]["score"] >= 1.0
    actions = [json.loads(line) for line in (fb / "actions.jsonl").read_text().splitlines()]
    assert [a["action"] for a in actions] == ["marked good", "refit started", "refit done"]
    assert all(a["time"] and a["operator"] == "anna" for a in actions)

    # one-click undo: back to the inspector before the refit (here without a running line)
    from edge.station.feedback import Feedback

    reloaded = []
    f = Feedback(fb, _StubState(), tiny_inspector, lambda: (reloaded.append(1) or True, "old"), lambda p, i: None)
    f.undo("ben", "wrong call")
    assert f.wait(60)["state"] == "done" and reloaded
    assert Inspector.load(tiny_inspector, open_runtime=False).id == old_id


class _StubState:
    def inspector_id(self):
        return "stub"

    def event(self, *a, **k):
        pass


def test_missed_defect_files_the_live_part_as_labelled_ng(tiny_inspector_ro, tmp_path):
    d = station_dict(tiny_inspector_ro, tmp_path / "out", source={"synthetic": {"fps": 3, "defect_rate": 0.0}})
    with Station(d) as st:
        s = wait_until(lambda: (lambda s: s if s["latest"] else None)(state(st.base)), what="a part")
        code, body = get(st.base + f"part/{s['latest']['seq']}/missed", {"operator": "cem", "note": "tiny dent"})
        assert code == 200, body
        code, body = get(st.base + "refit", {})
        assert code == 409 and b"no part has been marked good" in body
    missed = list((tmp_path / "out" / "feedback" / "test" / "missed").glob("*.png"))
    assert len(missed) == 1
    from edge.dataset import load_category

    cat = load_category(tmp_path / "out" / "feedback", need_train=False)  # calibrate can read the folder
    assert [t.kind for t in cat.test] == ["missed"] and cat.test[0].is_defect


# --- drift ---------------------------------------------------------------------------------------
def _run(mon: DriftMonitor, scores) -> list[str]:
    return [c for c in (mon.observe(s) for s in scores) if c]


def test_drift_stays_quiet_on_a_steady_line():
    """Ten lines, each with its own fit-time reference of 12 held-out scores, 5000 steady parts each."""
    for seed in range(10):
        rng = np.random.default_rng(seed)
        ref = rng.gamma(20, 0.5, 12)  # Mahalanobis maxima: skewed, positive
        live = rng.gamma(20, 0.5, 5000) * 0.97  # final statistics saw more images: slightly lower
        changes = _run(DriftMonitor(ref), live)
        assert changes == ["steady"], (seed, changes)


def test_drift_warns_then_alarms_when_scores_move_up():
    rng = np.random.default_rng(1)
    ref = rng.gamma(20, 0.5, 40)
    sd = float(np.std(ref))
    mon = DriftMonitor(ref)
    assert _run(mon, rng.gamma(20, 0.5, 300)) == ["steady"]
    assert _run(mon, rng.gamma(20, 0.5, 400) + 2.2 * sd) == ["warning"]
    assert mon.status().state == "warning" and mon.status().shift > 1.5
    assert _run(mon, rng.gamma(20, 0.5, 400) + 5 * sd) == ["alarm"]
    assert _run(mon, rng.gamma(20, 0.5, 600)) == ["warning", "steady"]  # down through warning, back to steady


def test_drift_alerts_reach_the_log_metric_mqtt_and_lamp(tiny_inspector_ro, tmp_path, caplog):
    from edge.pipeline.runtime import LineRuntime
    from edge.sinks import Decision
    from edge.records import DecisionRecord

    cfg = parse_config(station_dict(tiny_inspector_ro, tmp_path, gpio={"backend": "sim", "drift": {"line": "LAMP"}},
                                    drift={"min_parts": 10, "window": 20, "hold": 3}))
    rt = LineRuntime(cfg, max_frames=1)
    rt.start()
    assert rt.wait(60)
    published = []

    class FakeMqtt:
        def publish_drift(self, state, status):
            published.append((state, status["shift"]))

    rt.mqtt = FakeMqtt()
    try:
        ref = rt.station.drift.ref_median
        spread = rt.station.drift.ref_spread
        for i, s in enumerate([ref] * 15 + [ref + 10 * spread] * 40):
            rt.station.observe(Decision(DecisionRecord(image=f"p{i}", decision="OK", score=0.5, raw_score=s), 0, 0))
    finally:
        rt.shutdown()
    assert [p[0] for p in published] == ["steady", "alarm"]
    assert "drift alarm" in caplog.text
    assert rt.telemetry.snapshot()["gauges"]["drift_state"] == 3
    assert "edge_inspect_drift_shift" in rt.telemetry.prometheus()
    lamp = [json.loads(line) for line in (tmp_path / "gpio.jsonl").read_text().splitlines()]
    assert [e["active"] for e in lamp if e["line"] == "drift" and e["pin"] == "LAMP" and not e.get("init")][-1] is True


def test_run_station_flag_and_help(tiny_inspector_ro, tmp_path):
    r = CliRunner().invoke(cli, ["run", "--help"])
    assert "--station" in r.output and "127.0.0.1:8765" in r.output
    port = free_port()
    r = CliRunner().invoke(cli, ["run", "--source", "synthetic", "--inspector", str(tiny_inspector_ro), "--out",
                                 str(tmp_path), "--max-frames", "3", "--station", f"127.0.0.1:{port}"])
    assert r.exit_code == 0, r.output
    assert f"station page: http://127.0.0.1:{port}/" in r.output


def test_a_station_running_a_model_refuses_refit_and_says_why(tmp_path):
    from .tiny_supervised import make_supervised_bundle

    seg = make_supervised_bundle(tmp_path / "seg", "segmenter")
    d = station_dict(tmp_path / "no-inspector", tmp_path / "out", source={"synthetic": {"fps": 10}})
    del d["inspector"]
    d["model"] = {"path": str(seg)}
    with Station(d) as st:
        s = wait_until(lambda: (lambda s: s if s["latest"] else None)(state(st.base)), what="a part")
        fb = s["feedback"]
        assert "refit only fits PaDiM inspectors" in fb["refit_refused"] and str(seg) in fb["refit_refused"]
        assert fb["can_undo"] is False
        code, body = get(st.base + f"part/{s['latest']['seq']}/missed", {"operator": "cem"})
        assert code == 200, body  # marking parts still files them
        for action in ("refit", "undo"):
            code, body = get(st.base + action, {"operator": "cem"})
            err = json.loads(body)["error"]
            assert code == 409 and "refit only fits PaDiM inspectors" in err and "[model]" in err
            assert "edge-export train" in err  # what to do instead
    assert list((tmp_path / "out" / "feedback" / "test" / "missed").glob("*.png"))
    assert not (tmp_path / "seg-calibration").exists() and not (tmp_path / "no-inspector").exists()


def test_refit_refusal_for_a_cascade_names_the_file():
    from edge.station.feedback import refit_refusal

    assert refit_refusal(None, None) is None
    e = refit_refusal(None, "lines/cascade.toml")
    assert "cascade (lines/cascade.toml)" in e.message and "fit --update" in e.hint
