"""Running a station until it is told to stop: signals, health/metrics over HTTP, systemd notify.

``serve`` is what both ``edge-inspect run`` and ``edge-inspect daemon`` call:

- SIGTERM and SIGINT stop taking frames and drain what was captured (zero lost records);
  a second SIGINT aborts at once.
- SIGHUP loads the inspector again beside the running one and swaps; frames keep flowing.
- Health and Prometheus metrics on ``http.listen`` (off, or loopback, by default).
- With Type=notify under systemd: READY=1 once frames flow, RELOADING=1/READY=1 around a reload,
  STOPPING=1 on shutdown.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from ..config import RuntimeConfig
from ..log_format import log_event
from ..netbind import read_token
from ..pipeline.runtime import LineRuntime
from ..pipeline.summary import RunSummary
from .http_server import StatusServer
from .systemd_notify import notify, reloading

log = logging.getLogger("edge.daemon")


@contextmanager
def _signals(stop: threading.Event, reload: threading.Event):
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_stop(signum, _frame):
        log_event(log, logging.INFO, "stopping: draining frames in flight", signal=signal.Signals(signum).name)
        stop.set()
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C aborts

    def on_hup(_signum, _frame):
        reload.set()

    wanted = {signal.SIGTERM: on_stop, signal.SIGINT: on_stop, signal.SIGHUP: on_hup}
    old = {s: signal.signal(s, h) for s, h in wanted.items()}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _health(rt: LineRuntime) -> dict:
    p = rt.pipeline
    sinks = rt.sink_status()
    return {"station": rt.cfg.station, **rt.health.snapshot(), "inspector": rt.slot.current.id,
            "frames_captured": p.captured, "frames_decided": p.decided,
            "uptime_s": round(rt.telemetry.clock() - rt.telemetry.started, 3),
            "sinks": sinks, "degraded": sorted(k for k, v in sinks.items() if not v["ok"])}


def _metrics(rt: LineRuntime) -> str:
    rt.sink_status()  # refreshes the sink_healthy / sink_busy_seconds gauges
    return rt.telemetry.prometheus()


def _write_summary(path: Path, summary: RunSummary) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(summary.to_dict(), indent=2))
    os.replace(tmp, path)


def serve(cfg: RuntimeConfig, *, max_frames: int | None = None, wait_for_camera: bool = False,
          heartbeat_s: float = 60.0, stop_event: threading.Event | None = None,
          status_line: Callable[[str], None] | None = None, status_every_s: float = 5.0,
          on_started: Callable[[LineRuntime], None] | None = None) -> RunSummary:
    """Run the station until the source ends, ``max_frames`` are taken, or a stop signal; return the summary.

    The summary is also written to STORAGE_ROOT/run-summary.json. ``status_line`` (when attached to
    a terminal) gets a one-line status every ``status_every_s``: fps, NG rate, p99 latency, drift.
    ``on_started`` sees the running runtime (tests use it to act during a run).
    """
    stop = stop_event or threading.Event()
    reload = threading.Event()
    server = station = None
    token = read_token(cfg.http.token_file)  # a missing token file stops here, before the camera opens
    with _signals(stop, reload):
        rt = LineRuntime(cfg, max_frames=max_frames, wait_for_camera=wait_for_camera)
        try:
            if cfg.http.listen != "off":
                server = StatusServer(cfg.http.listen, lambda: _health(rt), lambda: _metrics(rt),
                                      rt.triggers.fire if rt.triggers is not None and cfg.trigger.mode == "software"
                                      else None, token=token).start()
            if cfg.station_page.listen != "off":
                from ..station import open_station_server

                station = open_station_server(rt)
                rt.station_url = station.url
            rt.start()
            notify("READY=1", f"STATUS=inspecting with {rt.slot.current.id}")
            if on_started is not None:
                on_started(rt)
            stopping = False
            next_beat = time.monotonic() + heartbeat_s
            next_status = time.monotonic() + status_every_s
            while not rt.wait(0.1):
                if status_line is not None and time.monotonic() >= next_status:
                    next_status += status_every_s
                    status_line(status_text(rt))
                if stop.is_set() and not stopping:
                    stopping = True
                    notify("STOPPING=1")
                    rt.stop()
                if reload.is_set():
                    reload.clear()
                    threading.Thread(target=_reload, args=(rt,), name="reload", daemon=True).start()
                if time.monotonic() >= next_beat:
                    next_beat += heartbeat_s
                    log_event(log, logging.INFO, "status", ready=rt.health.ready, captured=rt.pipeline.captured,
                              decided=rt.pipeline.decided, ng=int(rt.telemetry.count("decisions", decision="NG")),
                              dropped=int(rt.telemetry.count("frames_dropped")))
        finally:
            notify("STOPPING=1")
            try:
                summary = rt.shutdown()
            finally:
                if server is not None:
                    server.close()
                if station is not None:
                    station.close()
    _write_summary(rt.storage_root / "run-summary.json", summary)
    log_event(log, logging.INFO, "stopped", captured=summary.captured, decided=summary.decided,
              decisions_lost=summary.decisions_lost)
    return summary


def status_text(rt: LineRuntime) -> str:
    """fps, NG rate, p99 latency against the budget, drift state: one line for a terminal."""
    s = rt.station.snapshot()
    rate = "–" if s["ng_rate"] is None else f"{100 * s['ng_rate']:.1f}%"
    p99, budget = s["latency"]["p99_ms"], s["latency"]["budget_ms"]
    lat = "–" if p99 is None else f"{p99:.0f} ms" + (f" (budget {budget:.0f})" if budget else "")
    d = s["drift"]
    drift = "off" if d is None else d["state"] + ("" if d["shift"] is None else f" {d['shift']:+.1f}")
    c = s["counts"]
    return (f"{'READY' if s['ready'] else 'NOT-READY'}  {s['throughput_per_s']:.1f} fps  parts {s['total']} "
            f"(NG {c['NG']}, ERROR {c['ERROR']})  NG rate {rate}  p99 {lat}  drift {drift}")


def _reload(rt: LineRuntime) -> None:
    reloading()
    ok, info = rt.reload()
    notify("READY=1", f"STATUS=inspecting with {rt.slot.current.id}" + ("" if ok else f" (reload failed: {info})"))
