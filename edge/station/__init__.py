"""The station page (live view, NG gallery, score trend, operator feedback) and drift watching.

Nothing here is on the frame path: the state is fed by a sink on its own thread and by what the
storage sink wrote, and the page is a small HTTP server that reads that state.

    state = open_station_state(runtime)        # always: drift runs without the page too
    server = open_station_server(runtime)      # when station_page.listen is set

Modules: ``state`` (what the page shows; the sink), ``drift`` (recent OK scores against fit's good
scores), ``feedback`` (mark good, missed defect, refit, undo), ``server`` (HTTP), ``page`` (HTML).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..log_format import log_event
from ..stage import held_out_good
from .drift import DriftMonitor
from .state import StationState

if TYPE_CHECKING:
    from ..pipeline.runtime import LineRuntime
    from .server import StationServer

log = logging.getLogger("edge.station")


def open_station_state(rt: "LineRuntime") -> StationState:
    cfg = rt.cfg
    def drift() -> DriftMonitor | None:
        if not cfg.drift.enabled:
            return None
        stage = rt.slot.current
        ref = held_out_good(stage, normalised=False)  # None for a supervised bundle
        if ref is None:
            log_event(log, logging.WARNING, "drift watching is off: the model has no good-score distribution from "
                      "fit (calibration.json good_scores, at least 3)", model=stage.id)
            return None
        if ref.size < 10:
            log_event(log, logging.INFO, "drift: the reference is only a few held-out good scores, so the verdict "
                      "is coarse; fit with more good images for a finer one", model=stage.id, n_reference=ref.size)
        d = cfg.drift
        return DriftMonitor(ref, d.window, d.min_parts, d.warn_shift, d.alarm_shift, d.hold)

    def on_drift(state: str, status: dict) -> None:
        if rt.drift_lamp is not None:
            rt.drift_lamp(state in ("warning", "alarm"))
        if rt.mqtt is not None:
            rt.mqtt.publish_drift(state, status)

    p = cfg.station_page
    return StationState(rt.telemetry, lambda: rt.health.ready, lambda: rt.slot.current.id,
                        gallery_size=p.gallery_size, trend_hours=p.trend_hours, drift=drift, on_drift=on_drift)


def open_station_server(rt: "LineRuntime") -> "StationServer":
    from ..fitting import update_inspector
    from ..netbind import read_token
    from .feedback import Feedback, refit_refusal
    from .server import StationServer

    cfg = rt.cfg
    p, i = cfg.station_page, cfg.inspector
    fb = None
    if p.feedback:
        root = Path(p.feedback_dir) if p.feedback_dir else rt.storage_root / "feedback"

        def update(path: Path, images: list[Path]) -> None:
            update_inspector(path, images, i.backend, i.device, i.threads or None, precision=i.precision)

        refusal = refit_refusal(cfg.model.path if cfg.model is not None else None,
                                (cfg.cascade.file or "[cascade]") if cfg.cascade is not None else None)
        fb = Feedback(root, rt.station, Path(i.path), rt.reload, update, no_refit=refusal)
    return StationServer(p.listen, rt.station, fb, read_token(p.token_file), cfg.station, p.refresh_ms).start()
