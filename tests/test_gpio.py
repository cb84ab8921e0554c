import sys
import threading
import time
import types

import pytest

from edge.config.sections import GpioSection, OutputLine, RejectLine
from edge.errors import GpioError
from edge.gpio.sim_gpio import SimGpio
from edge.records import DecisionRecord
from edge.sinks import Decision
from edge.sinks.gpio_sink import GpioSink, PulseScheduler
from edge.telemetry import Telemetry

from .runtime_helpers import gpio_events

SLACK = 0.25  # generous upper tolerance for thread scheduling on a busy CI box; lower bounds are exact


def d(dec: str, t_trigger: float, image: str = "x") -> Decision:
    rec = DecisionRecord(image=image, decision=dec, error="boom" if dec == "ERROR" else None)
    return Decision(rec, t_trigger, time.monotonic())


def changes(events, line):
    return [(e["t"], e["active"]) for e in events if e.get("line") == line and "active" in e and not e.get("init")]


def test_reject_pulse_starts_delay_after_the_trigger_and_lasts_its_width(tmp_path):
    cfg = GpioSection(backend="sim", ok=OutputLine(line=1), ng=OutputLine(line=2),
                      reject=RejectLine(line=3, delay_ms=80, width_ms=40))
    chip = SimGpio(tmp_path / "gpio.jsonl")
    tel = Telemetry()
    sink = GpioSink(cfg, chip, tel)
    t0 = time.monotonic()
    triggers = [t0, t0 + 0.2, t0 + 0.4, t0 + 0.6]
    for dec, t in zip(["OK", "NG", "NG", "OK"], triggers):
        while time.monotonic() < t:
            time.sleep(0.002)
        sink.emit(d(dec, t))
    sink.close()
    chip.close()
    ev = gpio_events(tmp_path / "gpio.jsonl")
    assert [a for _, a in changes(ev, "ok")] == [True, False, True, False]  # close() leaves outputs inactive
    assert [a for _, a in changes(ev, "ng")] == [True, False]
    rej = changes(ev, "reject")
    assert [a for _, a in rej] == [True, False, True, False]
    eps = 2e-6  # the log rounds times to microseconds
    for (t_on, _), (t_off, _), trig in ((rej[0], rej[1], triggers[1]), (rej[2], rej[3], triggers[2])):
        assert trig + 0.080 - eps <= t_on <= trig + 0.080 + SLACK
        assert trig + 0.120 - eps <= t_off <= trig + 0.120 + SLACK
    assert tel.count("gpio_late_rejects") == 0
    # every change carries monotonic and wall time
    assert all("t" in e and "wall" in e for e in ev)


def test_overlapping_pulses_merge_and_late_decisions_fire_at_once(tmp_path):
    cfg = GpioSection(backend="sim", reject=RejectLine(line=3, delay_ms=50, width_ms=60))
    chip = SimGpio(tmp_path / "gpio.jsonl")
    tel = Telemetry()
    sink = GpioSink(cfg, chip, tel)
    t0 = time.monotonic()
    sink.emit(d("NG", t0))
    sink.emit(d("NG", t0 + 0.02))  # its pulse starts while the first is still on
    sink.emit(d("NG", t0 - 1.0, image="late"))  # the reject point passed a second ago
    sink.close()
    chip.close()
    rej = changes(gpio_events(tmp_path / "gpio.jsonl"), "reject")
    # the late pulse fires at once; the other two start later and merge with it or each other
    assert rej[0][1] is True and rej[-1][1] is False
    assert rej[-1][0] >= t0 + 0.02 + 0.05 + 0.06 - 2e-6
    assert tel.count("gpio_late_rejects") == 1


def test_error_decisions_reject_by_default_and_can_be_ignored(tmp_path):
    for on_error, expect in (("reject", [True, False]), ("ignore", [])):
        path = tmp_path / f"{on_error}.jsonl"
        chip = SimGpio(path)
        sink = GpioSink(GpioSection(backend="sim", on_error=on_error, reject=RejectLine(line=1, width_ms=10)),
                        chip, Telemetry())
        sink.emit(d("ERROR", time.monotonic()))
        sink.close()
        chip.close()
        assert [a for _, a in changes(gpio_events(path), "reject")] == expect


def test_pulse_scheduler_never_fires_early():
    seen = []
    s = PulseScheduler()
    start = time.monotonic() + 0.05
    s.pulse("x", lambda on: seen.append((time.monotonic(), on)), start, 0.03)
    s.close()
    assert seen[0][0] >= start and seen[1][0] >= start + 0.03  # unrounded clock readings
    assert [on for _, on in seen] == [True, False]


# --- hardware backends, driven through fakes of their Python APIs ---------------------------------

def test_gpiod_backend_requests_lines_as_configured(monkeypatch):
    gpiod = pytest.importorskip("gpiod", reason="gpiod (libgpiod v2 bindings) not installed")
    from gpiod.line import Clock, Direction, Edge, Value

    from edge.gpio.gpiod_gpio import GpiodChip

    requests = []

    class FakeRequest:
        def __init__(self, path, config):
            self.path, self.config = path, config
            self.values = []
            self.events = []
            self.released = False

        def set_value(self, line, value):
            self.values.append((line, value))

        def wait_edge_events(self, timeout):
            if self.events:
                return True
            time.sleep(0.01)
            return False

        def read_edge_events(self):
            out, self.events = self.events, []
            return out

        def release(self):
            self.released = True

    def request_lines(path, consumer=None, config=None, **kw):
        assert consumer == "edge-inspect"
        r = FakeRequest(path, config)
        requests.append(r)
        return r

    monkeypatch.setattr(gpiod, "request_lines", request_lines)
    chip = GpiodChip("/dev/gpiochip3")
    set_ng = chip.output("ng", 17, active_high=False)
    settings = requests[0].config[17]
    assert settings.direction == Direction.OUTPUT and settings.active_low is True
    assert settings.output_value == Value.INACTIVE and requests[0].path == "/dev/gpiochip3"
    set_ng(True)
    set_ng(False)
    assert requests[0].values == [(17, Value.ACTIVE), (17, Value.INACTIVE)]

    got = []
    fired = threading.Event()
    chip.watch("trigger", "LIGHT_BARRIER", "falling", 3.0, lambda t: (got.append(t), fired.set()))
    s = requests[1].config["LIGHT_BARRIER"]
    assert s.direction == Direction.INPUT and s.edge_detection == Edge.FALLING
    assert s.debounce_period.total_seconds() == pytest.approx(0.003) and s.event_clock == Clock.MONOTONIC
    requests[1].events.append(types.SimpleNamespace(timestamp_ns=12_345_678_900))
    assert fired.wait(5)
    assert got == [pytest.approx(12.3456789)]
    chip.close()
    assert all(r.released for r in requests)


def test_gpiod_missing_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gpiod", None)
    from edge.gpio.gpiod_gpio import GpiodChip

    with pytest.raises(GpioError, match="gpiod package"):
        GpiodChip("/dev/gpiochip0")


def fake_jetson(monkeypatch):
    calls = []
    GPIO = types.SimpleNamespace(
        BOARD=10, BCM=11, CVM=1000, TEGRA_SOC=1001, HIGH=1, LOW=0, OUT=0, IN=1, RISING=31, FALLING=32,
        setwarnings=lambda flag: calls.append(("setwarnings", flag)),
        setmode=lambda m: calls.append(("setmode", m)),
        setup=lambda pin, direction, initial=None: calls.append(("setup", pin, direction, initial)),
        output=lambda pin, v: calls.append(("output", pin, v)),
        add_event_detect=lambda pin, edge, callback=None, bouncetime=None: calls.append(
            ("detect", pin, edge, callback, bouncetime)),
        remove_event_detect=lambda pin: calls.append(("remove", pin)),
        cleanup=lambda pins=None: calls.append(("cleanup", tuple(pins))),
    )
    pkg = types.ModuleType("Jetson")
    pkg.GPIO = GPIO
    monkeypatch.setitem(sys.modules, "Jetson", pkg)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", GPIO)
    return calls


def test_jetson_backend_maps_levels_and_edges(monkeypatch):
    calls = fake_jetson(monkeypatch)
    from edge.gpio.jetson_gpio import JetsonGpio

    chip = JetsonGpio("BOARD")
    set_rej = chip.output("reject", 32, active_high=False)
    set_rej(True)
    set_rej(False)
    got = []
    chip.watch("trigger", 18, "rising", 5.0, got.append)
    detect = [c for c in calls if c[0] == "detect"][0]
    assert detect[1:3] == (18, 31) and detect[4] == 5
    detect[3](18)  # Jetson.GPIO calls back with the channel
    chip.close()
    assert ("setmode", 10) in calls
    assert ("setup", 32, 0, 1) in calls  # active-low output starts high (inactive)
    assert [c for c in calls if c[0] == "output"] == [("output", 32, 0), ("output", 32, 1)]
    assert len(got) == 1 and got[0] <= time.monotonic()
    assert ("remove", 18) in calls and ("cleanup", (32, 18)) in calls
