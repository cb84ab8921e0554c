"""Jetson.GPIO: the 40-pin header of Jetson Orin and Xavier boards (pin numbers per ``pin_mode``).

Inputs use Jetson.GPIO's event thread; the trigger time is taken in its callback, so it carries
that thread's latency (typically well under a millisecond, more under load).
"""

from __future__ import annotations

import time
from typing import Callable

from ..errors import GpioError
from . import Setter


def _import_jetson():
    try:
        import Jetson.GPIO as GPIO
    except ImportError:
        raise GpioError("Jetson.GPIO is not installed", hint="pip install Jetson.GPIO (on the Jetson itself)") from None
    except Exception as e:  # Jetson.GPIO raises RuntimeError off a Jetson
        raise GpioError(f"Jetson.GPIO cannot start here: {e}",
                        hint="the jetson backend runs on a Jetson; use gpio.backend = 'gpiod' or 'sim' elsewhere"
                        ) from None
    return GPIO


class JetsonGpio:
    def __init__(self, pin_mode: str = "BOARD"):
        self.GPIO = _import_jetson()
        self.GPIO.setwarnings(False)
        self.GPIO.setmode(getattr(self.GPIO, pin_mode))
        self._pins: list[int] = []
        self._inputs: list[int] = []

    def output(self, name: str, line: int | str, active_high: bool) -> Setter:
        G = self.GPIO
        pin = int(line)
        on, off = (G.HIGH, G.LOW) if active_high else (G.LOW, G.HIGH)
        try:
            G.setup(pin, G.OUT, initial=off)
        except Exception as e:
            raise GpioError(f"cannot set up pin {pin} ({name}) as an output: {e}") from None
        self._pins.append(pin)

        def set_line(active: bool) -> None:
            G.output(pin, on if active else off)

        return set_line

    def watch(self, name: str, line: int | str, edge: str, debounce_ms: float,
              on_edge: Callable[[float], None]) -> None:
        G = self.GPIO
        pin = int(line)
        try:
            G.setup(pin, G.IN)
            G.add_event_detect(pin, G.RISING if edge == "rising" else G.FALLING,
                               callback=lambda _ch: on_edge(time.monotonic()),
                               bouncetime=max(1, int(round(debounce_ms))) if debounce_ms else None)
        except Exception as e:
            raise GpioError(f"cannot watch pin {pin} ({name}) for edges: {e}") from None
        self._pins.append(pin)
        self._inputs.append(pin)

    def close(self) -> None:
        for pin in self._inputs:
            self.GPIO.remove_event_detect(pin)
        if self._pins:
            self.GPIO.cleanup(self._pins)
        self._pins.clear()
        self._inputs.clear()
