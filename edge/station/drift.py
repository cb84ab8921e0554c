"""Drift: are the OK parts of the last while scoring like the good parts `fit` saw?

The reference is the good-score distribution in calibration.json (``good_scores.values``: held-out
good images scored with statistics that never saw them). The live side is the raw scores of the
last ``window`` parts decided OK. The measure is the **shift**: how far the recent median has moved
from the reference median, in units of the reference's robust spread ((q84 − q16) / 2).

    steady   shift < warn_shift (or fewer than min_parts OK parts seen yet: "learning")
    warning  warn_shift ≤ shift < alarm_shift
    alarm    shift ≥ alarm_shift

Downward shifts count at twice those distances: the held-out reference was scored with statistics
fitted on fewer images, so live good parts of a steady line score a little *lower* than it.

A state is entered only after it holds for ``hold`` parts in a row, and a warning clears only
once the shift falls below ``0.7 × warn_shift`` (hysteresis), so one odd part never flips it. With
the defaults (window 200, warn 1.5, alarm 3) the median of 200 parts of a steady line moves by
about 0.1 spread, so a warning means the scores really moved (lighting, lens, a new batch).
Only OK parts count: NG parts are rejected by the threshold, and a shift shows in the OK ones first.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

import numpy as np

STATES = ("learning", "steady", "warning", "alarm")
RELEASE = 0.7  # a warning or an alarm clears below this share of warn_shift


@dataclass(frozen=True)
class DriftStatus:
    state: str
    shift: float | None  # in reference spreads; None while learning
    recent_median: float | None
    reference_median: float
    reference_spread: float
    n_recent: int
    n_reference: int

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


class DriftMonitor:
    def __init__(self, reference: np.ndarray, window: int = 200, min_parts: int = 50, warn_shift: float = 1.5,
                 alarm_shift: float = 3.0, hold: int = 20):
        ref = np.asarray(reference, float)
        self.ref_median = float(np.median(ref))
        q16, q84 = np.quantile(ref, [0.16, 0.84])
        # a reference of near-identical scores must not make every wiggle a drift
        self.ref_spread = float(max((q84 - q16) / 2, 0.02 * abs(self.ref_median), 1e-9))
        self.n_ref = int(ref.size)
        self.min_parts = min(min_parts, window)
        self.warn, self.alarm, self.hold = warn_shift, alarm_shift, hold
        self._recent: deque[float] = deque(maxlen=window)
        self._lock = threading.Lock()
        self._state = "learning"
        self._pending: tuple[str, int] | None = None
        self._shift: float | None = None

    def _target(self, shift: float) -> str:
        a = shift if shift >= 0 else -shift / 2
        if a >= self.alarm:
            return "alarm"
        if a >= self.warn:
            return "warning"
        if self._state in ("warning", "alarm") and a >= RELEASE * self.warn:
            return "warning"  # hysteresis: stays warned until clearly back
        return "steady"

    def observe(self, raw_score: float) -> str | None:
        """Add one OK part's raw score. Returns the new state when it changed, else None."""
        with self._lock:
            self._recent.append(float(raw_score))
            if len(self._recent) < self.min_parts:
                return None
            self._shift = (float(np.median(np.fromiter(self._recent, float))) - self.ref_median) / self.ref_spread
            target = self._target(self._shift)
            if self._state == "learning":
                self._state = "steady"
                if target == "steady":
                    return "steady"
            if target == self._state:
                self._pending = None
                return None
            n = self._pending[1] + 1 if self._pending and self._pending[0] == target else 1
            self._pending = (target, n)
            if n < self.hold:
                return None
            self._state, self._pending = target, None
            return target

    def status(self) -> DriftStatus:
        with self._lock:
            med = float(np.median(np.fromiter(self._recent, float))) if self._recent else None
            return DriftStatus(self._state, self._shift if self._state != "learning" else None, med,
                               self.ref_median, self.ref_spread, len(self._recent), self.n_ref)
