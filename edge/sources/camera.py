"""Cameras, video files, RTSP and GStreamer pipelines through ``cv2.VideoCapture``.

A live camera that stops giving frames is released and reopened with exponential backoff;
``on_state(False, reason)`` is called when it is lost and ``on_state(True, "")`` when it is back,
so the runtime can show NOT-READY on a GPIO line and in /health.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Callable, Iterator, Protocol

import numpy as np

from ..config.sections import SourceSection
from ..errors import SourceError
from ..log_format import log_event
from .frame import Frame
from ..config.source_uri import SourceSpec

log = logging.getLogger("edge.sources.camera")


class Capture(Protocol):
    """The part of ``cv2.VideoCapture`` used here (tests pass a fake)."""

    def read(self) -> tuple[bool, np.ndarray | None]: ...

    def release(self) -> None: ...


def _has_gstreamer(cv2) -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def _quiet_opencv(cv2) -> None:
    """OpenCV's own warnings ("can't open camera by index") would interleave with our log lines."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


def open_capture(spec: SourceSpec, cfg: SourceSection) -> Capture:
    """Open a VideoCapture or raise :class:`SourceError` saying why and what to check."""
    import cv2

    _quiet_opencv(cv2)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout_s * 1000),
              cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout_s * 1000)]
    if spec.kind == "camera":
        idx = int(spec.target)
        dev = f"/dev/video{idx}"
        if sys.platform.startswith("linux") and not os.path.exists(dev):
            raise SourceError(f"camera {idx}: {dev} does not exist (no camera on that index)",
                              hint=f"list cameras with `v4l2-ctl --list-devices`; in Docker add --device {dev}")
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = cv2.VideoCapture(idx, api, params)
        what = f"camera {idx} ({dev})"
    elif spec.kind == "gst":
        if not _has_gstreamer(cv2):
            raise SourceError("this OpenCV build has no GStreamer support, so gst: sources cannot open",
                              hint="on Jetson use JetPack's OpenCV (apt python3-opencv; see Dockerfile.jetson), "
                                   "not the opencv-python wheel")
        if "appsink" not in spec.target:
            raise SourceError("a gst: pipeline must end in appsink",
                              hint="e.g. nvarguscamerasrc ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! "
                                   "video/x-raw,format=BGR ! appsink drop=1 max-buffers=1")
        cap = cv2.VideoCapture(spec.target, cv2.CAP_GSTREAMER)
        what = "GStreamer pipeline"
    elif spec.kind == "rtsp":
        cap = cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, params)
        what = f"stream {spec.target}"
    elif spec.kind == "file":
        if not os.path.isfile(spec.target):
            raise SourceError(f"video file {spec.target} does not exist")
        cap = cv2.VideoCapture(spec.target, cv2.CAP_ANY, params)
        what = f"video file {spec.target}"
    else:
        raise SourceError(f"{spec.kind} is not a VideoCapture source")
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {what}",
                          hint="is it connected, powered and not in use by another program?")
    if spec.kind == "camera":
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, cfg.width), (cv2.CAP_PROP_FRAME_HEIGHT, cfg.height),
                            (cv2.CAP_PROP_FPS, cfg.fps)):
            if value:
                cap.set(prop, value)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fresh frames: a trigger must not get a stale buffered one
    return cap


def as_bgr8(img: np.ndarray) -> np.ndarray:
    """Cameras give gray, 16-bit or BGRA frames too; the pipeline wants 8-bit BGR."""
    import cv2

    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return img


class CameraSource:
    """Frames from a VideoCapture; reconnects a lost live source with exponential backoff."""

    def __init__(self, spec: SourceSpec, cfg: SourceSection, on_state: Callable[[bool, str], None] | None = None,
                 opener: Callable[[SourceSpec, SourceSection], Capture] | None = None, clock=time.monotonic):
        self.spec = spec
        self.cfg = cfg
        self.live = spec.live
        self.on_state = on_state or (lambda ok, why: None)
        self._opener = opener
        self.clock = clock
        self.name = {"camera": f"cam{spec.target}", "rtsp": "rtsp", "gst": "gst"}.get(
            spec.kind, os.path.splitext(os.path.basename(spec.target))[0] or "video")
        self.reconnects = 0
        self._cap: Capture | None = None
        self._stop = threading.Event()

    def opener(self, spec: SourceSpec, cfg: SourceSection) -> Capture:
        return (self._opener or open_capture)(spec, cfg)

    def open(self) -> None:
        """Open now, raising :class:`SourceError` (``run`` fails fast on a missing camera)."""
        self._cap = self.opener(self.spec, self.cfg)
        self.on_state(True, "")

    def _reconnect(self) -> bool:
        """Try until open or closed; False when closed first."""
        delay = self.cfg.reconnect_initial_s
        while not self._stop.is_set():
            try:
                self._cap = self.opener(self.spec, self.cfg)
            except SourceError as e:
                log_event(log, logging.WARNING, "camera not available", source=str(self.spec), error=e.message,
                          retry_in_s=round(delay, 3))
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, self.cfg.reconnect_max_s)
                continue
            self.reconnects += 1
            log_event(log, logging.INFO, "camera connected", source=str(self.spec))
            self.on_state(True, "")
            return True
        return False

    def _lost(self, why: str) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        log_event(log, logging.WARNING, "camera lost", source=str(self.spec), reason=why)
        self.on_state(False, f"{self.spec}: {why}")

    def __iter__(self) -> Iterator[Frame]:
        try:
            yield from self._frames()
        finally:
            if self._cap is not None:
                self._cap.release()
                self._cap = None

    def _frames(self) -> Iterator[Frame]:
        seq = 0
        while not self._stop.is_set():
            if self._cap is None:
                if not self.live and seq and not self.cfg.loop:
                    break
                if not self._reconnect():
                    break
            ok, img = self._cap.read()
            t = self.clock()
            if not ok or img is None or img.size == 0:
                if not self.live:  # end of a video file
                    self._cap.release()
                    self._cap = None
                    if not self.cfg.loop:
                        break
                    continue
                if not self._stop.is_set():
                    self._lost("no frame within the read timeout")
                continue
            yield Frame(seq, f"{self.name}-{seq:06d}", as_bgr8(img), t, t)
            seq += 1

    def close(self) -> None:
        """Stop iterating (from any thread); the capture is released by the iterating thread."""
        self._stop.set()
