"""The line runtime's configuration, section by section: frozen dataclasses with descriptions and bounds.

``edge-inspect validate-config --explain`` prints every key with its type, default and description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..netbind import listen_problems
from .cascade_spec import CascadeSpec, StageSpec, load_spec
from .schema import setting

Decision = Literal["OK", "NG", "ERROR"]


@dataclass(frozen=True)
class InspectorSection:
    path: str = setting("inspector", "Inspector directory written by `edge-inspect fit` (replace it atomically, "
                                     "then send SIGHUP to reload).")
    backend: Literal["auto", "onnxruntime", "openvino"] = setting(
        "auto", "Inference runtime. auto: onnxruntime TensorRT/CUDA on a Jetson, OpenVINO on x86 when installed, "
                "else onnxruntime CPU; the start-up log says which runs and why.")
    device: str | None = setting(None, "onnxruntime: cpu | cuda | tensorrt; openvino: CPU | GPU | NPU | AUTO.")
    precision: Literal["fp32", "fp16", "int8"] | None = setting(
        None, "Which model variant of the bundle to run; default the most precise one it has.")
    threads: int = setting(0, "CPU threads for the runtime; 0 = the runtime's default.", min=0, max=256)
    factor_precision: Literal["auto", "fp16", "fp32"] = setting(
        "auto", "How scoring holds the Mahalanobis factors: auto = fp16 where the CPU converts it natively "
                "(half the memory traffic, scores within ~1e-4 relative), else fp32.")
    roi: str | None = setting(None, "Region of interest mask image (white = inspect); replaces the inspector's. "
                                    "Outside it nothing is scored or masked.")
    roi_polygon: list[list[float]] | None = setting(
        None, "Region of interest as one polygon of [x, y] points in the camera's pixels, e.g. "
              "[[0, 0], [1600, 0], [1600, 900], [0, 900]]; replaces the inspector's.")
    tiles: str | None = setting(None, "Expected tiling, ROWSxCOLS (as fit --tiles). The tiling is the inspector's "
                                      "own; a tile key that differs from it stops the station at start (on a reload "
                                      "the running inspector is kept), saying what differs (a swapped "
                                      "inspector is caught).")
    tile: str | None = setting(None, "Expected window size, PX or HxW in photo pixels (as fit --tile); must match "
                                     "the inspector's, like tiles.")
    tile_overlap: int | None = setting(None, "Expected window overlap in pixels (as fit --tile-overlap); must "
                                             "match the inspector's.", min=0)
    tile_mode: Literal["per-tile", "shared"] | None = setting(
        None, "Expected statistics of the tiles (as fit --tile-mode); must match the inspector's.")
    image_threshold: float | None = setting(
        None, "Override the inspector's image threshold (raw Mahalanobis units; score 1.0 = this).",
        min=0, min_exclusive=True)
    pixel_threshold: float | None = setting(None, "Override the inspector's pixel (mask) threshold.",
                                            min=0, min_exclusive=True)

    def problems(self):
        if self.roi and self.roi_polygon:
            return [("roi", "give roi or roi_polygon, not both")]
        if self.roi_polygon is not None and (len(self.roi_polygon) < 3 or any(len(p) != 2 for p in self.roi_polygon)):
            return [("roi_polygon", "needs at least 3 points, each [x, y]")]
        if self.tiles and self.tile:
            return [("tile", "give tiles (ROWSxCOLS) or tile (window pixels), not both")]
        from ..errors import ConfigError
        from ..padim.tiling import Tiling, parse_size

        for key, check in (("tiles", lambda v: Tiling.parse(v)), ("tile", lambda v: parse_size(v, "tile"))):
            value = getattr(self, key)
            if value is not None:
                try:
                    check(value)
                except ConfigError as e:
                    return [(key, e.message)]
        return device_problems(self.backend, self.device)

    def tiling_problems(self, fitted) -> list[str]:
        """What the tile keys say that the opened inspector's tiling (``fitted``) does not do."""
        return fitted.differences(self.tiles, self.tile, self.tile_overlap, self.tile_mode)


def device_problems(backend: str, dev: str | None) -> list[tuple[str, str]]:
    """A ``device`` the ``backend`` does not have, as a (key, message) problem."""
    if dev is None:
        return []
    ok = {"onnxruntime": ("cpu", "cuda", "tensorrt"), "openvino": ("CPU", "GPU", "NPU", "AUTO"),
          "auto": ("cpu", "cuda", "tensorrt", "CPU", "GPU", "NPU", "AUTO")}[backend]
    base = dev.split(":")[0].split(".")[0] if backend != "onnxruntime" else dev.lower()
    if base not in ok:
        return [("device", f"{dev!r} is not a {backend} device (use one of: {', '.join(ok)})")]
    return []


@dataclass(frozen=True)
class ModelSection:
    """A supervised model instead of a PaDiM inspector; its thresholds come from its own calibration."""

    path: str = setting(doc="Classifier, segmenter or multitask bundle from `edge-export` (its calibration block "
                            "sets the thresholds: `edge-inspect info PATH`). Replace it atomically, then SIGHUP.")
    backend: Literal["auto", "onnxruntime", "openvino"] = setting("auto", "Inference runtime (as inspector.backend).")
    device: str | None = setting(None, "onnxruntime: cpu | cuda | tensorrt; openvino: CPU | GPU | NPU | AUTO.")
    precision: Literal["fp32", "fp16", "int8"] | None = setting(
        None, "Which model variant of the bundle to run; default the most precise one it has.")
    threads: int = setting(0, "CPU threads for the runtime; 0 = the runtime's default.", min=0, max=256)

    def problems(self):
        return device_problems(self.backend, self.device)


@dataclass(frozen=True)
class CascadeSection:
    """A cascade instead of one inspector: a cascade TOML file, or its [[cascade.stage]] tables inline."""

    file: str = setting("", "Cascade TOML file ([[stage]] tables; paths in it resolve against its folder).")
    stage: list[StageSpec] = setting(factory=list, doc="Inline stages (paths as elsewhere in this file).")
    vote: Literal["any", "all"] | None = setting(None, "Inline cascades: see the cascade file's vote.")

    def spec(self) -> CascadeSpec:
        """The cascade to run, paths resolved (reads the file; a ConfigError says what is wrong in it)."""
        if self.file:
            return load_spec(self.file)
        return CascadeSpec(stage=self.stage, vote=self.vote).resolved(".")

    def problems(self):
        if bool(self.file) == bool(self.stage):
            return [("file", "give a cascade file or [[cascade.stage]] tables, not both" if self.file else
                     "give file = \"cascade.toml\" or [[cascade.stage]] tables")]
        if self.file:
            from ..errors import ConfigError

            if self.vote is not None:
                return [("vote", "set vote in the cascade file")]
            try:
                load_spec(self.file)
            except ConfigError as e:
                return [("file", e.message)]
            return []
        return CascadeSpec(stage=self.stage, vote=self.vote).problems()


@dataclass(frozen=True)
class SyntheticSection:
    texture: Literal["metal", "fabric", "casting"] = setting("metal", "Surface to draw (as in `demo-data`).")
    size: tuple[int, int] = setting((256, 256), "Frame height and width in pixels.")
    defect_rate: float = setting(0.2, "Share of frames with a planted defect.", min=0, max=1)
    fps: float = setting(0.0, "Frames per second; 0 = as fast as the pipeline takes them.", min=0, max=1000)
    seed: int = setting(0, "Random seed: the same seed gives the same frames.")

    def problems(self):
        return [("size", "both sides must be 16..8192 pixels")] if not all(16 <= s <= 8192 for s in self.size) else []


@dataclass(frozen=True)
class SourceSection:
    uri: str = setting("synthetic", "camera:INDEX | folder:PATH | watch:PATH | file:VIDEO | rtsp://… | "
                                    "gst:PIPELINE | synthetic.")
    width: int = setting(0, "Requested camera width; 0 = the camera's default.", min=0)
    height: int = setting(0, "Requested camera height; 0 = the camera's default.", min=0)
    fps: float = setting(0.0, "Requested camera frame rate; 0 = the camera's default.", min=0)
    open_timeout_s: float = setting(5.0, "How long opening a camera or stream may take.", min=0.1, max=120)
    read_timeout_s: float = setting(2.0, "A camera that gives no frame for this long is treated as lost.",
                                    min=0.1, max=120)
    reconnect_initial_s: float = setting(0.5, "First wait before reconnecting a lost camera; doubles each try.",
                                         min=0.01, max=60)
    reconnect_max_s: float = setting(30.0, "Longest wait between reconnect tries.", min=0.01, max=3600)
    loop: bool = setting(False, "folder: and file: sources start again at the end (soak tests, demos).")
    watch_poll_ms: float = setting(200.0, "watch: how often the folder is listed.", min=10, max=60000)
    watch_existing: Literal["skip", "process"] = setting(
        "skip", "watch: files already there at start are skipped (default) or inspected.")
    synthetic: SyntheticSection = setting(factory=SyntheticSection, doc="The synthetic test pattern.")

    def problems(self):
        from ..errors import ConfigError
        from .source_uri import parse_source_uri

        out = []
        try:
            parse_source_uri(self.uri)
        except ConfigError as e:
            out.append(("uri", e.message))
        if self.reconnect_max_s < self.reconnect_initial_s:
            out.append(("reconnect_max_s", "must be >= reconnect_initial_s"))
        return out


@dataclass(frozen=True)
class CaptureSection:
    drop_policy: Literal["latest", "every"] = setting(
        doc="When inference falls behind: 'latest' drops the oldest waiting frame (a triggered part that is "
            "dropped still gets an ERROR record); 'every' makes capture wait, so no frame is skipped.")
    queue_size: int = setting(4, "Frames waiting between capture and preprocessing.", min=1, max=1024)
    batch_size: int = setting(1, "Up to this many waiting frames are inferred together.", min=1, max=64)


@dataclass(frozen=True)
class TriggerSection:
    mode: Literal["free-run", "gpio", "software"] = setting(
        "free-run", "free-run: every frame the source gives; gpio: one frame per input edge; "
                    "software: one frame per POST /trigger on the HTTP server.")
    line: int | str | None = setting(None, "gpio mode: input line (offset or name for gpiod, pin for Jetson).")
    edge: Literal["rising", "falling"] = setting("rising", "Which edge of the input line triggers.")
    debounce_ms: float = setting(2.0, "Edges closer than this to the previous one are ignored.", min=0, max=1000)
    sim_interval_ms: float = setting(0.0, "gpio.backend=sim: fire a simulated trigger edge this often (0 = never).",
                                     min=0, max=60000)
    max_frame_delay_ms: float = setting(250.0, "Live cameras: a frame that comes later than this after its trigger "
                                               "is an ERROR (the part has moved on).", min=1)


@dataclass(frozen=True)
class PipelineSection:
    latency_budget_ms: float = setting(100.0, "Target from trigger to GPIO output; p50/p99 are reported "
                                              "against it.", min=0, min_exclusive=True)
    sink_queue_size: int = setting(64, "Decisions waiting per sink before that sink drops (and counts) them.",
                                   min=1, max=100000)
    drain_timeout_s: float = setting(20.0, "On stop, how long hook/MQTT sinks may take to send what is queued.",
                                     min=0, max=600)
    fault_after_failures: int = setting(3, "Batches in a row whose inference fails before the station enters its "
                                           "safe state: READY off, every frame an ERROR decision (which drives NG "
                                           "and reject when gpio.on_error = 'reject'); the next good batch ends it.",
                                        min=1, max=1000)


@dataclass(frozen=True)
class RetentionSection:
    max_age_days: float = setting(30.0, "Delete saved images older than this; 0 = keep by age.", min=0)
    min_free_mb: float = setting(1024.0, "Free-space floor: below it the oldest images are deleted, and new images "
                                         "are not saved while nothing older is left. Decisions are always written.",
                                 min=0)
    check_interval_s: float = setting(60.0, "How often retention runs (it also runs on a write error).", min=1)
    keep_logs_days: float = setting(0.0, "Delete daily decision logs older than this; 0 = keep forever.", min=0)


@dataclass(frozen=True)
class StorageSection:
    root: str = setting("edge-data", "Folder for the decision log and saved images.")
    log: str = setting("decisions.jsonl", "Decision log file name under root (append-only JSON Lines).")
    rotate: Literal["none", "daily"] = setting("none", "daily: decisions-YYYY-MM-DD.jsonl per UTC day.")
    fsync: bool = setting(True, "fsync each record (a power cut loses at most the record being written).")
    save_ng_images: bool = setting(True, "Save the frame of every NG (and ERROR) decision.")
    save_masks: Literal["ng", "all", "none"] = setting("ng", "Which decisions get a 0/255 mask PNG.")
    save_overlays: Literal["ng", "all", "none"] = setting("ng", "Which decisions get a heat-map overlay (JPEG).")
    ok_sample_rate: float = setting(0.0, "Share of OK frames whose image is saved too (0..1).", min=0, max=1)
    queue_size: int = setting(16, "Decisions with images waiting to be written; beyond it images are shed "
                                  "(counted) and only the record is kept.", min=1, max=10000)
    retention: RetentionSection = setting(factory=RetentionSection, doc="Retention of saved images.")

    def problems(self):
        bad = "/" in self.log or self.log in ("", ".", "..")
        return [("log", "must be a plain file name")] if bad else []


@dataclass(frozen=True)
class OutputLine:
    line: int | str = setting(doc="Output line: offset or name (gpiod), pin number (Jetson), any label (sim).")
    active_high: bool = setting(True, "false: the line is driven low when active.")
    width_ms: float = setting(0.0, "0: a level held until the next decision; >0: a pulse this long.", min=0)


@dataclass(frozen=True)
class RejectLine:
    line: int | str = setting(doc="Reject output line.")
    active_high: bool = setting(True, "false: the line is driven low when active.")
    delay_ms: float = setting(0.0, "Pulse starts this long after the part's trigger (conveyor travel).", min=0)
    width_ms: float = setting(50.0, "Pulse length.", min=0, min_exclusive=True)


@dataclass(frozen=True)
class GpioSection:
    backend: Literal["off", "sim", "gpiod", "jetson"] = setting(
        "off", "sim writes every line change to sim_log; gpiod = libgpiod v2 (Linux); jetson = Jetson.GPIO.")
    chip: str = setting("/dev/gpiochip0", "gpiod: GPIO character device.")
    pin_mode: Literal["BOARD", "BCM", "CVM", "TEGRA_SOC"] = setting("BOARD", "jetson: pin numbering.")
    sim_log: str = setting("", "sim: where line changes go; empty = STORAGE_ROOT/gpio.jsonl.")
    on_error: Literal["reject", "ignore"] = setting("reject", "An ERROR decision drives NG and reject (fail safe), "
                                                              "or no output at all.")
    ok: OutputLine | None = setting(None, "Output set for OK decisions.")
    ng: OutputLine | None = setting(None, "Output set for NG decisions.")
    ready: OutputLine | None = setting(None, "Active while the camera and inspector are up (NOT-READY when not).")
    drift: OutputLine | None = setting(None, "Lamp: active while drift is at warning or alarm (see [drift]).")
    reject: RejectLine | None = setting(None, "Reject pulse for NG parts.")

    def problems(self):
        out = []
        seen: dict = {}
        for name in ("ok", "ng", "ready", "reject", "drift"):
            spec = getattr(self, name)
            if spec is None:
                continue
            if spec.line in seen:
                out.append((f"{name}.line", f"line {spec.line!r} is already used by gpio.{seen[spec.line]}"))
            seen[spec.line] = name
            if self.backend == "jetson" and not isinstance(spec.line, int):
                out.append((f"{name}.line", "Jetson.GPIO needs a pin number"))
        if self.ready is not None and self.ready.width_ms:
            out.append(("ready.width_ms", "the ready line is a level; width_ms must be 0"))
        return out


@dataclass(frozen=True)
class HookSection:
    command: list[str] = setting(factory=list, doc="Program and arguments (no shell); the decision arrives as JSON "
                                                   "on stdin. Empty = no hook.")
    on: list[Decision] = setting(factory=lambda: ["NG", "ERROR"], doc="Decisions that run the hook.")
    timeout_s: float = setting(5.0, "The program is killed after this long.", min=0.01, max=600)


@dataclass(frozen=True)
class MqttSection:
    enabled: bool = setting(False, "Publish each decision record (without local file paths).")
    host: str = setting("127.0.0.1", "Broker host.")
    port: int = setting(1883, "Broker port.", min=1, max=65535)
    topic: str = setting("edge-inspect/{station}/decisions", "Topic; {station} is replaced.")
    status_topic: str = setting("edge-inspect/{station}/status", "Retained online/offline status (last will).")
    drift_topic: str = setting("edge-inspect/{station}/drift", "Retained drift state, published when it changes.")
    qos: int = setting(1, "MQTT QoS 0, 1 or 2.", min=0, max=2)
    client_id: str = setting("", "Empty = edge-inspect-{station}.")
    username: str = setting("", "Broker user name; empty = anonymous.")
    password_file: str = setting("", "File holding the password (never the password itself in this file).")
    keepalive_s: int = setting(30, "MQTT keepalive.", min=5, max=3600)


@dataclass(frozen=True)
class HttpSection:
    listen: str = setting("off", "'off', or HOST:PORT for /health, /metrics and POST /trigger (port 0: any free).")
    allow_remote: bool = setting(False, "Must be true to listen on anything but loopback (and token_file is then "
                                        "required).")
    token_file: str = setting("", "File holding the token every request must carry (Authorization: Bearer TOKEN); "
                                  "required beyond loopback, optional on it.")

    def problems(self):
        return listen_problems(self.listen, self.allow_remote, self.token_file, "health and metrics")


@dataclass(frozen=True)
class StationPageSection:
    listen: str = setting("off", "'off', or HOST:PORT for the station page (live view, NG gallery, trend, operator "
                                 "feedback), e.g. 127.0.0.1:8765; port 0: any free.")
    allow_remote: bool = setting(False, "Must be true to listen on anything but loopback (token_file is then "
                                        "required).")
    token_file: str = setting("", "File holding the token every request must carry (open the page as "
                                  "/?token=TOKEN); required beyond loopback.")
    refresh_ms: int = setting(1000, "How often the page updates itself.", min=200, max=60000)
    gallery_size: int = setting(12, "How many of the last NG parts the gallery shows.", min=1, max=200)
    trend_hours: float = setting(8.0, "How far back the score trend goes.", min=0.01, max=168)
    feedback: bool = setting(True, "Show the operator feedback buttons (mark good, missed defect, refit, undo).")
    feedback_dir: str = setting("", "Where feedback goes; empty = STORAGE_ROOT/feedback.")

    def problems(self):
        from ..netbind import listen_problems

        return listen_problems(self.listen, self.allow_remote, self.token_file, "the station page")


@dataclass(frozen=True)
class DriftSection:
    enabled: bool = setting(True, "Compare recent OK scores with the good scores of fit; warn in the log, as the "
                                  "drift_shift/drift_state metrics, on the page, over MQTT and on gpio.drift.")
    window: int = setting(200, "How many of the last OK parts are compared.", min=10, max=100000)
    min_parts: int = setting(50, "No verdict before this many OK parts (state 'learning').", min=5, max=100000)
    warn_shift: float = setting(1.5, "Warning when the recent median moved this many reference spreads up "
                                     "(twice that down).", min=0, min_exclusive=True)
    alarm_shift: float = setting(3.0, "Alarm at this shift.", min=0, min_exclusive=True)
    hold: int = setting(20, "A new state must hold for this many parts in a row before it is reported.",
                        min=1, max=100000)

    def problems(self):
        return [("alarm_shift", "must be larger than warn_shift")] if self.alarm_shift <= self.warn_shift else []


@dataclass(frozen=True)
class LogSection:
    level: Literal["debug", "info", "warning", "error"] = setting("info", "Structured log lines on stderr.")
