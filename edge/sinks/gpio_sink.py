"""GPIO outputs: OK and NG (levels or pulses), a delayed reject pulse, and the READY line.

The reject pulse starts ``delay_ms`` after the part's *trigger* (the conveyor carries the part
from the camera to the ejector) and lasts ``width_ms``; ``delay_ms = 0`` means as soon as the
decision is made. If the decision comes after the reject moment,
the pulse fires at once and is counted as late: the part may already be past the ejector, and the
log says so. Overlapping pulses on one line merge (the line stays active until the last one ends).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time

from ..config.sections import GpioSection
from ..gpio import GpioChip, Setter
from ..log_format import log_event
from ..telemetry import Telemetry
from . import Decision

log = logging.getLogger("edge.sinks.gpio")


class PulseScheduler:
    """Sets lines active/inactive at given monotonic times, on its own thread; never early."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._heap: list = []
        self._seq = itertools.count()
        self._active: dict[str, int] = {}
        self._setters: dict[str, Setter] = {}
        self._cv = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="gpio-pulses", daemon=True)
        self._thread.start()

    def pulse(self, name: str, setter: Setter, start: float, width_s: float) -> None:
        with self._cv:
            self._setters[name] = setter
            heapq.heappush(self._heap, (start, next(self._seq), name, +1))
            heapq.heappush(self._heap, (start + width_s, next(self._seq), name, -1))
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    if not self._heap:
                        if self._closing:
                            return
                        self._cv.wait()
                        continue
                    wait = self._heap[0][0] - self.clock()
                    if wait <= 0:
                        break
                    self._cv.wait(wait)
                _, _, name, step = heapq.heappop(self._heap)
                before = self._active.get(name, 0)
                after = max(0, before + step)
                self._active[name] = after
                setter = self._setters[name]
            if (before == 0) != (after == 0):
                setter(after > 0)

    def close(self, timeout: float = 10.0) -> None:
        """Let scheduled pulses finish (a reject in flight still happens), then stop."""
        with self._cv:
            self._closing = True
            self._cv.notify()
        self._thread.join(timeout)


class GpioSink:
    name = "gpio"
    needs_images = False

    def __init__(self, cfg: GpioSection, chip: GpioChip, telemetry: Telemetry, clock=time.monotonic):
        self.cfg = cfg
        self.chip = chip
        self.telemetry = telemetry
        self.clock = clock
        self.pulses = PulseScheduler(clock)
        self._out: dict[str, Setter] = {}
        for name in ("ok", "ng", "ready", "reject"):
            spec = getattr(cfg, name)
            if spec is not None:
                self._out[name] = chip.output(name, spec.line, spec.active_high)
        self._ready_lock = threading.Lock()

    def set_ready(self, ready: bool) -> None:
        if "ready" in self._out:
            with self._ready_lock:
                self._out["ready"](ready)

    def _result(self, name: str, active: bool, now: float) -> None:
        spec = getattr(self.cfg, name)
        if spec is None:
            return
        if spec.width_ms:
            if active:
                self.pulses.pulse(name, self._out[name], now, spec.width_ms / 1000.0)
        else:
            self._out[name](active)

    def emit(self, d: Decision) -> None:
        dec = d.record.decision
        if dec == "ERROR" and self.cfg.on_error == "ignore":
            return
        reject = dec != "OK"
        now = self.clock()
        self._result("ok", not reject, now)
        self._result("ng", reject, now)
        if reject and self.cfg.reject is not None:
            delay = self.cfg.reject.delay_ms / 1000.0
            start = d.t_trigger + delay if delay else now  # delay 0: as soon as decided
            if start < now:
                self.telemetry.inc("gpio_late_rejects")
                log_event(log, logging.ERROR, "reject pulse is late: decision came after the reject point",
                          image=d.record.image, late_ms=round((now - start) * 1000, 2))
                start = now
            self.pulses.pulse("reject", self._out["reject"], start, self.cfg.reject.width_ms / 1000.0)
        self.telemetry.observe("trigger_to_gpio", (self.clock() - d.t_trigger) * 1000, budgeted=True)

    def close(self) -> None:
        self.pulses.close()
        for setter in self._out.values():
            setter(False)  # the chip itself belongs to the runtime, which closes it last
