"""Local storage: the decision log (every decision) plus NG images, masks and overlays.

    ROOT/decisions.jsonl                     one DecisionRecord per frame, fsynced (or decisions-DATE.jsonl)
    ROOT/images/2025-01-31/10/0000042_cam0-000042.png          the frame (NG, ERROR, sampled OK)
    ROOT/images/2025-01-31/10/0000042_cam0-000042_mask.png     0/255 mask
    ROOT/images/2025-01-31/10/0000042_cam0-000042_overlay.jpg  heat map overlay (JPEG: for looking at)

A full disk must not stop inspection. Images are the first to go: retention deletes the oldest,
and while nothing older is left, new images are skipped (counted). Decisions are always written;
if even the log write fails, records wait in memory and are retried before each new one, and are
logged in full when the sink closes with them still unwritten, so journald keeps them.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import random
from collections import deque
from pathlib import Path
from typing import Callable

import numpy as np

from ..artifacts import OVERLAY_SUFFIX, clean_name, overlay_image
from ..config.sections import StorageSection
from ..imageio import write_image
from ..log_format import Throttle, log_event
from ..records import DecisionLog, DecisionRecord
from ..telemetry import Telemetry
from . import Decision
from .retention import Retention, disk_free_bytes

log = logging.getLogger("edge.sinks.storage")


def _safe(name: str) -> str:
    base = Path(name).stem if ("/" in name or "\\" in name) else name
    return clean_name(base, "frame")[:80]


class StorageSink:
    name = "storage"
    needs_images = True

    def __init__(self, cfg: StorageSection, telemetry: Telemetry, *,
                 free_bytes: Callable[[Path], int] = disk_free_bytes,
                 write_image: Callable[[Path, np.ndarray], None] = write_image,
                 open_log: Callable[[Path, bool], DecisionLog] = DecisionLog,
                 backlog_cap: int = 100_000, seed: int = 0,
                 on_stored: Callable[[DecisionRecord], None] | None = None):
        """``on_stored`` hears each record as written, with the paths of the images kept (the station page)."""
        self.cfg = cfg
        self.on_stored = on_stored
        self.root = Path(cfg.root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.telemetry = telemetry
        self.retention = Retention(self.root, cfg.retention, telemetry, free_bytes)
        self.write_image = write_image
        self.open_log = open_log
        self._log: DecisionLog | None = None
        self._log_path: Path | None = None
        self._backlog: deque[DecisionRecord] = deque()
        self._backlog_cap = backlog_cap
        self._rng = random.Random(seed)
        self._throttle = Throttle(10.0)

    # --- the decision log -------------------------------------------------------------------
    def log_path(self, timestamp: str) -> Path:
        if self.cfg.rotate == "daily":
            p = Path(self.cfg.log)
            return self.root / f"{p.stem}-{timestamp[:10]}{p.suffix or '.jsonl'}"
        return self.root / self.cfg.log

    def _append(self, rec: DecisionRecord) -> None:
        path = self.log_path(rec.timestamp)
        if path != self._log_path:
            if self._log is not None:
                self._log.close()
            self._log, self._log_path = self.open_log(path, self.cfg.fsync), path
        self._log.append(rec)

    def _write_record(self, rec: DecisionRecord) -> None:
        if len(self._backlog) >= self._backlog_cap:
            lost = self._backlog.popleft()
            self.telemetry.inc("decisions_lost")
            log_event(log, logging.CRITICAL, "decision lost: the log cannot be written and the backlog is full",
                      record=lost.to_json())
        self._backlog.append(rec)
        self._flush()

    def _flush(self) -> None:
        """Write waiting records in order; on a full disk free space once and retry."""
        freed = False
        while self._backlog:
            try:
                self._append(self._backlog[0])
            except OSError as e:
                if e.errno == errno.ENOSPC and not freed:
                    freed = True
                    self.retention.delete_oldest()
                    continue
                held = self._throttle.check("log")
                if held is not None:
                    log_event(log, logging.CRITICAL, "cannot write the decision log; decisions kept in memory "
                              "and retried", path=str(self._log_path), error=str(e), backlog=len(self._backlog))
                break
            self._backlog.popleft()
            self.telemetry.inc("decisions_logged")
        self.telemetry.gauge("decision_backlog", len(self._backlog))

    # --- images -----------------------------------------------------------------------------
    def _wanted(self, d: Decision) -> dict[str, bool]:
        dec = d.record.decision
        bad = dec != "OK"
        has_maps = d.inspection is not None
        frame_ok = d.frame is not None and d.frame.image is not None
        sample = (not bad and self.cfg.ok_sample_rate > 0 and self._rng.random() < self.cfg.ok_sample_rate)
        return {
            "frame": frame_ok and ((bad and self.cfg.save_ng_images) or sample),
            "mask": has_maps and d.inspection.mask is not None and (self.cfg.save_masks == "all" or (bad and self.cfg.save_masks == "ng")),
            "overlay": has_maps and frame_ok and (self.cfg.save_overlays == "all"
                                                  or (bad and self.cfg.save_overlays == "ng")),
        }

    def _write_one(self, path: Path, write: Callable[[], None]) -> bool:
        for attempt in (1, 2):
            try:
                write()
                self.telemetry.inc("images_saved")
                return True
            except OSError as e:
                if e.errno == errno.ENOSPC and attempt == 1 and self.retention.delete_oldest():
                    continue
                self.telemetry.inc("images_skipped", reason="write_error")
                held = self._throttle.check("image")
                if held is not None:
                    log_event(log, logging.ERROR, "image not saved", path=str(path), error=str(e),
                              since_last_report=held)
                return False
        return False

    def _save_images(self, d: Decision) -> DecisionRecord:
        wanted = {k for k, v in self._wanted(d).items() if v}
        if not wanted:
            return d.record
        if self.retention.below_floor() and not self.retention.ensure_floor():
            self.telemetry.inc("images_skipped", len(wanted), reason="low_space")
            return d.record
        ts = d.record.timestamp
        folder = self.root / "images" / ts[:10] / ts[11:13]
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{d.frame.seq:07d}_{_safe(d.record.image)}" if d.frame else _safe(d.record.image)
        res, frame = d.inspection, d.frame
        arrays = {"frame": lambda: frame.image, "mask": lambda: res.mask,
                  "overlay": lambda: overlay_image(frame.image, res, d.image_threshold)}
        suffix = {"frame": ".png", "mask": "_mask.png", "overlay": OVERLAY_SUFFIX}
        paths = {}
        for kind in ("frame", "mask", "overlay"):
            if kind in wanted:
                path = folder / f"{stem}{suffix[kind]}"
                if self._write_one(path, lambda p=path, k=kind: self.write_image(p, arrays[k]())):
                    paths[kind] = str(path)
        class_paths = {}
        if "mask" in wanted:  # supervised models: one mask per defect class, beside the union
            for name, m in res.class_masks.items():
                path = folder / f"{stem}_{_safe(name)}_mask.png"
                if self._write_one(path, lambda p=path, a=m: self.write_image(p, a)):
                    class_paths[name] = str(path)
        return dataclasses.replace(d.record, saved_image=paths.get("frame"), mask=paths.get("mask"),
                                   overlay=paths.get("overlay"), class_masks=class_paths)

    # --- Sink -------------------------------------------------------------------------------
    def emit(self, d: Decision) -> None:
        self.retention.maybe_run()
        rec = d.record
        if d.heavy:
            try:
                rec = self._save_images(d)
            except Exception as e:  # images are best effort; the decision below is not
                self.telemetry.inc("images_skipped", reason="error")
                log_event(log, logging.ERROR, "saving images failed", image=d.record.image,
                          error=f"{type(e).__name__}: {e}")
        self._write_record(rec)
        if self.on_stored is not None:
            self.on_stored(rec)

    def close(self) -> None:
        self._flush()
        for rec in self._backlog:
            self.telemetry.inc("decisions_lost")
            log_event(log, logging.CRITICAL, "decision not written to the log at shutdown", record=rec.to_json())
        self._backlog.clear()
        if self._log is not None:
            self._log.close()
            self._log = None
