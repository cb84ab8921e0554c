"""Retention of saved images: by age, and by a free-space floor. Decision logs are never touched
by the floor (only by ``keep_logs_days``, if set), so a full disk costs images, not decisions.

Images live in hour folders, ``images/YYYY-MM-DD/HH/``, so the oldest go first in whole folders.
Folders and files that do not look like ours are never deleted.
"""

from __future__ import annotations

import datetime as _dt
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Callable

from ..config.sections import RetentionSection
from ..log_format import Throttle, log_event
from ..telemetry import Telemetry

log = logging.getLogger("edge.sinks.retention")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOUR = re.compile(r"^\d{2}$")
_DAILY_LOG = re.compile(r"-(\d{4}-\d{2}-\d{2})\.jsonl$")


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


class Retention:
    def __init__(self, root: Path, cfg: RetentionSection, telemetry: Telemetry,
                 free_bytes: Callable[[Path], int] = disk_free_bytes, clock=time.time):
        self.root = Path(root)
        self.images = self.root / "images"
        self.cfg = cfg
        self.telemetry = telemetry
        self.free_bytes = free_bytes
        self.clock = clock
        self._last_run = float("-inf")
        self._throttle = Throttle(60.0)

    def hour_dirs(self) -> list[tuple[_dt.datetime, Path]]:
        """Image hour folders, oldest first."""
        out = []
        if not self.images.is_dir():
            return out
        for day in self.images.iterdir():
            if not (day.is_dir() and _DAY.match(day.name)):
                continue
            for hour in day.iterdir():
                if hour.is_dir() and _HOUR.match(hour.name):
                    start = _dt.datetime.strptime(f"{day.name} {hour.name}", "%Y-%m-%d %H").replace(
                        tzinfo=_dt.timezone.utc)
                    out.append((start, hour))
        return sorted(out)

    def below_floor(self) -> bool:
        return self.free_bytes(self.root) < self.cfg.min_free_mb * 1e6

    def maybe_run(self) -> None:
        now = time.monotonic()
        if now - self._last_run >= self.cfg.check_interval_s:
            self._last_run = now
            self.run()

    def run(self) -> None:
        self.delete_by_age()
        self.ensure_floor()

    def delete_by_age(self) -> None:
        now = _dt.datetime.fromtimestamp(self.clock(), _dt.timezone.utc)
        if self.cfg.max_age_days:
            cutoff = now - _dt.timedelta(days=self.cfg.max_age_days)
            for start, d in self.hour_dirs():
                if start + _dt.timedelta(hours=1) <= cutoff:
                    self._remove_dir(d, "age")
        if self.cfg.keep_logs_days:
            cutoff_day = (now - _dt.timedelta(days=self.cfg.keep_logs_days)).date()
            for p in self.root.glob("*.jsonl"):
                m = _DAILY_LOG.search(p.name)
                if m and _dt.date.fromisoformat(m.group(1)) < cutoff_day:
                    p.unlink(missing_ok=True)
                    log_event(log, logging.INFO, "old decision log deleted", path=str(p))

    def ensure_floor(self) -> bool:
        """Delete oldest images until free space is above the floor. False if it could not get there."""
        while self.below_floor():
            if not self.delete_oldest():
                held = self._throttle.check("floor")
                if held is not None:
                    log_event(log, logging.ERROR, "free space below the floor and no images left to delete; "
                              "new images are not saved, decisions are still written",
                              root=str(self.root), free_mb=round(self.free_bytes(self.root) / 1e6, 1),
                              floor_mb=self.cfg.min_free_mb)
                return False
        return True

    def delete_oldest(self) -> bool:
        """Delete the oldest hour folder; within the newest one, the oldest few files. False if none."""
        dirs = self.hour_dirs()
        if not dirs:
            return False
        if len(dirs) > 1:
            self._remove_dir(dirs[0][1], "space")
            return True
        files = sorted((p for p in dirs[0][1].iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime_ns)
        if not files:
            return False  # the folder being written now stays
        for p in files[:max(1, len(files) // 10)]:
            size = p.stat().st_size
            p.unlink(missing_ok=True)
            self.telemetry.inc("images_deleted", reason="space")
            self.telemetry.inc("images_deleted_bytes", size, reason="space")
        return True

    def _remove_dir(self, d: Path, reason: str) -> None:
        files = [p for p in d.iterdir() if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        shutil.rmtree(d, ignore_errors=True)
        try:
            d.parent.rmdir()  # the day folder, once empty
        except OSError:
            pass
        self.telemetry.inc("images_deleted", len(files), reason=reason)
        self.telemetry.inc("images_deleted_bytes", size, reason=reason)
        log_event(log, logging.INFO, "images deleted", reason=reason, folder=str(d), files=len(files),
                  mb=round(size / 1e6, 2))
