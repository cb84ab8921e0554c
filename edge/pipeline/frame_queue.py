"""The queue between capture and the model, where the frame-drop policy applies.

``every``: capture waits while the queue is full, so no frame is skipped (a live camera's own
driver may then drop frames: choose this for files, folders and triggered parts that must all
be inspected). ``latest``: the oldest waiting frame is dropped to make room, so the model always
works on the newest view (free-running cameras). Dropped frames are counted; a dropped frame that
is a part (``Frame.required``) becomes an ERROR record, so no part passes without a decision.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from ..log_format import Throttle, log_event
from ..sources.frame import Frame
from ..telemetry import Telemetry

log = logging.getLogger("edge.pipeline")


class FrameQueue:
    def __init__(self, maxsize: int, policy: str, telemetry: Telemetry):
        if policy not in ("every", "latest"):
            raise ValueError(f"drop policy {policy!r}")
        self.maxsize = maxsize
        self.policy = policy
        self.telemetry = telemetry
        self._q: deque[Frame] = deque()
        self._skipped: list[Frame] = []
        self._cv = threading.Condition()
        self._closed = False
        self._throttle = Throttle(10.0)

    def put(self, frame: Frame) -> None:
        with self._cv:
            if self.policy == "every":
                while len(self._q) >= self.maxsize and not self._closed:
                    self._cv.wait()
            elif len(self._q) >= self.maxsize:
                old = self._q.popleft()
                self.telemetry.inc("frames_dropped", policy="latest")
                if old.required:
                    self._skipped.append(old.failed("skipped: the pipeline was behind (capture.drop_policy = "
                                                    "'latest')"))
                held = self._throttle.check("drop")
                if held is not None:
                    log_event(log, logging.WARNING, "frames dropped: inference is slower than capture",
                              policy="latest", total=int(self.telemetry.count("frames_dropped")),
                              since_last_report=held)
            self._q.append(frame)
            self._cv.notify_all()

    def get_batch(self, max_n: int) -> list[Frame] | None:
        """Frames skipped since the last call, then up to ``max_n`` waiting frames; None once closed and empty."""
        with self._cv:
            while not self._q and not self._skipped and not self._closed:
                self._cv.wait()
            out, self._skipped = self._skipped, []
            for _ in range(min(max_n, len(self._q))):
                out.append(self._q.popleft())
            self._cv.notify_all()
            return out or None

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
