"""The running pipeline: capture → [frame queue] → preprocess → infer → score + decide → sinks.

One thread per stage, bounded queues between them, a sentinel to shut down in order. A
per-frame failure (unreadable file, a backend error on one batch) becomes ERROR records and the
run goes on; a failure of the machinery itself is kept and raised by :meth:`Pipeline.join` in
the main thread, never left to hang a worker. Every frame taken from the source gets exactly one
decision: stopping closes the source, and what was captured drains through to the sinks.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from typing import Callable

import numpy as np

from ..artifacts import error_record, inspection_record
from ..config.sections import CaptureSection
from ..errors import PipelineError
from ..log_format import Throttle, log_event
from ..sinks import Decision
from ..sources import Source
from ..telemetry import Telemetry
from .frame_queue import FrameQueue
from .model_stages import Batch, StageSlot, infer, preprocess, score

log = logging.getLogger("edge.pipeline")
_STOP = object()


class Pipeline:
    def __init__(self, source: Source, slot: StageSlot, dispatch: Callable[[Decision], None],
                 telemetry: Telemetry, capture: CaptureSection, max_frames: int | None = None,
                 gpio_measures_latency: bool = False, fault_after: int = 3,
                 on_model_state: Callable[[bool, str], None] | None = None):
        """``fault_after`` batches in a row whose inference or scoring fails put the station in its safe
        state: ``on_model_state(False, why)`` (health → READY low); the next good batch ends it."""
        self.source = source
        self.slot = slot
        self.dispatch = dispatch
        self.telemetry = telemetry
        self.batch_size = capture.batch_size
        self.max_frames = max_frames
        self.budget_on_decision = not gpio_measures_latency
        self.frames = FrameQueue(capture.queue_size, capture.drop_policy, telemetry)
        self._to_infer: queue.Queue = queue.Queue(maxsize=2)
        self._to_score: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self.finished = threading.Event()
        self.captured = 0
        self.decided = 0
        self.error: tuple[str, BaseException] | None = None
        self._throttle = Throttle(10.0)
        self.fault_after = max(1, fault_after)
        self.on_model_state = on_model_state
        self._failed_batches: set[int] = set()  # id() of batches whose infer failed, until scored
        self._failures_in_a_row = 0
        self.safe_state = False
        self._threads = [threading.Thread(target=self._guard, args=(name, fn), name=name, daemon=True)
                         for name, fn in (("capture", self._capture), ("preprocess", self._preprocess),
                                          ("infer", self._infer), ("score", self._score))]

    # --- control ------------------------------------------------------------------------------
    def start(self) -> "Pipeline":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop taking frames; what was captured still goes through. Safe from any thread."""
        self._stop.set()
        self.source.close()

    def join(self, timeout: float | None = None) -> None:
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in self._threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self.error is not None:
            stage, exc = self.error
            raise PipelineError(f"pipeline stage {stage} failed: {type(exc).__name__}: {exc}")

    def _guard(self, name: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as e:  # reaches the main thread through join(); never hangs silently
            self.error = self.error or (name, e)
            log_event(log, logging.CRITICAL, "pipeline stage crashed", stage=name, error=f"{type(e).__name__}: {e}")
            self.stop()
            self.frames.close()  # unblock a capture waiting on a full queue
            self._drain_after_crash(name)
        finally:
            if name == "capture":
                self.frames.close()
            elif name == "preprocess":
                self._to_infer.put(_STOP)
            elif name == "infer":
                self._to_score.put(_STOP)
            elif name == "score":
                self.finished.set()

    def _drain_after_crash(self, name: str) -> None:
        """Keep consuming this stage's input so the stages before it can finish and join() returns."""
        lost = 0
        if name == "preprocess":
            while (frames := self.frames.get_batch(64)) is not None:
                lost += len(frames)
        elif name in ("infer", "score"):
            q = self._to_infer if name == "infer" else self._to_score
            while (b := q.get()) is not _STOP:
                lost += len(b.frames)
        if lost:
            self.telemetry.inc("frames_lost_in_crash", lost)
            log_event(log, logging.CRITICAL, "frames lost because a pipeline stage crashed", stage=name, frames=lost)

    # --- stages -------------------------------------------------------------------------------
    def _capture(self) -> None:
        it = iter(self.source)
        try:
            while True:  # until the source ends; stop() closes it, and what it still yields is decided
                f = next(it, None)
                if f is None:
                    break
                f = dataclasses.replace(f, seq=self.captured)
                self.captured += 1
                self.telemetry.inc("frames_captured")
                # trigger → image in hand; 0 for free-running frames (their per_s is the frame rate)
                self.telemetry.observe("capture", max(0.0, f.t_capture - f.t_trigger) * 1000)
                self.frames.put(f)
                if self.max_frames and self.captured >= self.max_frames:
                    break
        finally:
            close = getattr(it, "close", None)
            if close:
                close()
            self.source.close()

    def _run_stage(self, name: str, fn: Callable[[Batch], None], b: Batch) -> str | None:
        """Run one stage on a batch; returns why it failed (its frames then become ERROR), or None."""
        t0 = time.perf_counter()
        why = None
        try:
            fn(b)
        except Exception as e:  # this batch's frames become ERROR records; the run goes on
            why = f"{name} failed: {type(e).__name__}: {e}"
            self.telemetry.inc("stage_errors", stage=name)
            held = self._throttle.check(name)
            if held is not None:
                log_event(log, logging.ERROR, f"{name} failed; frames of this batch are ERROR", stage=name,
                          error=f"{type(e).__name__}: {e}", since_last_report=held)
            b.fail_pending(why)
        ms = (time.perf_counter() - t0) * 1000
        n = len(b.rows) or len(b.frames)
        b.stage_ms[name] = ms / max(1, n)
        self.telemetry.observe(name, ms, items=n)
        return why

    def _model_outcome(self, why: str | None) -> None:
        """Count batches in a row whose model stages failed; enter or leave the safe state."""
        if why is None:
            self._failures_in_a_row = 0
            if self.safe_state:
                self.safe_state = False
                self.telemetry.gauge("safe_state", 0)
                log_event(log, logging.WARNING, "inference works again; leaving the safe state")
                if self.on_model_state:
                    self.on_model_state(True, "")
            return
        self._failures_in_a_row += 1
        if not self.safe_state and self._failures_in_a_row >= self.fault_after:
            self.safe_state = True
            self.telemetry.gauge("safe_state", 1)
            self.telemetry.inc("safe_state_entered")
            reason = f"{self._failures_in_a_row} batches in a row failed ({why}); every frame is an ERROR decision"
            log_event(log, logging.CRITICAL, "inference keeps failing: safe state (READY off)", reason=why,
                      batches=self._failures_in_a_row)
            if self.on_model_state:
                self.on_model_state(False, reason)

    def _preprocess(self) -> None:
        while True:
            frames = self.frames.get_batch(self.batch_size)
            if frames is None:
                return
            b = Batch(frames, self.slot.current, t_start=time.monotonic())
            self._run_stage("preprocess", preprocess, b)
            self._to_infer.put(b)

    def _infer(self) -> None:
        while (b := self._to_infer.get()) is not _STOP:
            if self._run_stage("infer", _infer_isolating, b) is not None:
                self._failed_batches.add(id(b))
            self._to_score.put(b)

    def _score(self) -> None:
        while (b := self._to_score.get()) is not _STOP:
            why = self._run_stage("score", score, b)
            if id(b) in self._failed_batches:
                self._failed_batches.discard(id(b))
                why = why or next((r for r in b.results if isinstance(r, str)), "infer failed")
            self._model_outcome(why)
            t0 = time.perf_counter()
            decisions = [self._decide(b, i) for i in range(len(b.frames))]
            self.telemetry.observe("decide", (time.perf_counter() - t0) * 1000, items=len(decisions))
            for d in decisions:
                self.dispatch(d)
            self.decided += len(decisions)

    def _decide(self, b: Batch, i: int) -> Decision:
        f, res, stage = b.frames[i], b.results[i], b.stage
        now = time.monotonic()
        timings = {k: round(v, 3) for k, v in b.stage_ms.items()}
        timings["trigger_to_decision"] = round((now - f.t_trigger) * 1000, 3)
        self.telemetry.observe("trigger_to_decision", timings["trigger_to_decision"], budgeted=self.budget_on_decision)
        if isinstance(res, str) or res is None:
            rec = error_record(f.id, res or "no result", stage.id, timings_ms=timings, timestamp=f.wall)
            res = None
        else:
            rec = inspection_record(f.id, res, stage.id, timings_ms=timings, timestamp=f.wall)
        self.telemetry.inc("decisions", decision=rec.decision)
        return Decision(rec, f.t_trigger, now, f.required, f if f.image is not None else None, res,
                        stage.threshold)


def _infer_isolating(b: Batch) -> None:
    """Infer the batch; if that fails, infer its frames one at a time, so that a frame the backend
    cannot take fails alone (an ERROR record) and the others are still decided. Raises only when
    every frame failed (then the batch counts towards the safe state)."""
    try:
        infer(b)
        return
    except Exception:
        if b.tensor is None or len(b.rows) < 2:
            raise
    per = b.tensor.shape[0] // len(b.rows)  # rows per frame (tiles)
    feats, kept, last = [], [], None
    for k, i in enumerate(b.rows):
        one = Batch([b.frames[i]], b.stage, rows=[0], tensor=b.tensor[k * per:(k + 1) * per])
        try:
            infer(one)
        except Exception as e:
            last = e
            b.results[i] = f"infer failed: {type(e).__name__}: {e}"
            continue
        feats.append(one.features)
        kept.append(i)
    if not kept:
        raise last
    b.rows, b.tensor = kept, None
    b.features = {name: np.concatenate([f[name] for f in feats]) for name in feats[0]}
