"""Structured log lines (logfmt) on stderr, for journald and for people.

    ts=2025-01-31T10:02:03.123Z level=warning logger=edge.sources.camera msg="camera lost" source=camera:0

Use :func:`log_event` to attach fields, and :class:`Throttle` for things that can happen on
every frame (drops, sink errors) so they are reported with counts, not a line per frame.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
import threading
import time
from typing import Any

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def _quote(v: Any) -> str:
    s = v if isinstance(v, str) else (f"{v:.6g}" if isinstance(v, float) else str(v))
    if s == "" or any(c in s for c in ' "=\n\t'):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return s


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        parts = [f"ts={ts}", f"level={record.levelname.lower()}", f"logger={record.name}",
                 f"msg={_quote(record.getMessage())}"]
        for k, v in (getattr(record, "fields", None) or {}).items():
            parts.append(f"{k}={_quote(v)}")
        if record.exc_info:
            parts.append(f"exc={_quote(self.formatException(record.exc_info))}")
        return " ".join(parts)


def setup_logging(level: str = "info", stream=None) -> None:
    """Send ``edge.*`` loggers to stderr as logfmt lines (idempotent)."""
    root = logging.getLogger("edge")
    root.setLevel(_LEVELS.get(level, logging.INFO))
    for h in list(root.handlers):
        if getattr(h, "_edge_logfmt", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(LogfmtFormatter())
    handler._edge_logfmt = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.propagate = False


def log_event(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    logger.log(level, msg, extra={"fields": fields})


class Throttle:
    """Allows one report per key per ``interval_s``; counts what it held back in between."""

    def __init__(self, interval_s: float = 10.0, clock=time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> int | None:
        """None: stay quiet. Otherwise report now; the value is how many were held back since last time."""
        now = self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval_s:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)
