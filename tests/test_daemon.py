"""The daemon and `run` as real processes: signals, health and metrics over HTTP, reload."""

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from edge.config import parse_config
from edge.daemon import serve
from edge.fitting import FitOptions, fit_inspector

from .runtime_helpers import free_port, records, seq_of, station_dict

CLI = [sys.executable, "-c", "from edge.cli import main; main()"]


def write_toml(path: Path, data: dict) -> Path:
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return json.dumps(v)

    lines = []

    def section(prefix, d):
        scalars = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {val(v)}" for k, v in scalars.items())
        for k, v in d.items():
            if isinstance(v, dict):
                section(f"{prefix}.{k}" if prefix else k, v)

    section("", data)
    path.write_text("\n".join(lines) + "\n")
    return path


def wait_until(pred, timeout=60.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def http(url, method="GET"):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return None, ""


def finish(proc, timeout=60):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"process did not exit; stderr:\n{err[-3000:]}") from None
    return proc.returncode, out, err


def test_sigterm_mid_stream_loses_no_record(tiny_inspector_ro, tmp_path):
    out = tmp_path / "out"
    cfg = write_toml(tmp_path / "s.toml", station_dict(
        tiny_inspector_ro, out, source={"synthetic": {"fps": 60}}, capture={"drop_policy": "every", "batch_size": 4},
        gpio={"backend": "sim", "ng": {"line": 2}, "reject": {"line": 3, "width_ms": 5}}))
    proc = subprocess.Popen([*CLI, "run", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_until(lambda: line_count(out / "decisions.jsonl") >= 15 or proc.poll() is not None, what="decisions")
    proc.send_signal(signal.SIGTERM)
    rc, stdout, stderr = finish(proc)
    assert rc == 0, stderr[-3000:]
    recs = records(out / "decisions.jsonl")  # also checks that the last line is whole
    summary = json.loads((out / "run-summary.json").read_text())
    assert summary["captured"] == summary["decided"] == len(recs) >= 15
    assert sorted(seq_of(r["image"]) for r in recs) == list(range(len(recs)))  # each frame exactly once
    assert "stopping: draining frames in flight" in stderr and "signal=SIGTERM" in stderr
    assert f"{len(recs)} frames captured, {len(recs)} decided" in stdout


def test_daemon_health_metrics_and_sighup_reload(tiny_inspector, tiny_bundle, tiny_category, tmp_path):
    out = tmp_path / "out"
    port = free_port()
    cfg = write_toml(tmp_path / "d.toml", station_dict(
        tiny_inspector, out, source={"synthetic": {"fps": 30}}, http={"listen": f"127.0.0.1:{port}"},
        gpio={"backend": "sim", "ready": {"line": "READY"}}))
    proc = subprocess.Popen([*CLI, "daemon", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http(base + "/health")[0] == 200 or proc.poll() is not None, what="health 200")
        code, body = http(base + "/health")
        h = json.loads(body)
        assert code == 200 and h["status"] == "ready" and h["station"] == "test"
        old = h["inspector"]
        wait_until(lambda: line_count(out / "decisions.jsonl") >= 5, what="first decisions")
        code, metrics = http(base + "/metrics")
        assert code == 200 and "edge_inspect_frames_captured_total" in metrics
        assert 'edge_inspect_latency_milliseconds{stage="infer",quantile="0.99"}' in metrics
        assert http(base + "/trigger", "POST")[0] == 404  # free-running: no software trigger
        good = sorted((tiny_category / "train" / "good").glob("*.png"))
        fit_inspector(good, tiny_inspector, tiny_bundle, FitOptions(d=16, batch_size=4))
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: json.loads(http(base + "/health")[1] or "{}").get("inspector", old) != old,
                   what="reloaded inspector")
        new = json.loads(http(base + "/health")[1])["inspector"]
        wait_until(lambda: any(r["inspector"] == new for r in records(out / "decisions.jsonl")), what="new records")
        assert 'edge_inspect_reloads_total{result="ok"} 1' in http(base + "/metrics")[1]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc, _, stderr = finish(proc)
    assert rc == 0, stderr[-3000:]
    recs = records(out / "decisions.jsonl")
    assert sorted(seq_of(r["image"]) for r in recs) == list(range(len(recs)))
    ids = [r["inspector"] for r in recs]
    assert ids[0] == old and ids[-1] == new and ids.index(new) == len(ids) - ids[::-1].index(old)
    assert "msg=\"inspector reloaded\"" in stderr
    # logfmt lines on stderr, for journald
    assert all(line.startswith("ts=") for line in stderr.splitlines() if line.strip())


def test_daemon_without_its_camera_stays_up_not_ready(tiny_inspector_ro, tmp_path):
    out = tmp_path / "out"
    port = free_port()
    cfg = write_toml(tmp_path / "d.toml", station_dict(
        tiny_inspector_ro, out, source={"uri": "camera:57", "reconnect_initial_s": 0.05, "reconnect_max_s": 0.2},
        capture={"drop_policy": "latest"}, http={"listen": f"127.0.0.1:{port}"},
        gpio={"backend": "sim", "ready": {"line": "READY"}}))
    proc = subprocess.Popen([*CLI, "daemon", "--config", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        wait_until(lambda: http(f"http://127.0.0.1:{port}/health")[0] == 503 or proc.poll() is not None,
                   what="health 503")
        h = json.loads(http(f"http://127.0.0.1:{port}/health")[1])
        assert h["status"] == "not-ready"
        assert "camera:57" in h["components"]["source"]["reason"]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc, _, stderr = finish(proc)
    assert rc == 0, stderr[-3000:]
    assert 'msg="camera not available"' in stderr and "/dev/video57 does not exist" in stderr
    ready = [json.loads(x)["active"] for x in (out / "gpio.jsonl").read_text().splitlines()
             if json.loads(x)["line"] == "ready"]
    assert not any(ready)


def test_run_with_a_missing_camera_exits_with_a_clear_message(tmp_path):
    proc = subprocess.Popen([*CLI, "run", "--camera", "57", "--out", str(tmp_path / "o")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rc, _, stderr = finish(proc, timeout=60)
    assert rc == 8
    assert "error: camera 57: /dev/video57 does not exist" in stderr and "Traceback" not in stderr


def test_software_trigger_over_http(tiny_inspector_ro, tmp_path):
    port = free_port()
    cfg = parse_config(station_dict(tiny_inspector_ro, tmp_path, trigger={"mode": "software"},
                                    http={"listen": f"127.0.0.1:{port}"}))
    stop = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("s", serve(cfg, stop_event=stop)), daemon=True)
    t.start()
    wait_until(lambda: http(f"http://127.0.0.1:{port}/health")[0] == 200, what="health")
    for _ in range(3):
        assert http(f"http://127.0.0.1:{port}/trigger", "POST")[0] == 202
    wait_until(lambda: line_count(tmp_path / "decisions.jsonl") == 3, what="3 triggered decisions")
    stop.set()
    t.join(60)
    assert result["s"].captured == 3
    assert all(r["timings_ms"]["trigger_to_decision"] > 0 for r in records(tmp_path / "decisions.jsonl"))
