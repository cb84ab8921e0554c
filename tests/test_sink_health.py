"""A hanging or failing sink is timed out and isolated: the others go on, and health and metrics show it."""

import json
import sys
import threading
import time
import urllib.request

import pytest

from edge.daemon import serve
from edge.sinks import Decision
from edge.sinks.worker import SinkWorker
from edge.records import DecisionRecord
from edge.telemetry import Telemetry

from .runtime_helpers import free_port, records, station


class Blocking:
    name, needs_images = "blocking", False

    def __init__(self):
        self.release = threading.Event()

    def emit(self, d):
        self.release.wait(30)

    def close(self):
        self.release.set()


class Failing:
    name, needs_images = "failing", False

    def emit(self, d):
        raise OSError(113, "No route to host")

    def close(self):
        pass


class Counting:
    name, needs_images = "counting", False

    def __init__(self):
        self.n = 0

    def emit(self, d):
        self.n += 1

    def close(self):
        pass


def decision(i):
    return Decision(DecisionRecord(image=f"p{i}", decision="OK", score=0.1, raw_score=1.0), 0.0, 0.0, False, None,
                    None, 1.0)


def test_a_stuck_and_a_failing_sink_show_in_status_and_metrics_while_the_others_go_on():
    tel = Telemetry(100.0)
    blocking, failing, counting = Blocking(), Failing(), Counting()
    workers = [SinkWorker(s, tel, max_queue=q) for s, q in ((blocking, 4), (failing, 64), (counting, 64))]
    t0 = time.monotonic()
    for i in range(20):
        for w in workers:
            w.offer(decision(i))  # never blocks, even for the stuck sink
    assert time.monotonic() - t0 < 1.0
    deadline = time.monotonic() + 10
    while counting.n < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counting.n == 20
    time.sleep(0.3)
    st = {w.sink.name: w.status(stall_s=0.2) for w in workers}
    assert st["blocking"]["ok"] is False and st["blocking"]["problem"].startswith("stuck: one decision")
    assert st["blocking"]["dropped"] >= 15  # its queue of 4 is full: the rest are dropped for it, and counted
    assert st["failing"] == {"ok": False, "queued": 0, "errors": 20, "dropped": 0,
                             "problem": "OSError: [Errno 113] No route to host"}
    assert st["counting"]["ok"] is True and "problem" not in st["counting"]
    m = tel.prometheus()
    assert 'edge_inspect_sink_healthy{sink="blocking"} 0' in m and 'edge_inspect_sink_healthy{sink="counting"} 1' in m
    assert 'edge_inspect_sink_errors_total{sink="failing"} 20' in m
    blocking.release.set()
    for w in workers:
        w.close(timeout=2)


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@pytest.mark.parametrize("hook, timeout_s, problem", [
    ([sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit(3)"], 5.0, "exit status 3"),
    ([sys.executable, "-c", "import time; time.sleep(30)"], 0.3, "killed after 0.3 s"),
], ids=["failing-hook", "hanging-hook"])
def test_a_bad_hook_shows_in_health_and_metrics_and_costs_no_decision(tiny_inspector_ro, tmp_path, hook, timeout_s,
                                                                     problem):
    port = free_port()
    cfg = station(tiny_inspector_ro, tmp_path, http={"listen": f"127.0.0.1:{port}"},
                  source={"synthetic": {"fps": 50}},
                  hook={"command": hook, "on": ["OK", "NG", "ERROR"], "timeout_s": timeout_s},
                  pipeline={"drain_timeout_s": 1.0})
    seen = {}

    def started(rt):
        def probe():
            end = time.monotonic() + 60
            while time.monotonic() < end:
                code, body = _get(f"http://127.0.0.1:{port}/health")
                h = json.loads(body) if body else {}
                if not h.get("sinks", {}).get("hook", {}).get("ok", True):
                    seen["health"] = (code, h)
                    seen["metrics"] = _get(f"http://127.0.0.1:{port}/metrics")[1]
                    return
                time.sleep(0.05)
        t = threading.Thread(target=probe, daemon=True)
        t.start()
        seen["probe"] = t

    # 200 frames at 50 fps: long enough for the hook's first run to fail, even on a busy machine
    summary = serve(cfg, max_frames=200, on_started=started)
    seen["probe"].join(5)
    code, h = seen["health"]
    assert code == 200 and h["status"] == "ready"  # a sink never takes the station down
    assert h["degraded"] == ["hook"] and problem in h["sinks"]["hook"]["problem"]
    assert h["sinks"]["storage"]["ok"] is True
    assert 'edge_inspect_sink_healthy{sink="hook"} 0' in seen["metrics"]
    assert len(records(tmp_path / "decisions.jsonl")) == summary.captured == 200
