"""The value that flows from a source into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..records import utc_now


@dataclass(frozen=True)
class Frame:
    """One captured image (or the reason there is none).

    ``t_trigger`` and ``t_capture`` are ``time.monotonic()`` seconds; free-running frames have
    ``t_trigger == t_capture``. ``required`` frames are parts that must get a decision: a triggered
    frame or a file. If one is skipped (drop policy 'latest') it still gets an ERROR record.
    """

    seq: int
    id: str
    image: np.ndarray | None
    t_capture: float
    t_trigger: float
    wall: str = field(default_factory=utc_now)
    required: bool = False
    error: str | None = None

    def __post_init__(self):
        if self.image is None:
            if not self.error:
                raise ValueError(f"frame {self.id}: needs an image or an error")
            return
        im = self.image
        if im.dtype != np.uint8 or im.ndim != 3 or im.shape[2] != 3 or min(im.shape[:2]) < 8:
            raise ValueError(f"frame {self.id}: expected an 8-bit BGR image (H, W, 3), got {im.dtype} {im.shape}")

    def failed(self, error: str) -> "Frame":
        """The same frame, without its image, marked with an error (for an ERROR record)."""
        return Frame(self.seq, self.id, None, self.t_capture, self.t_trigger, self.wall, self.required, error)
