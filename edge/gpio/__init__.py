"""GPIO lines for results, reject pulses, the ready signal and trigger inputs.

    chip = open_gpio(cfg.gpio, sim_log=Path("out/gpio.jsonl"))
    set_ng = chip.output("ng", line=17, active_high=True)    # → a setter: set_ng(True)
    chip.watch("trigger", line=4, edge="rising", debounce_ms=2, on_edge=lambda t: ...)

Backends: ``sim`` (writes every line change to a JSON Lines file; for tests and dry runs),
``gpiod`` (libgpiod v2 bindings, any Linux GPIO chip) and ``jetson`` (Jetson.GPIO). The hardware
packages are imported only when their backend is chosen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol

from ..config.sections import GpioSection
from ..errors import GpioError

Setter = Callable[[bool], None]


class GpioChip(Protocol):
    def output(self, name: str, line: int | str, active_high: bool) -> Setter: ...

    def watch(self, name: str, line: int | str, edge: str, debounce_ms: float,
              on_edge: Callable[[float], None]) -> None: ...

    def close(self) -> None: ...


def open_gpio(cfg: GpioSection, sim_log: Path) -> GpioChip:
    if cfg.backend == "sim":
        from .sim_gpio import SimGpio

        return SimGpio(sim_log)
    if cfg.backend == "gpiod":
        from .gpiod_gpio import GpiodChip

        return GpiodChip(cfg.chip)
    if cfg.backend == "jetson":
        from .jetson_gpio import JetsonGpio

        return JetsonGpio(cfg.pin_mode)
    raise GpioError(f"gpio backend {cfg.backend!r} has no chip")
