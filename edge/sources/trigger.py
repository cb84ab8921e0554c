"""Triggered capture: one frame per trigger (a GPIO input edge, POST /trigger, or a simulator).

For a live camera a grabber thread keeps reading, so the driver never hands out a stale
buffered frame; each trigger takes the first frame captured after it. If that frame came
later than ``max_frame_delay_s`` after the trigger, the part it was meant for has moved on:
the frame becomes an ERROR record instead of a decision about the wrong part.
For files and synthetic frames each trigger simply takes the next one.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from typing import Iterator

from ..log_format import log_event
from . import Source
from .frame import Frame

log = logging.getLogger("edge.sources.trigger")


class TriggerQueue:
    """Trigger timestamps (``time.monotonic()`` seconds) in arrival order; thread-safe."""

    def __init__(self, debounce_ms: float = 0.0, maxlen: int = 1024, clock=time.monotonic):
        self.debounce_s = debounce_ms / 1000.0
        self.clock = clock
        self._q: deque[float] = deque()
        self._maxlen = maxlen
        self._cv = threading.Condition()
        self._last: float | None = None
        self._closed = False
        self.fired = 0
        self.debounced = 0
        self.overruns = 0

    def fire(self, t: float | None = None) -> bool:
        t = self.clock() if t is None else t
        with self._cv:
            if self._last is not None and 0 <= t - self._last < self.debounce_s:
                self.debounced += 1
                return False
            self._last = t
            if len(self._q) >= self._maxlen:
                self.overruns += 1
                log_event(log, logging.ERROR, "trigger overrun: capture is not keeping up; trigger lost",
                          lost_total=self.overruns)
                return False
            self._q.append(t)
            self.fired += 1
            self._cv.notify_all()
            return True

    def wait(self, timeout: float) -> float | None:
        with self._cv:
            if not self._q and not self._closed:
                self._cv.wait(timeout)
            return self._q.popleft() if self._q else None

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()


class _LatestFrame:
    """Reads a live source on its own thread and keeps only the newest frame."""

    def __init__(self, source: Source):
        self.source = source
        self._cv = threading.Condition()
        self._latest: Frame | None = None
        self.ended = False
        self._thread = threading.Thread(target=self._run, name="grabber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for f in self.source:
                with self._cv:
                    self._latest = f
                    self._cv.notify_all()
        finally:
            with self._cv:
                self.ended = True
                self._cv.notify_all()

    def first_after(self, t: float, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cv:
            while not (self._latest is not None and self._latest.t_capture >= t) and not self.ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cv.wait(left)
            return self._latest if self._latest is not None and self._latest.t_capture >= t else None

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


class TriggeredSource:
    """Wraps a source so that it yields one required frame per trigger."""

    def __init__(self, source: Source, triggers: TriggerQueue, max_frame_delay_s: float = 0.25,
                 read_timeout_s: float = 2.0):
        self.source = source
        self.triggers = triggers
        self.live = getattr(source, "live", False)
        self.max_frame_delay_s = max_frame_delay_s
        self.read_timeout_s = read_timeout_s
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        grabber = _LatestFrame(self.source) if self.live else None
        frames = None if self.live else iter(self.source)
        try:
            yield from self._per_trigger(grabber, frames)
        finally:
            self.source.close()
            if grabber is not None:
                grabber.join(1.0)

    def _per_trigger(self, grabber: _LatestFrame | None, frames) -> Iterator[Frame]:
        n = 0
        while True:
            t = self.triggers.wait(0.1)
            if t is None:  # nothing queued: stop only now, so parts triggered before a stop get frames
                if self._stop.is_set() or (grabber is not None and grabber.ended):
                    return
                continue
            if grabber is not None:
                f = grabber.first_after(t, self.read_timeout_s)
                if f is None:
                    now = time.monotonic()
                    f = Frame(n, f"trigger-{n:06d}", None, now, t,
                              error=f"no frame within {self.read_timeout_s} s of the trigger")
                elif f.t_capture - t > self.max_frame_delay_s:
                    late = (f.t_capture - t) * 1000
                    f = f.failed(f"first frame after the trigger came {late:.0f} ms later (limit "
                                 f"{self.max_frame_delay_s * 1000:.0f} ms); the part was missed")
            else:
                f = next(frames, None)
                if f is None:
                    return
            n += 1
            yield dataclasses.replace(f, t_trigger=t, required=True)

    def close(self) -> None:
        """No new triggers; those already queued are still served, then the source is closed."""
        self._stop.set()
        self.triggers.close()
