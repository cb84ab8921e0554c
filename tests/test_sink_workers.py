import json
import sys
import threading

from edge.config.sections import HookSection
from edge.records import DecisionRecord
from edge.sinks import Decision
from edge.sinks.hook_sink import HookSink
from edge.sinks.worker import SinkWorker
from edge.sources.frame import Frame
from edge.telemetry import Telemetry

import numpy as np


def dec(i, decision="NG", image=None):
    rec = DecisionRecord(image=image or f"f{i}", decision=decision, score=1.5 if decision == "NG" else 0.4,
                         error="x" if decision == "ERROR" else None)
    frame = Frame(i, rec.image, np.zeros((16, 16, 3), np.uint8), 0.0, 0.0)
    return Decision(rec, 0.0, 0.0, False, frame, None, 1.0)


class BlockingSink:
    name = "slow"
    needs_images = False

    def __init__(self):
        self.gate = threading.Event()
        self.got = []

    def emit(self, d):
        self.gate.wait()
        self.got.append(d)

    def close(self):
        pass


def test_a_blocked_sink_never_blocks_the_caller_and_counts_what_it_drops():
    tel = Telemetry()
    sink = BlockingSink()
    w = SinkWorker(sink, tel, max_queue=5)
    done = threading.Event()

    def offer_all():
        for i in range(100):
            w.offer(dec(i))
        done.set()

    threading.Thread(target=offer_all, daemon=True).start()
    assert done.wait(30), "offer() blocked behind a stuck sink"
    sink.gate.set()
    w.close()
    dropped = tel.count("sink_dropped", sink="slow")
    assert len(sink.got) + dropped == 100
    assert 5 <= len(sink.got) <= 6  # the queue, plus possibly the one already taken
    assert all(d.frame is None for d in sink.got)  # a sink without images gets light copies


def test_storage_style_worker_keeps_records_and_sheds_images():
    tel = Telemetry()
    sink = BlockingSink()
    sink.name, sink.needs_images = "storage", True
    w = SinkWorker(sink, tel, max_queue=3, keep_records=True)
    for i in range(50):
        w.offer(dec(i))
    sink.gate.set()
    w.close()
    assert [d.record.image for d in sink.got] == [f"f{i}" for i in range(50)]  # nothing dropped, in order
    assert sum(d.frame is not None for d in sink.got) <= 4
    assert tel.count("sink_shed", sink="storage") >= 46


def test_a_failing_sink_is_counted_and_the_worker_goes_on():
    class Boom:
        name, needs_images = "boom", False

        def __init__(self):
            self.n = 0

        def emit(self, d):
            self.n += 1
            if self.n % 2:
                raise RuntimeError("broker said no")

        def close(self):
            pass

    tel = Telemetry()
    s = Boom()
    w = SinkWorker(s, tel)
    for i in range(6):
        w.offer(dec(i))
    w.close()
    assert s.n == 6 and tel.count("sink_errors", sink="boom") == 3 and tel.count("sink_emitted", sink="boom") == 3


def write_script(tmp_path, body):
    p = tmp_path / "hook.py"
    p.write_text(body)
    return p


def test_hook_gets_the_record_as_json_on_stdin_and_no_shell(tmp_path):
    out = tmp_path / "got.jsonl"
    script = write_script(tmp_path, "import sys\nopen(sys.argv[1], 'a').write(sys.stdin.read() + '\\n')\n")
    tel = Telemetry()
    hook = HookSink(HookSection(command=[sys.executable, str(script), str(out)], on=["NG", "ERROR"]), tel, "st1")
    evil = "$(touch PWNED); touch PWNED2 `touch PWNED3`"
    for d in (dec(1, "NG", image=evil), dec(2, "OK"), dec(3, "ERROR")):
        hook.emit(d)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["decision"] for g in got] == ["NG", "ERROR"]
    assert got[0]["image"] == evil and got[0]["station"] == "st1"
    assert not list(tmp_path.glob("PWNED*")) and not list(__import__("pathlib").Path.cwd().glob("PWNED*"))
    assert tel.count("hook_runs", result="ok") == 2


def test_hook_timeouts_and_failures_are_counted(tmp_path):
    slow = write_script(tmp_path, "import time\ntime.sleep(30)\n")
    tel = Telemetry()
    HookSink(HookSection(command=[sys.executable, str(slow)], timeout_s=0.3), tel, "s").emit(dec(1))
    assert tel.count("hook_runs", result="timeout") == 1
    fail = tmp_path / "fail.py"
    fail.write_text("import sys\nsys.stderr.write('no MES today')\nsys.exit(3)\n")
    HookSink(HookSection(command=[sys.executable, str(fail)]), tel, "s").emit(dec(2))
    assert tel.count("hook_runs", result="exit") == 1
    HookSink(HookSection(command=[str(tmp_path / "missing-program")]), tel, "s").emit(dec(3))
    assert tel.count("hook_runs", result="start") == 1
