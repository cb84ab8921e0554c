"""The capture check: is this image lit and focused like the good images the inspector was fitted on?

An inspector's statistics only know the good images it saw. A frame taken with a failed lamp, a
lens cap, the exposure turned down or the light blown out is not a part the model can judge, and
some models cannot even see the difference: the texture model takes each image's own mean off its
features (``--centre image``), so on the dev set's brick surface 15 of 15 good crops made 4x darker
were scored OK. So `fit` records the range of two numbers over its good images, and scoring refuses
(decision ERROR, with the reason and what to do) an image outside that range by more than a
tolerance, before the model runs:

* **brightness**: the mean grey level (0-255), too low or too high;
* **contrast**: the standard deviation of the grey levels, too low only (a fogged, covered or
  defocused lens lowers it; a bold defect on a plain part raises it, and the model judges that).

Both are measured on a grey copy of at most ~MEASURE_PIXELS pixels (every k-th pixel), so a
3872x3200 photo costs about as little as a 256-px crop. An image is outside when its brightness is below
``low / (1 + tolerance) - SLACK`` or above ``high * (1 + tolerance) + SLACK``, or its contrast below the first (``SLACK`` grey levels keep
nearly black parts from being refused for a level or two). The tolerance is ``fit --capture-tolerance``
(default 0.25: a quarter beyond the darkest or brightest good image); ``off`` records no check.

Measured on the real-photo dev set (benchmarks/realdata.py, 5 categories; 30 good and 48 defective
test images each): with ranges from the first 20 and from all 80 good training images, no good and no
defective test image is outside. With the 80-image ranges, 15 good test images per category scaled
in brightness: 0.25x, 75 of 75 refused; 0.5x, 69 of 75 (tissue, whose crops vary most, 9 of 15);
0.8x, 3 of 75; 1.25x, none; 1.6x, 55 of 75.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import ConfigError, ImageError

DEFAULT_TOLERANCE = 0.25
MEASURE_PIXELS = 65536
SLACK = 2.0  # grey levels


def measure(img_bgr: np.ndarray) -> tuple[float, float]:
    """(brightness, contrast) of one 8-bit image: mean and standard deviation of its grey levels."""
    h, w = img_bgr.shape[:2]
    k = max(1, math.ceil(math.sqrt(h * w / MEASURE_PIXELS)))
    small = np.ascontiguousarray(img_bgr[::k, ::k])
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 and small.shape[2] == 3 else small
    mean, std = cv2.meanStdDev(grey)
    return float(mean[0, 0]), float(std[0, 0])


def parse_tolerance(text: str | float | None) -> float | None:
    """``--capture-tolerance``: a share (0.25 = a quarter beyond the good range), or ``off`` (None)."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("off", "none", "")):
        return None
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not (0.0 <= v <= 10.0) or math.isnan(v):
        raise ConfigError(f"--capture-tolerance {text!r} is not a share between 0 and 10, or off",
                          hint="e.g. --capture-tolerance 0.25 (a quarter beyond the good images' range), or off")
    return v


@dataclass(frozen=True)
class CaptureRange:
    """What the good images' brightness and contrast spanned, and how far beyond it an image may go."""

    brightness: tuple[float, float]
    contrast: tuple[float, float]
    n: int
    tolerance: float = DEFAULT_TOLERANCE

    @classmethod
    def of(cls, measures: list[tuple[float, float]], tolerance: float = DEFAULT_TOLERANCE) -> "CaptureRange":
        m = np.asarray(measures, np.float64).reshape(-1, 2)
        if not len(m):
            raise ValueError("a capture range needs at least one image")
        return cls((float(m[:, 0].min()), float(m[:, 0].max())), (float(m[:, 1].min()), float(m[:, 1].max())),
                   len(m), float(tolerance))

    def widened(self, measures: list[tuple[float, float]]) -> "CaptureRange":
        """This range and ``measures`` together (`fit --update` adds the new good images)."""
        if not measures:
            return self
        new = CaptureRange.of(measures, self.tolerance)
        return CaptureRange((min(self.brightness[0], new.brightness[0]), max(self.brightness[1], new.brightness[1])),
                            (min(self.contrast[0], new.contrast[0]), max(self.contrast[1], new.contrast[1])),
                            self.n + new.n, self.tolerance)

    def limits(self, which: str) -> tuple[float, float]:
        lo, hi = getattr(self, which)
        return max(0.0, lo / (1.0 + self.tolerance) - SLACK), hi * (1.0 + self.tolerance) + SLACK

    def problem(self, img_bgr: np.ndarray) -> str | None:
        """Why ``img_bgr`` is not lit like the good images, or None when it is."""
        values = dict(zip(("brightness", "contrast"), measure(img_bgr)))
        for which, v in values.items():
            lo, hi = self.limits(which)
            glo, ghi = getattr(self, which)
            if v < lo or (v > hi and which == "brightness"):  # more contrast is the model's to judge
                if v < lo:
                    how = f"{glo / v:.1f}x lower than the lowest" if v >= 1 else "far lower than the lowest"
                else:
                    how = f"{v / max(ghi, 1.0):.1f}x higher than the highest"
                return (f"the image's {which} is {v:.1f}, {how} of the {self.n} good images it was fitted on "
                        f"({glo:.1f}..{ghi:.1f} of 255; allowed {lo:.1f}..{hi:.1f})")
        return None

    def check(self, img_bgr: np.ndarray) -> None:
        """Raise :class:`ImageError` (the image gets an ERROR record) when ``img_bgr`` is outside the range."""
        why = self.problem(img_bgr)
        if why is not None:
            raise ImageError(f"capture check: {why}",
                             hint="check the lamp, the exposure and the lens; if parts really look like this now, "
                                  "add such good images with `fit --update`, or refit with a wider "
                                  "--capture-tolerance (or off)")

    def describe(self) -> str:
        (blo, bhi), (clo, chi) = self.limits("brightness"), self.limits("contrast")
        return (f"brightness {self.brightness[0]:.0f}..{self.brightness[1]:.0f}, contrast {self.contrast[0]:.0f}.."
                f"{self.contrast[1]:.0f} (grey levels) over {self.n} good images; an image with a brightness "
                f"beyond {blo:.0f}..{bhi:.0f} or a contrast under {clo:.0f} is an ERROR (tolerance {self.tolerance:g})")

    def to_dict(self) -> dict:
        return {"brightness": [round(v, 3) for v in self.brightness], "contrast": [round(v, 3) for v in self.contrast],
                "n": self.n, "tolerance": self.tolerance}

    @classmethod
    def from_dict(cls, d: dict) -> "CaptureRange":
        try:
            b, c = [float(v) for v in d["brightness"]], [float(v) for v in d["contrast"]]
            r = cls((b[0], b[1]), (c[0], c[1]), int(d["n"]), float(d["tolerance"]))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"capture range {d!r} is not readable ({type(e).__name__}: {e})") from None
        if not (0 <= r.brightness[0] <= r.brightness[1] and 0 <= r.contrast[0] <= r.contrast[1]
                and r.n >= 1 and r.tolerance >= 0):
            raise ValueError(f"capture range {d!r} is not a range")
        return r
