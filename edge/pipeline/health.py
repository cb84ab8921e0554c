"""READY / NOT-READY: the station is ready when every component says so.

Components are "source" (camera connected), "inspector" (loaded) and "pipeline" (running, not
stopping). Listeners (the GPIO ready line) hear every change of the overall state.
"""

from __future__ import annotations

import threading
import time
from typing import Callable


class Health:
    def __init__(self) -> None:
        self._lock = threading.RLock()  # listeners run under it, so they see changes in order
        self._parts: dict[str, tuple[bool, str, float]] = {}
        self._listeners: list[Callable[[bool], None]] = []
        self._ready = False

    def on_change(self, fn: Callable[[bool], None]) -> None:
        with self._lock:
            self._listeners.append(fn)
            fn(self._ready)

    def set(self, part: str, ok: bool, reason: str = "") -> None:
        with self._lock:
            self._parts[part] = (ok, reason, time.time())
            ready = bool(self._parts) and all(v[0] for v in self._parts.values())
            changed = ready != self._ready
            self._ready = ready
            if changed:
                for fn in self._listeners:
                    fn(ready)

    @property
    def ready(self) -> bool:
        with self._lock:
            return self._ready

    def snapshot(self) -> dict:
        with self._lock:
            parts = {k: {"ok": ok, **({"reason": why} if why else {}), "since": since}
                     for k, (ok, why, since) in self._parts.items()}
            return {"status": "ready" if self._ready else "not-ready", "components": parts}
