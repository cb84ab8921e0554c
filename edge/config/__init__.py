"""Line-runtime configuration: TOML → one frozen :class:`RuntimeConfig`, or a :class:`ConfigError`
listing every problem as ``key.path: message``.

    cfg = load_config("firmware-configs/generic-x86.toml", overrides={"source.uri": "camera:0"})

Precedence: built-in defaults < the TOML file < ``overrides`` (what CLI flags set).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..netbind import is_loopback, listen_warnings
from .schema import BAD, Problems, build, describe, setting
from .sections import (CascadeSection, CaptureSection, GpioSection, HookSection, HttpSection, InspectorSection, LogSection,
                       ModelSection, MqttSection, PipelineSection, SourceSection, StorageSection, TriggerSection)
from .sections import DriftSection, StationPageSection

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = ["RuntimeConfig", "load_config", "parse_config", "read_toml", "describe_config"]


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    station: str = setting("line", "Name of this inspection station (logs, MQTT topics).")
    inspector: InspectorSection = setting(factory=InspectorSection, doc="")
    cascade: CascadeSection | None = setting(None, "Run a cascade of stages instead of inspector.path "
                                                   "(inspector.backend, device, threads apply to its stages).")
    model: ModelSection | None = setting(None, doc="")  # a supervised bundle instead of [inspector]
    source: SourceSection = setting(factory=SourceSection, doc="")
    capture: CaptureSection = setting(doc="")
    trigger: TriggerSection = setting(factory=TriggerSection, doc="")
    pipeline: PipelineSection = setting(factory=PipelineSection, doc="")
    storage: StorageSection = setting(factory=StorageSection, doc="")
    gpio: GpioSection = setting(factory=GpioSection, doc="")
    hook: HookSection = setting(factory=HookSection, doc="")
    mqtt: MqttSection = setting(factory=MqttSection, doc="")
    http: HttpSection = setting(factory=HttpSection, doc="")
    station_page: StationPageSection = setting(factory=StationPageSection, doc="")
    drift: DriftSection = setting(factory=DriftSection, doc="")
    log: LogSection = setting(factory=LogSection, doc="")

    def problems(self):
        """Checks that span sections."""
        out = []
        t, g = self.trigger, self.gpio
        if self.model is not None and self.inspector != InspectorSection():
            out.append(("model", "give [inspector] (a PaDiM inspector) or [model] (a supervised bundle), not both"))
        if self.model is not None and self.cascade is not None:
            out.append(("model", "give [cascade] or [model], not both (a cascade names its models in its stages)"))
        if t.mode == "gpio":
            if g.backend == "off":
                out.append(("trigger.mode", "'gpio' needs a GPIO backend (gpio.backend is 'off')"))
            if t.line is None:
                out.append(("trigger.line", "is required when trigger.mode = 'gpio'"))
            used = {getattr(g, n).line: n for n in ("ok", "ng", "ready", "reject", "drift")
                    if getattr(g, n) is not None}
            if t.line is not None and t.line in used:
                out.append(("trigger.line", f"line {t.line!r} is already an output (gpio.{used[t.line]})"))
        elif t.sim_interval_ms:
            out.append(("trigger.sim_interval_ms", "only applies to trigger.mode = 'gpio'"))
        if t.sim_interval_ms and g.backend != "sim":
            out.append(("trigger.sim_interval_ms", "simulated edges need gpio.backend = 'sim'"))
        if t.mode == "software" and self.http.listen == "off":
            out.append(("trigger.mode", "'software' triggers arrive as POST /trigger; set http.listen"))
        i = self.inspector
        if self.cascade is not None and (i.image_threshold is not None or i.pixel_threshold is not None):
            out.append(("inspector.image_threshold", "threshold overrides apply to one inspector, not to a "
                                                     "cascade; set each stage's threshold when fitting it"))
        if self.hook.command and not self.hook.command[0]:
            out.append(("hook.command[0]", "the program must not be empty"))
        return out

    def warnings(self) -> list[str]:
        """What a valid config makes the device expose beyond itself (validate-config prints these)."""
        out = [f"http: {w}" for w in listen_warnings(self.http.listen, "health and metrics")]
        out += [f"station_page: {w}" for w in listen_warnings(self.station_page.listen, "the station page")]
        if self.mqtt.enabled and not is_loopback(self.mqtt.host):
            out.append(f"mqtt: decision records leave this device for {self.mqtt.host}:{self.mqtt.port}"
                       + ("" if self.mqtt.password_file else " without a password (anonymous); set "
                                                             "mqtt.username and mqtt.password_file"))
        return out


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None


def _apply_overrides(data: dict, overrides: dict[str, Any]) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for dotted, value in overrides.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            child = dict(child) if isinstance(child, dict) else {}
            node[part] = child
            node = child
        node[parts[-1]] = value
    return out


def parse_config(data: dict[str, Any], where: str = "config", overrides: dict[str, Any] | None = None
                 ) -> RuntimeConfig:
    """Validate a mapping (parsed TOML); raise ConfigError with every problem at once."""
    problems = Problems()
    cfg = build(RuntimeConfig, _apply_overrides(data, overrides or {}), "", problems)
    if problems or cfg is BAD:
        n = len(problems.items)
        raise ConfigError(f"{where}: {n} problem{'s' if n != 1 else ''}\n  " + "\n  ".join(problems.items),
                          hint="`edge-inspect validate-config --explain` lists every key")
    return cfg


def load_config(path: str | os.PathLike | None, overrides: dict[str, Any] | None = None) -> RuntimeConfig:
    data = read_toml(path) if path is not None else {}
    return parse_config(data, str(path) if path is not None else "settings", overrides)


def config_problems(path: str | os.PathLike) -> list[str]:
    """Every problem in a config file as ``key.path: message`` (empty list: valid)."""
    problems = Problems()
    build(RuntimeConfig, read_toml(path), "", problems)
    return problems.items


def config_warnings(path: str | os.PathLike) -> list[str]:
    """What a valid config file exposes beyond the device (empty when nothing)."""
    return load_config(path).warnings()


def describe_config() -> list[tuple[str, str, str, str]]:
    return describe(RuntimeConfig)
