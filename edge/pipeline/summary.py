"""What a run did: frames, decisions, drops, per-stage latency and throughput, and the budget."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runtime import LineRuntime

STAGES = ("capture", "preprocess", "infer", "score", "decide")


@dataclass(frozen=True)
class RunSummary:
    captured: int
    decided: int
    decisions: dict[str, int]
    frames_dropped: int
    sink_dropped: dict[str, int]
    images_saved: int
    images_skipped: int
    decisions_lost: int
    late_rejects: int
    latency_ms: dict[str, dict]
    budget_ms: float
    budget_metric: str
    uptime_s: float

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        d = self.decisions
        out = [f"{self.captured} frames captured, {self.decided} decided: {d.get('OK', 0)} OK, {d.get('NG', 0)} NG, "
               f"{d.get('ERROR', 0)} ERROR in {self.uptime_s:.1f} s"]
        if self.frames_dropped:
            out.append(f"  {self.frames_dropped} frames dropped by the latest-frame policy")
        for sink, n in self.sink_dropped.items():
            if n:
                out.append(f"  sink {sink}: {n} decisions not delivered (queue full or timed out)")
        if self.decisions_lost:
            out.append(f"  !! {self.decisions_lost} decisions could not be written to the log (see the log lines)")
        if self.late_rejects:
            out.append(f"  !! {self.late_rejects} reject pulses were late")
        out.append("  stage         samples  frames/s   p50 ms   p99 ms   (a sample is one batch)")
        for name, s in self.latency_ms.items():
            out.append(f"  {name:<20}{s['count']:>6} {s['per_s']:>9.1f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f}")
        b = self.latency_ms.get(self.budget_metric)
        if b:
            verdict = "within" if b["p99_ms"] <= self.budget_ms else "OVER"
            out.append(f"  {self.budget_metric}: p50 {b['p50_ms']:.1f} ms, p99 {b['p99_ms']:.1f} ms against a "
                       f"{self.budget_ms:g} ms budget: p99 {verdict} budget; {b['over_budget']} of {b['count']} "
                       f"frames over")
        return out


def summarize(rt: "LineRuntime") -> RunSummary:
    t = rt.telemetry
    snap = t.snapshot()
    names = [n for n in STAGES if t.latency(n)] + sorted(n for n in t.latency_names() if n.startswith("sink_")) \
        + [n for n in ("trigger_to_decision", "trigger_to_gpio") if t.latency(n)]
    sinks = {k.split('"')[1]: int(v) for k, v in snap["counters"].items() if k.startswith("sink_dropped{")}
    metric = "trigger_to_gpio" if t.latency("trigger_to_gpio") else "trigger_to_decision"
    return RunSummary(
        captured=rt.pipeline.captured, decided=rt.pipeline.decided,
        decisions={k: int(t.count("decisions", decision=k)) for k in ("OK", "NG", "ERROR")},
        frames_dropped=int(t.count("frames_dropped")), sink_dropped=sinks,
        images_saved=int(t.count("images_saved")), images_skipped=int(t.count("images_skipped")),
        decisions_lost=int(t.count("decisions_lost")), late_rejects=int(t.count("gpio_late_rejects")),
        latency_ms={n: t.latency(n) for n in names}, budget_ms=rt.cfg.pipeline.latency_budget_ms,
        budget_metric=metric, uptime_s=snap["uptime_s"])
