"""One inspection station, assembled from a :class:`~edge.config.RuntimeConfig`.

    rt = LineRuntime(cfg)          # opens GPIO, the source (fails fast on a missing camera), the inspector, sinks
    rt.start()
    ...                            # rt.reload() on SIGHUP; rt.stop() on SIGTERM
    summary = rt.shutdown()        # drains: every captured frame has its record

Start order: GPIO first (so NOT-READY shows while the rest starts), then the source, the
inspector and the sinks. Shutdown runs the other way and closes only what was opened.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..config import RuntimeConfig
from ..gpio import GpioChip, open_gpio
from ..inspector import Inspector
from ..log_format import log_event
from ..padim import kernel
from ..sinks import Decision
from ..sinks.gpio_sink import GpioSink
from ..sinks.hook_sink import HookSink
from ..sinks.storage_sink import StorageSink
from ..sinks.worker import SinkWorker
from ..sources import Source, open_source
from ..sources.trigger import TriggeredSource, TriggerQueue
from ..station import open_station_state
from ..station.state import StationSink
from ..stage import ModelStage, open_stage
from ..telemetry import Telemetry
from .health import Health
from .model_stages import StageSlot, apply_threshold_overrides
from .stage_threads import Pipeline
from .summary import RunSummary, summarize

log = logging.getLogger("edge.runtime")


class LineRuntime:
    def __init__(self, cfg: RuntimeConfig, *, max_frames: int | None = None, wait_for_camera: bool = False):
        self.cfg = cfg
        self.telemetry = Telemetry(cfg.pipeline.latency_budget_ms)
        self.health = Health()
        self.health.set("pipeline", False, "starting")
        self.chip: GpioChip | None = None
        self.gpio: GpioSink | None = None
        self.triggers: TriggerQueue | None = None
        self.sim_clock = None
        self.workers: list[SinkWorker] = []
        self.source: Source | None = None
        self.mqtt = None
        self.drift_lamp = None
        self.station_url: str | None = None  # set by serve() when the station page is on
        self._reloading = threading.Lock()
        try:
            self._open(max_frames, wait_for_camera)
        except BaseException:
            self._close_opened()
            raise

    @property
    def storage_root(self) -> Path:
        return Path(self.cfg.storage.root)

    def _open(self, max_frames: int | None, wait_for_camera: bool) -> None:
        cfg = self.cfg
        if cfg.gpio.backend != "off":
            sim_log = Path(cfg.gpio.sim_log) if cfg.gpio.sim_log else self.storage_root / "gpio.jsonl"
            self.chip = open_gpio(cfg.gpio, sim_log)
            self.gpio = GpioSink(cfg.gpio, self.chip, self.telemetry)
            self.health.on_change(self.gpio.set_ready)
            if cfg.gpio.drift is not None:
                self.drift_lamp = self.chip.output("drift", cfg.gpio.drift.line, cfg.gpio.drift.active_high)
                self.drift_lamp(False)
        self.source = open_source(cfg.source, on_state=lambda ok, why: self.health.set("source", ok, why),
                                  wait_for_camera=wait_for_camera)
        source: Source = self.source
        t = cfg.trigger
        if t.mode != "free-run":
            self.triggers = TriggerQueue(t.debounce_ms if t.mode == "gpio" else 0.0)  # bounce is electrical
            source = TriggeredSource(source, self.triggers, t.max_frame_delay_ms / 1000.0, cfg.source.read_timeout_s)
            if t.mode == "gpio":
                self.chip.watch("trigger", t.line, t.edge, t.debounce_ms, self.triggers.fire)
                if t.sim_interval_ms:
                    from ..gpio.sim_gpio import SimTriggerClock

                    self.sim_clock = SimTriggerClock(self.chip, "trigger", t.sim_interval_ms)
        i = cfg.inspector
        src = cfg.model or i  # [model]: a supervised bundle instead of the inspector

        def load() -> ModelStage:
            if cfg.cascade is not None:  # read again on every reload, like an inspector directory
                from ..cascade import open_cascade

                casc = open_cascade(cfg.cascade.spec(), i.backend, i.device, i.precision, i.threads or None,
                                    i.factor_precision, source=cfg.cascade.file or "[cascade]")
                for w in casc.warnings:
                    log.warning(w)
                return casc
            insp = open_stage(src.path, src.backend, src.device, src.precision, src.threads or None,
                              factor_precision=i.factor_precision)
            if isinstance(insp, Inspector):
                log.info("inspector %s loaded; Mahalanobis: %s; this inspector holds them as %s", insp.id,
                         kernel.status(), insp.factor_precision)
            for w in insp.warnings:
                log.warning(w)
            if isinstance(insp, Inspector) and i.tiling_problems(insp.tiling):
                from ..errors import ConfigError

                raise ConfigError(f"inspector.tile*: {src.path} was fitted with {insp.tiling.describe()}: "
                                  + "; ".join(i.tiling_problems(insp.tiling)),
                                  hint="fix the tile keys in [inspector] to say what the inspector does, or "
                                       "refit it with the tiling you want")
            if (i.roi or i.roi_polygon) and isinstance(insp, Inspector):
                from ..roi import Roi

                insp.roi = Roi.load(i.roi) if i.roi else Roi.from_polygons([i.roi_polygon])
            elif i.roi or i.roi_polygon:
                log.warning("inspector.roi applies to PaDiM inspectors; %s is a %s model", i.path, insp.kind)
            return apply_threshold_overrides(insp, i.image_threshold, i.pixel_threshold)

        self.slot = StageSlot(load)
        self.health.set("inspector", True)
        self.station = open_station_state(self)
        self.workers.append(SinkWorker(StorageSink(cfg.storage, self.telemetry, on_stored=self.station.stored),
                                       self.telemetry, cfg.storage.queue_size, keep_records=True))
        self.workers.append(SinkWorker(StationSink(self.station), self.telemetry, cfg.pipeline.sink_queue_size))
        if self.gpio is not None:
            self.workers.append(SinkWorker(self.gpio, self.telemetry, cfg.pipeline.sink_queue_size))
        if cfg.hook.command:
            self.workers.append(SinkWorker(HookSink(cfg.hook, self.telemetry, cfg.station), self.telemetry,
                                           cfg.pipeline.sink_queue_size))
        if cfg.mqtt.enabled:
            from ..sinks.mqtt_sink import MqttSink

            self.mqtt = MqttSink(cfg.mqtt, self.telemetry, cfg.station)
            self.workers.append(SinkWorker(self.mqtt, self.telemetry, cfg.pipeline.sink_queue_size))
        self.pipeline = Pipeline(source, self.slot, self._dispatch, self.telemetry, cfg.capture, max_frames,
                                 gpio_measures_latency=self.gpio is not None,
                                 fault_after=cfg.pipeline.fault_after_failures,
                                 on_model_state=lambda ok, why: self.health.set("inference", ok, why))

    def sink_status(self) -> dict[str, dict]:
        """Each sink's state (ok, queued, errors, dropped, problem) for health; sinks never affect READY."""
        return {w.sink.name: w.status() for w in self.workers}

    def _dispatch(self, d: Decision) -> None:
        for w in self.workers:
            w.offer(d)

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        self.telemetry.started = self.telemetry.clock()  # throughput counts from here, not from loading
        self.health.set("pipeline", True)
        self.pipeline.start()
        if self.sim_clock is not None:
            self.sim_clock.start()
        log_event(log, logging.INFO, "station running", station=self.cfg.station, source=self.cfg.source.uri,
                  trigger=self.cfg.trigger.mode, drop_policy=self.cfg.capture.drop_policy,
                  inspector=self.slot.current.id, gpio=self.cfg.gpio.backend)

    def wait(self, timeout: float | None = None) -> bool:
        """True once every captured frame is decided (the source ended, or after stop())."""
        return self.pipeline.finished.wait(timeout)

    def stop(self) -> None:
        self.health.set("pipeline", False, "stopping")
        if self.sim_clock is not None:
            self.sim_clock.stop()
        self.pipeline.stop()
        if self.triggers is not None:
            self.triggers.close()

    def reload(self) -> tuple[bool, str]:
        """Load the inspector again (SIGHUP) beside the running one, then swap; frames keep flowing."""
        if not self._reloading.acquire(blocking=False):
            return False, "a reload is already running"
        try:
            ok, info = self.slot.reload()
            self.telemetry.inc("reloads", result="ok" if ok else "failed")
            return ok, info
        finally:
            self._reloading.release()

    def shutdown(self) -> RunSummary:
        """Stop, drain every stage and sink, close everything. Raises PipelineError if a stage crashed."""
        self.stop()
        try:
            self.pipeline.join()
        finally:
            self._close_opened()
        return summarize(self)

    def _close_opened(self) -> None:
        if self.sim_clock is not None:
            self.sim_clock.stop()
        for w in self.workers:
            critical = w.sink.name in ("storage", "gpio")
            w.close(None if critical else self.cfg.pipeline.drain_timeout_s)
        self.workers = []
        if self.source is not None:
            self.source.close()
        if self.chip is not None:
            self.chip.close()
            self.chip = None
