"""Simulated GPIO: every output change and input edge is a JSON line with monotonic and wall time.

    {"t": 12345.678901, "wall": "2025-01-31T10:02:03.123+00:00", "line": "reject", "pin": 27, "active": true,
     "level": 1}
    {"t": 12345.600000, "wall": "…", "line": "trigger", "pin": 4, "edge": "rising"}

``t`` is ``time.monotonic()``, the clock trigger timestamps use, so pulse delays and widths can
be checked from the file. Lines are written and flushed as they happen.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Callable

from ..records import utc_now
from . import Setter


class SimGpio:
    def __init__(self, log_path: Path, clock=time.monotonic):
        self.path = Path(log_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.clock = clock
        self._f = open(self.path, "a", buffering=1)
        self._lock = threading.Lock()
        self._state: dict[str, bool] = {}
        self._watchers: dict[str, tuple[int | str, Callable[[float], None]]] = {}

    def _write(self, entry: dict) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.write(json.dumps(entry, separators=(",", ":")) + "\n")

    def output(self, name: str, line: int | str, active_high: bool) -> Setter:
        def set_line(active: bool, _init: bool = False) -> None:
            with self._lock:
                changed = _init or self._state.get(name) != active
                self._state[name] = active
            if changed:
                self._write({"t": round(self.clock(), 6), "wall": utc_now(), "line": name, "pin": line,
                             "active": active, "level": int(active == active_high)} | ({"init": True} if _init else {}))

        set_line(False, _init=True)
        return set_line

    def watch(self, name: str, line: int | str, edge: str, debounce_ms: float,
              on_edge: Callable[[float], None]) -> None:
        self._watchers[name] = (line, on_edge)

    def edge(self, name: str, t: float | None = None) -> None:
        """Simulate an input edge on a watched line (a part passing the light barrier)."""
        line, cb = self._watchers[name]
        t = self.clock() if t is None else t
        self._write({"t": round(t, 6), "wall": utc_now(), "line": name, "pin": line, "edge": "rising"})
        cb(t)

    def state(self, name: str) -> bool | None:
        with self._lock:
            return self._state.get(name)

    def close(self) -> None:
        with self._lock:
            self._f.close()


class SimTriggerClock:
    """Fires a simulated trigger edge every ``interval_ms`` (a conveyor for dry runs)."""

    def __init__(self, chip: SimGpio, name: str, interval_ms: float):
        self.chip = chip
        self.name = name
        self.interval_s = interval_ms / 1000.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-trigger", daemon=True)

    def start(self) -> "SimTriggerClock":
        self._thread.start()
        return self

    def _run(self) -> None:
        next_t = time.monotonic() + self.interval_s
        while not self._stop.wait(max(0.0, next_t - time.monotonic())):
            self.chip.edge(self.name)
            next_t += self.interval_s

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
