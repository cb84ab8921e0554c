"""libgpiod v2 (the ``gpiod`` package): any Linux GPIO character device, /dev/gpiochipN.

Outputs are requested with ``active_low`` set from the config, so "active" means the same on
every line whatever its wiring. Trigger inputs use kernel edge detection with debounce and
CLOCK_MONOTONIC event timestamps, the same clock as ``time.monotonic()``, so the trigger time is
when the edge happened, not when Python noticed it.
"""

from __future__ import annotations

import datetime as _dt
import threading
from typing import Callable

from ..errors import GpioError
from . import Setter


def _import_gpiod():
    try:
        import gpiod
        from gpiod.line import Clock, Direction, Edge, Value
    except ImportError:
        raise GpioError("the gpiod package (libgpiod v2 bindings) is not installed",
                        hint="pip install 'gpiod>=2.1' (needs a kernel with the GPIO v2 character device, 5.10+)"
                        ) from None
    return gpiod, Clock, Direction, Edge, Value


class GpiodChip:
    def __init__(self, chip: str, consumer: str = "edge-inspect"):
        self.gpiod, self.Clock, self.Direction, self.Edge, self.Value = _import_gpiod()
        self.chip = chip
        self.consumer = consumer
        self._requests = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _request(self, line: int | str, settings):
        try:
            req = self.gpiod.request_lines(self.chip, consumer=self.consumer, config={line: settings})
        except (OSError, ValueError) as e:
            raise GpioError(f"cannot request line {line!r} on {self.chip}: {e}",
                            hint="check the chip and line with `gpioinfo`; the user needs access to the "
                                 "device (group gpio, or --device in Docker); a line can have one owner") from None
        self._requests.append(req)
        return req

    def output(self, name: str, line: int | str, active_high: bool) -> Setter:
        settings = self.gpiod.LineSettings(direction=self.Direction.OUTPUT, active_low=not active_high,
                                           output_value=self.Value.INACTIVE)
        req = self._request(line, settings)
        active, inactive = self.Value.ACTIVE, self.Value.INACTIVE

        def set_line(on: bool) -> None:
            req.set_value(line, active if on else inactive)

        return set_line

    def watch(self, name: str, line: int | str, edge: str, debounce_ms: float,
              on_edge: Callable[[float], None]) -> None:
        settings = self.gpiod.LineSettings(
            direction=self.Direction.INPUT,
            edge_detection=self.Edge.RISING if edge == "rising" else self.Edge.FALLING,
            debounce_period=_dt.timedelta(milliseconds=debounce_ms), event_clock=self.Clock.MONOTONIC)
        req = self._request(line, settings)

        def loop() -> None:
            while not self._stop.is_set():
                if req.wait_edge_events(_dt.timedelta(milliseconds=200)):
                    for ev in req.read_edge_events():
                        on_edge(ev.timestamp_ns / 1e9)

        t = threading.Thread(target=loop, name=f"gpio-{name}", daemon=True)
        t.start()
        self._threads.append(t)

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(1.0)
        for req in self._requests:
            req.release()
        self._requests.clear()
