"""One thread and one bounded queue per sink.

When a sink falls behind, its queue fills. Then ``shed``: for the storage sink a decision with
images is kept as its bare record (the images are skipped and counted), so the decision log never
loses a decision; for other sinks the decision is dropped for that sink, counted and logged.
Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from ..log_format import Throttle, log_event
from ..telemetry import Telemetry
from . import Decision, Sink

log = logging.getLogger("edge.sinks")


class SinkWorker:
    def __init__(self, sink: Sink, telemetry: Telemetry, max_queue: int = 64, keep_records: bool = False,
                 hard_cap: int = 100_000):
        """``keep_records``: when the queue is full, keep the light record (storage) instead of dropping."""
        self.sink = sink
        self.telemetry = telemetry
        self.max_queue = max_queue
        self.keep_records = keep_records
        self.hard_cap = hard_cap
        self._q: deque[Decision] = deque()
        self._heavy = 0
        self._cv = threading.Condition()
        self._closing = False
        self._throttle = Throttle(10.0)
        self._busy_since: float | None = None  # monotonic start of the emit in progress
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self._thread.start()

    def offer(self, d: Decision) -> None:
        """Never blocks."""
        if not self.sink.needs_images:
            d = d.light()
        with self._cv:
            full = (self._heavy if self.keep_records else len(self._q)) >= self.max_queue
            if full and self.keep_records and d.heavy and len(self._q) < self.hard_cap:
                d = d.light()
                self.telemetry.inc("sink_shed", sink=self.sink.name)
                self._report("shed", "sink is behind: images of this decision are skipped, the record is kept")
            elif full or len(self._q) >= self.hard_cap:
                self.telemetry.inc("sink_dropped", sink=self.sink.name)
                self._report("dropped", "sink is behind: decision dropped for this sink", loud=self.keep_records)
                return
            self._q.append(d)
            self._heavy += d.heavy
            self.telemetry.gauge("sink_queue", len(self._q), sink=self.sink.name)
            self._cv.notify()

    def _report(self, what: str, msg: str, loud: bool = False) -> None:
        held = self._throttle.check(what)
        if held is not None:
            log_event(log, logging.ERROR if loud else logging.WARNING, msg, sink=self.sink.name,
                      total=int(self.telemetry.count(f"sink_{what}", sink=self.sink.name)), since_last_report=held)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._q and not self._closing:
                    self._cv.wait()
                if not self._q:
                    return
                d = self._q.popleft()
                self._heavy -= d.heavy
            t0 = time.perf_counter()
            self._busy_since = time.monotonic()
            try:
                self.sink.emit(d)
                self.telemetry.inc("sink_emitted", sink=self.sink.name)
                self._last_error = None
            except Exception as e:  # a failing sink is logged and counted; the others go on
                self._last_error = f"{type(e).__name__}: {e}"
                self.telemetry.inc("sink_errors", sink=self.sink.name)
                held = self._throttle.check("error")
                if held is not None:
                    log_event(log, logging.ERROR, "sink failed", sink=self.sink.name,
                              error=f"{type(e).__name__}: {e}", since_last_report=held)
            finally:
                self._busy_since = None
            self.telemetry.observe(f"sink_{self.sink.name}", (time.perf_counter() - t0) * 1000)

    def status(self, stall_s: float = 10.0) -> dict:
        """For health and metrics: ok unless the last emit failed (or the sink reports a problem, e.g. a
        hook that timed out or an MQTT broker away) or one emit has been running over ``stall_s``.
        Also sets the ``sink_healthy`` and ``sink_busy_seconds`` gauges. A sink never affects READY."""
        since = self._busy_since
        busy = 0.0 if since is None else time.monotonic() - since
        problem = self._last_error or getattr(self.sink, "problem", None)
        if busy > stall_s:
            problem = f"stuck: one decision has been sending for {busy:.0f} s"
        name = self.sink.name
        self.telemetry.gauge("sink_healthy", 0 if problem else 1, sink=name)
        self.telemetry.gauge("sink_busy_seconds", round(busy, 3), sink=name)
        out = {"ok": problem is None, "queued": self.pending(), "errors": int(self.telemetry.count("sink_errors",
                                                                                                  sink=name)),
               "dropped": int(self.telemetry.count("sink_dropped", sink=name))}
        if problem:
            out["problem"] = problem
        return out

    def pending(self) -> int:
        with self._cv:
            return len(self._q)

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued (within ``timeout``; None = all of it), then close the sink.

        Returns False if decisions were left unsent; they are counted and logged.
        """
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(timeout)
        left = 0
        if self._thread.is_alive():
            with self._cv:
                left = len(self._q)
                self._q.clear()
            self.telemetry.inc("sink_dropped", left, sink=self.sink.name)
            log_event(log, logging.ERROR, "sink did not finish in time; queued decisions not sent",
                      sink=self.sink.name, unsent=left)
            self._thread.join(1.0)  # the emit in progress may still finish
        try:
            self.sink.close()
        except Exception as e:
            log_event(log, logging.ERROR, "sink close failed", sink=self.sink.name, error=str(e))
        return left == 0
