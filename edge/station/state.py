"""What the station page shows, kept in memory and fed from two sides, both off the frame path:

- :class:`StationSink` (a sink on its own worker thread) sees every decision: counters, the
  score trend, throughput, drift, and a reference to the latest frame and its inspection (the
  live picture is drawn only when a browser asks for it);
- the storage sink reports each record it wrote (:meth:`StationState.stored`), with the paths of
  the images it kept: the NG gallery and the full record come from there.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from ..log_format import log_event
from ..records import DecisionRecord
from ..sinks import Decision
from ..telemetry import Telemetry
from ..visualize import heat_overlay
from .drift import STATES, DriftMonitor

log = logging.getLogger("edge.station")
LIVE_SIDE = 640  # the live picture is reduced to this longest side


@dataclass(frozen=True)
class Part:
    """One decided part the page can show and act on (``seq`` is its id on the page)."""

    seq: int
    record: DecisionRecord


@dataclass
class _Latest:
    seq: int
    decision: Decision
    jpeg: bytes | None = None


class StationState:
    def __init__(self, telemetry: Telemetry, ready: Callable[[], bool], inspector_id: Callable[[], str],
                 *, gallery_size: int = 12, trend_hours: float = 8.0,
                 trend_points: int = 20000, recent_parts: int = 500, keep_frames: int = 4,
                 drift: Callable[[], DriftMonitor | None] | None = None,
                 on_drift: Callable[[str, dict], None] | None = None, clock=time.time):
        """``drift`` builds the drift monitor for the running inspector: called at start and again
        when a part comes from another inspector (a refit, a SIGHUP), whose good scores differ."""
        self.telemetry = telemetry
        self.ready = ready
        self.inspector_id = inspector_id
        self.clock = clock
        self.trend_s = trend_hours * 3600
        self._make_drift = drift
        self.drift = drift() if drift is not None else None
        self._drift_for = inspector_id()
        self.on_drift = on_drift
        self._lock = threading.Lock()
        self._counts = {"OK": 0, "NG": 0, "ERROR": 0}
        self._trend: deque[tuple[float, float, str]] = deque(maxlen=trend_points)  # (wall, score, decision)
        self._done: deque[float] = deque(maxlen=4096)  # wall times, for throughput
        self._latest: _Latest | None = None
        self._frames: deque[tuple[int, np.ndarray]] = deque(maxlen=keep_frames)  # last frames, for feedback
        self._gallery: deque[int] = deque(maxlen=gallery_size)
        self._parts: dict[int, Part] = {}
        self._order: deque[int] = deque()
        self._recent_parts = recent_parts
        self._seq_of: dict[tuple[str, str], int] = {}  # (image, timestamp) → seq, to match storage's record
        self._next = 0
        self.events: deque[dict] = deque(maxlen=50)  # feedback and drift events, newest last

    # --- fed by the sinks ----------------------------------------------------------------------
    def observe(self, d: Decision) -> None:
        rec = d.record
        now = self.clock()
        with self._lock:
            seq = d.frame.seq if d.frame is not None else self._next
            self._next = max(self._next, seq) + 1
            self._counts[rec.decision] = self._counts.get(rec.decision, 0) + 1
            self._done.append(now)
            if rec.score is not None:
                self._trend.append((now, float(rec.score), rec.decision))
            while self._trend and self._trend[0][0] < now - self.trend_s:
                self._trend.popleft()
            self._latest = _Latest(seq, d)
            if d.frame is not None and d.frame.image is not None:
                self._frames.append((seq, d.frame.image))
            self._remember(Part(seq, rec))
            self._seq_of[(rec.image, rec.timestamp)] = seq
        if self._make_drift is not None and rec.inspector and rec.inspector != self._drift_for:
            self._drift_for = rec.inspector
            self.drift = self._make_drift()
            self.event("drift", state="restarted", note=f"new inspector {rec.inspector}: its own good scores")
            if self.drift is not None:  # the lamp and MQTT hear that the old verdict no longer holds
                self._drift_changed("learning")
        if self.drift is not None and rec.decision == "OK" and rec.raw_score is not None:
            changed = self.drift.observe(rec.raw_score)
            st = self.drift.status()
            if st.shift is not None:
                self.telemetry.gauge("drift_shift", round(st.shift, 4))
            self.telemetry.gauge("drift_state", STATES.index(st.state))
            if changed is not None:
                self._drift_changed(changed)

    def stored(self, rec: DecisionRecord) -> None:
        """The storage sink wrote ``rec`` (with the paths of the images it kept)."""
        with self._lock:
            seq = self._seq_of.pop((rec.image, rec.timestamp), None)
            if seq is None:
                return
            self._remember(Part(seq, rec))
            if rec.decision == "NG":
                self._gallery.append(seq)

    def _remember(self, part: Part) -> None:
        if part.seq not in self._parts:
            self._order.append(part.seq)
        self._parts[part.seq] = part
        while len(self._order) > self._recent_parts:
            old = self._order.popleft()
            self._parts.pop(old, None)
        while len(self._seq_of) > 4 * self._recent_parts:
            self._seq_of.pop(next(iter(self._seq_of)))

    def _drift_changed(self, state: str) -> None:
        st = self.drift.status().to_dict()
        level = logging.WARNING if state in ("warning", "alarm") else logging.INFO
        log_event(log, level, f"drift {state}: recent OK scores vs the good scores at fit", **{
            k: st[k] for k in ("shift", "recent_median", "reference_median", "n_recent")})
        self.telemetry.inc("drift_changes", state=state)
        self.event("drift", state=state, shift=st["shift"])
        if self.on_drift is not None:
            try:
                self.on_drift(state, st)
            except Exception as e:  # an alert channel failing must not stop the page or the line
                log_event(log, logging.ERROR, "drift alert failed", error=f"{type(e).__name__}: {e}")

    def event(self, kind: str, **fields) -> None:
        with self._lock:
            self.events.append({"time": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.clock())),
                                "kind": kind, **fields})

    # --- read by the page ---------------------------------------------------------------------
    def part(self, seq: int) -> Part | None:
        with self._lock:
            return self._parts.get(seq)

    def recent_frame(self, seq: int) -> np.ndarray | None:
        """The image of part ``seq`` if it is one of the last few (held in memory, not saved)."""
        with self._lock:
            return next((img for s, img in self._frames if s == seq), None)

    def live_jpeg(self) -> tuple[int, bytes] | None:
        """The latest frame with its heat map, as JPEG (drawn on request, once per frame)."""
        with self._lock:
            latest = self._latest
        if latest is None:
            return None
        if latest.jpeg is None:
            latest.jpeg = _live_picture(latest.decision)
        return latest.seq, latest.jpeg

    def snapshot(self) -> dict:
        now = self.clock()
        with self._lock:
            counts = dict(self._counts)
            recent = [t for t in self._done if t >= now - 10.0]
            latest = self._latest
            gallery = [self._parts[s] for s in reversed(self._gallery) if s in self._parts]
            trend = list(self._trend)
            events = list(self.events)
        total = sum(counts.values())
        span = (now - recent[0]) if len(recent) > 1 else 0.0
        lat = (self.telemetry.latency("trigger_to_gpio") or self.telemetry.latency("trigger_to_decision") or {})
        snap = {
            "inspector": self.inspector_id(), "ready": bool(self.ready()), "threshold": 1.0,
            "counts": counts, "total": total, "ng_rate": (counts["NG"] / total) if total else None,
            "throughput_per_s": ((len(recent) - 1) / span) if span > 0 else 0.0,
            "latency": {"p50_ms": lat.get("p50_ms"), "p99_ms": lat.get("p99_ms"),
                        "budget_ms": self.telemetry.budget_ms},
            "latest": None, "gallery": [_brief(p) for p in gallery], "trend": _downsample(trend, now, 600),
            "trend_hours": self.trend_s / 3600, "drift": self.drift.status().to_dict() if self.drift else None,
            "events": events,
        }
        if latest is not None:
            r = latest.decision.record
            snap["latest"] = {"seq": latest.seq, "decision": r.decision, "score": r.score, "image": r.image,
                              "timestamp": r.timestamp, "error": r.error}
        return snap


def _live_picture(d: Decision) -> bytes:
    """The frame scaled to LIVE_SIDE (up or down) with its heat map and mask outline, as JPEG.

    Scaled before drawing, so a small camera frame does not get a blown-up, blurred overlay; no
    caption (the page shows the verdict in large type).
    """
    img = d.frame.image if d.frame is not None else None
    if img is None:
        img = np.full((240, 320, 3), 40, np.uint8)
    f = LIVE_SIDE / max(img.shape[:2])
    size = (max(1, round(img.shape[1] * f)), max(1, round(img.shape[0] * f)))
    big = cv2.resize(img, size, interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR)
    res = d.inspection
    if res is not None and res.anomaly_map is not None and d.image_threshold:
        amap = cv2.resize(res.anomaly_map.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
        mask = None if res.mask is None else cv2.resize(res.mask, size, interpolation=cv2.INTER_NEAREST)
        big = heat_overlay(big, amap, mask, d.image_threshold)
    ok, buf = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes() if ok else b""


def _brief(p: Part) -> dict:
    r = p.record
    return {"seq": p.seq, "image": r.image, "decision": r.decision, "score": r.score, "timestamp": r.timestamp,
            "has_overlay": bool(r.overlay), "has_image": bool(r.saved_image)}


def _downsample(trend: list[tuple[float, float, str]], now: float, points: int) -> list[list]:
    """[[seconds before now, score, decision], …], at most ``points``: the maximum of each slice (NG spikes show)."""
    if len(trend) <= points:
        return [[round(now - t, 1), round(s, 4), d] for t, s, d in trend]
    out = []
    step = len(trend) / points
    for i in range(points):
        chunk = trend[int(i * step):int((i + 1) * step)] or [trend[-1]]
        t, s, d = max(chunk, key=lambda x: x[1])
        out.append([round(now - t, 1), round(s, 4), d])
    return out


class StationSink:
    """Feeds :class:`StationState` from the decision stream (its own worker thread; O(1) per part)."""

    name = "station"
    needs_images = True  # the live picture is drawn from the latest frame, when a browser asks

    def __init__(self, state: StationState):
        self.state = state

    def emit(self, d: Decision) -> None:
        self.state.observe(d)

    def close(self) -> None:
        pass
