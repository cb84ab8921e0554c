"""Where decisions go: storage (decision log + images), GPIO, a command hook, MQTT.

A sink has ``emit(decision)`` and ``close()``. Each runs on its own thread behind a bounded
queue (:class:`~edge.sinks.worker.SinkWorker`), so a slow or failing sink never stalls capture,
inference or the other sinks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

from ..stage import Inspection
from ..records import DecisionRecord
from ..sources.frame import Frame


@dataclass(frozen=True)
class Decision:
    """A decided frame. ``frame`` and ``inspection`` carry the images and maps; sinks that do not
    need them get :meth:`light` copies, so big arrays are not held in their queues."""

    record: DecisionRecord
    t_trigger: float
    t_decided: float
    required: bool = False
    frame: Frame | None = None
    inspection: Inspection | None = None
    image_threshold: float | None = None

    def light(self) -> "Decision":
        return dataclasses.replace(self, frame=None, inspection=None)

    @property
    def heavy(self) -> bool:
        return self.frame is not None or self.inspection is not None


class Sink(Protocol):
    name: str
    needs_images: bool

    def emit(self, decision: Decision) -> None: ...

    def close(self) -> None: ...
