"""Counters, gauges and latency percentiles for the line runtime, and their Prometheus text form.

Thread-safe; every stage and sink writes here. Latencies keep the last ``window`` samples per
name (percentiles over a recent window, like a Prometheus summary), plus an all-time count and sum.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class LatencyStats:
    def __init__(self, window: int = 10000):
        self.samples: deque[float] = deque(maxlen=window)
        self.items = 0
        self.count = 0
        self.total_ms = 0.0
        self.over_budget = 0

    def observe(self, ms: float, budget_ms: float | None = None, items: int = 1) -> None:
        self.samples.append(ms)
        self.items += items
        self.count += 1
        self.total_ms += ms
        if budget_ms is not None and ms > budget_ms:
            self.over_budget += 1

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(np.fromiter(self.samples, float), q)) if self.samples else None


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class Telemetry:
    def __init__(self, budget_ms: float | None = None, clock=time.monotonic):
        self.budget_ms = budget_ms
        self.clock = clock
        self.started = clock()
        self._lock = threading.Lock()
        self._counters: dict[tuple[str, tuple], float] = {}
        self._gauges: dict[tuple[str, tuple], float] = {}
        self._latency: dict[str, LatencyStats] = {}

    def inc(self, name: str, n: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._counters[key] = self._counters.get(key, 0) + n

    def gauge(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self._gauges[(name, tuple(sorted(labels.items())))] = value

    def observe(self, name: str, ms: float, budgeted: bool = False, items: int = 1) -> None:
        """One latency sample; ``items`` is how many frames it covered (a batch), for throughput."""
        with self._lock:
            stats = self._latency.setdefault(name, LatencyStats())
            stats.observe(ms, self.budget_ms if budgeted else None, items)

    def count(self, name: str, **labels: str) -> float:
        with self._lock:
            if labels:
                return self._counters.get((name, tuple(sorted(labels.items()))), 0)
            return sum(v for (n, _), v in self._counters.items() if n == name)

    def latency(self, name: str) -> dict | None:
        """{count, items, p50_ms, p99_ms, mean_ms, per_s (items), over_budget}; None if nothing was observed."""
        with self._lock:
            s = self._latency.get(name)
            if s is None or not s.count:
                return None
            elapsed = max(1e-9, self.clock() - self.started)
            return {"count": s.count, "items": s.items, "p50_ms": s.percentile(50), "p99_ms": s.percentile(99),
                    "mean_ms": s.total_ms / s.count, "per_s": s.items / elapsed, "over_budget": s.over_budget}

    def latency_names(self) -> list[str]:
        with self._lock:
            return list(self._latency)

    def snapshot(self) -> dict:
        with self._lock:
            counters = {n + _labels(dict(lab)): v for (n, lab), v in self._counters.items()}
            gauges = {n + _labels(dict(lab)): v for (n, lab), v in self._gauges.items()}
        return {"uptime_s": self.clock() - self.started, "counters": counters, "gauges": gauges,
                "latency_ms": {n: self.latency(n) for n in self.latency_names()},
                "budget_ms": self.budget_ms}

    def prometheus(self, prefix: str = "edge_inspect") -> str:
        """Prometheus text exposition format (version 0.0.4)."""
        lines = [f"# TYPE {prefix}_uptime_seconds gauge", f"{prefix}_uptime_seconds {self.clock() - self.started:.3f}"]
        with self._lock:
            counters = sorted(self._counters.items())
            gauges = sorted(self._gauges.items())
        seen = set()
        for (name, labels), v in counters:
            if name not in seen:
                lines.append(f"# TYPE {prefix}_{name}_total counter")
                seen.add(name)
            lines.append(f"{prefix}_{name}_total{_labels(dict(labels))} {v:g}")
        for (name, labels), v in gauges:
            if name not in seen:
                lines.append(f"# TYPE {prefix}_{name} gauge")
                seen.add(name)
            lines.append(f"{prefix}_{name}{_labels(dict(labels))} {v:g}")
        metric = f"{prefix}_latency_milliseconds"
        lines.append(f"# TYPE {metric} summary")
        for name in sorted(self.latency_names()):
            s = self.latency(name)
            if s is None:
                continue
            for q, key in (("0.5", "p50_ms"), ("0.99", "p99_ms")):
                lines.append(f'{metric}{{stage="{name}",quantile="{q}"}} {s[key]:.4f}')
            lines.append(f'{metric}_sum{{stage="{name}"}} {s["mean_ms"] * s["count"]:.4f}')
            lines.append(f'{metric}_count{{stage="{name}"}} {s["count"]}')
        if self.budget_ms is not None:
            lines += [f"# TYPE {prefix}_latency_budget_milliseconds gauge",
                      f"{prefix}_latency_budget_milliseconds {self.budget_ms:g}"]
        return "\n".join(lines) + "\n"
