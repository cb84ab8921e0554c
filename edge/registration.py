"""Registering a positioned part to a reference view before per-position statistics.

Per-position Gaussians compare each grid cell with the same cell of the good images, so a part that
sits a few pixels off or turned by a degree or two moves its edges into cells whose statistics
never saw an edge there: good parts score high and small defects drown. Fixtures on a line are
never perfect. So for the ``aligned`` model every image (good images at fit, parts at scoring) is
first registered to a reference view of the part, and the anomaly map is moved back to the
image's own frame, so masks, overlays and ROIs stay where the part is in the photo.

* **Estimate.** A rigid (rotation + shift) transform by OpenCV's ECC (enhanced correlation
  coefficient) on a grey copy of about REGISTRATION_SIDE² pixels (64x64 for a square input,
  26x160 for a 256x1600 strip), starting from no motion (so it finds the nearest alignment, not a
  far-away look-alike). ~1 ms per image (128x128 took 2.4 ms and found the same warps within 0.3 px,
  with the same AUROC on the dev set's positioned parts; older inspectors keep their reference's size).
* **Refuse what is not a small correction.** When ECC does not converge, its correlation stays
  below MIN_CORRELATION, or the motion is larger than MAX_SHIFT of the image's *shorter* side (in
  either direction: along a strip, a 15%-of-its-length shift is a look-alike, not the part
  slightly moved) or MAX_ANGLE_DEG, the image is used as it is (identity).
* **Reference.** The first REFERENCE_IMAGES good images, registered to the first and averaged;
  kept in the inspector as ``registration.png`` (look at it: it is the part as the model sees it).
* **Only where it finds something to correct** (:func:`worth_registering`). ``fit --register auto``
  tries the reference on up to CHECK_IMAGES further good images; when ECC finds a small correction
  for under MIN_CORRECTED_SHARE of them, the inspector does not register (and says so): the
  images hold no part to align (a surface fitted ``--mode aligned``), and every image would pay the
  ECC's ~1.6 ms for a warp it then refuses. Measured on the real-photo sets' good images: positioned
  parts (coins, flower, cup, engine) 40 of 40 corrected; surfaces (brick, moon, tissue, grass,
  veined) 3-7 of 40; the speed benchmark's demo texture 3 of 40.

Position-free (texture) statistics do not care where things are, and tiled inspectors lay
windows on the photo; neither registers.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import BundleError
from .preprocess import resize_to

REGISTRATION_FILE = "registration.png"
REGISTRATION_SIDE = 64  # the grey copy has about this squared pixels (its side for a square input)
REFERENCE_IMAGES = 8
MAX_SHIFT = 0.15  # of the image's shorter side
MAX_ANGLE_DEG = 15.0
MIN_CORRELATION = 0.3
ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
CHECK_IMAGES = 16  # good images beyond the reference's that fit tries the reference on
MIN_CORRECTED_SHARE = 0.25  # of those, the share ECC must find a small correction for (worth_registering)
ECC_SMOOTHING = 5  # Gaussian window ECC smooths both views with (px, at REGISTRATION_SIDE)
IDENTITY = np.eye(2, 3, dtype=np.float32)


def _small_size(hw: tuple[int, int]) -> tuple[int, int]:
    """The grey copy's (h, w): the input's shape with about REGISTRATION_SIDE² pixels (never enlarged)."""
    f = min(1.0, REGISTRATION_SIDE / math.sqrt(hw[0] * hw[1]))
    return max(8, round(hw[0] * f)), max(8, round(hw[1] * f))


def _grey(img_in: np.ndarray, small: tuple[int, int]) -> np.ndarray:
    g = cv2.cvtColor(img_in, cv2.COLOR_BGR2GRAY) if img_in.ndim == 3 else img_in
    return cv2.resize(g, (small[1], small[0]), interpolation=cv2.INTER_AREA).astype(np.float32)


def _affine3(m: np.ndarray) -> np.ndarray:
    return np.vstack([m.astype(np.float64), [0.0, 0.0, 1.0]])


def _scale3(s: float) -> np.ndarray:
    """Pixel-centre coordinates of a grid ``s`` times coarser: p = s·g + (s − 1)/2."""
    return np.array([[s, 0.0, (s - 1) / 2], [0.0, s, (s - 1) / 2], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class Registration:
    """A reference view (grey, uint8, at the small size) and the model input (h, w) it belongs to.

    A *warp* is a 2×3 float32 matrix in model-input pixels that maps a point of the reference frame
    to the same point of the image: registered(x) = image(warp·x).
    """

    reference: np.ndarray
    input_hw: tuple[int, int]

    @property
    def small(self) -> tuple[int, int]:
        """The grey copy's (h, w): the reference's own (inspectors fitted before the size rule changed keep theirs)."""
        return int(self.reference.shape[0]), int(self.reference.shape[1])

    def register(self, img_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the image at the model's input size in the reference frame, its warp), resized once."""
        img = resize_to(img_bgr, self.input_hw)
        w = self._estimate(img)
        return self._apply(img, w), w

    def estimate(self, img_bgr: np.ndarray) -> np.ndarray:
        """The warp that registers this image to the reference (identity when it is not a small one)."""
        return self._estimate(resize_to(img_bgr, self.input_hw))

    def apply(self, img_bgr: np.ndarray, warp: np.ndarray) -> np.ndarray:
        """The image at the model's input size, moved into the reference frame."""
        return self._apply(resize_to(img_bgr, self.input_hw), warp)

    def _estimate(self, img_in: np.ndarray) -> np.ndarray:
        small = self.small
        view = _grey(img_in, small)
        w = IDENTITY.copy()
        try:
            corr, w = cv2.findTransformECC(self.reference.astype(np.float32), view, w, cv2.MOTION_EUCLIDEAN,
                                           ECC_CRITERIA, None, ECC_SMOOTHING)
        except cv2.error:  # did not converge (a blank or very different view)
            return IDENTITY.copy()
        angle = math.degrees(math.atan2(float(w[1, 0]), float(w[0, 0])))
        if not (np.isfinite(w).all() and corr >= MIN_CORRELATION and abs(angle) <= MAX_ANGLE_DEG
                and max(abs(w[0, 2]), abs(w[1, 2])) <= MAX_SHIFT * min(small)):
            return IDENTITY.copy()
        f = self.input_hw[0] / small[0], self.input_hw[1] / small[1]
        # small-image warp → input pixels (the small copy is the input scaled by f, pixel centres kept)
        s_in = np.array([[f[1], 0, (f[1] - 1) / 2], [0, f[0], (f[0] - 1) / 2], [0, 0, 1.0]])
        return (s_in @ _affine3(w) @ np.linalg.inv(s_in))[:2].astype(np.float32)

    def _apply(self, img: np.ndarray, warp: np.ndarray) -> np.ndarray:
        if np.array_equal(warp, IDENTITY):
            return img
        h, w = self.input_hw
        return cv2.warpAffine(img, warp, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REFLECT_101)

    def map_to_image(self, grid_map: np.ndarray, warp: np.ndarray) -> np.ndarray:
        """A distance map on the reference frame's grid → the same grid over the image's own frame."""
        if np.array_equal(warp, IDENTITY):
            return grid_map
        gh, gw = grid_map.shape
        s = _scale3(self.input_hw[0] / gh)  # grid cells are square (one stride)
        m = (np.linalg.inv(s) @ _affine3(warp) @ s)[:2].astype(np.float32)
        return cv2.warpAffine(grid_map.astype(np.float32), m, (gw, gh), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    # --- building and persistence -----------------------------------------------------------
    @classmethod
    def build(cls, images: list[np.ndarray], input_hw: tuple[int, int]) -> "Registration":
        """The reference from good images: each registered to the first, then averaged."""
        if not images:
            raise ValueError("a registration reference needs at least one image")
        input_hw = (int(input_hw[0]), int(input_hw[1]))
        small = _small_size(input_hw)
        first = cls(_grey(resize_to(images[0], input_hw), small).round().astype(np.uint8), input_hw)
        acc = first.reference.astype(np.float64)
        for img in images[1:REFERENCE_IMAGES]:
            acc += _grey(first.register(img)[0], small)
        return cls(np.clip(acc / min(len(images), REFERENCE_IMAGES), 0, 255).round().astype(np.uint8), input_hw)

    def to_dict(self) -> dict:
        return {"motion": "euclidean", "file": REGISTRATION_FILE, "size": list(self.reference.shape),
                "max_shift": MAX_SHIFT, "max_angle_deg": MAX_ANGLE_DEG, "min_correlation": MIN_CORRELATION}

    def save(self, folder: Path) -> None:
        if not cv2.imwrite(str(Path(folder) / REGISTRATION_FILE), self.reference):
            raise OSError(f"cannot write {Path(folder) / REGISTRATION_FILE}")

    @classmethod
    def load(cls, folder: Path, input_hw: tuple[int, int], meta: dict) -> "Registration":
        path = Path(folder) / REGISTRATION_FILE
        ref = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if ref is None:
            raise BundleError(f"{path}: the registration reference cannot be read", hint="refit the inspector")
        input_hw = (int(input_hw[0]), int(input_hw[1]))
        want = _small_size(input_hw)
        aspect_off = abs(math.log((ref.shape[1] / ref.shape[0]) / (input_hw[1] / input_hw[0]))) > 0.1
        if aspect_off or min(ref.shape) < 8 or list(ref.shape) != list(meta.get("size", ref.shape)):
            raise BundleError(f"{path} is {ref.shape[0]}x{ref.shape[1]}, expected "
                              f"{'x'.join(map(str, want))} (as recorded in the manifest) for a "
                              f"{input_hw[0]}x{input_hw[1]} model input", hint="refit the inspector")
        if meta.get("motion", "euclidean") != "euclidean":
            raise BundleError(f"{path}: unknown registration motion {meta.get('motion')!r}",
                              hint="this inspector is newer than this edge-inspect; upgrade it")
        return cls(ref, input_hw)


def worth_registering(reg: Registration, images: list[np.ndarray]) -> tuple[bool, str]:
    """(whether to register, why): yes when ECC finds a small correction (a warp it does not refuse)
    for at least MIN_CORRECTED_SHARE of ``images`` (good images; see the module docstring)."""
    warps = [reg.estimate(im) for im in images]
    corrected = sum(not np.array_equal(w, IDENTITY) for w in warps)
    if corrected >= MIN_CORRECTED_SHARE * len(warps):
        return True, f"ECC found a small correction for {corrected} of the {len(warps)} good images it was tried on"
    return False, (f"not registered: ECC found a small correction for only {corrected} of the {len(warps)} good "
                   f"images it was tried on (under {MIN_CORRECTED_SHARE:.0%}): it finds nothing to align in them (a "
                   "surface, for instance), so registering would only cost time")


class WarpMemo:
    """Warps estimated in ``tensors`` kept for ``results`` of the same image objects (the line pipeline
    runs the two on different threads). Keyed by the array's identity and checked with a weak
    reference, so a new array that happens to reuse an id is estimated afresh, never mistaken."""

    def __init__(self, limit: int = 256):
        self.limit = limit
        self._memo: OrderedDict[int, tuple[weakref.ref, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, img: np.ndarray, warp: np.ndarray) -> None:
        with self._lock:
            self._memo[id(img)] = (weakref.ref(img), warp)
            while len(self._memo) > self.limit:
                self._memo.popitem(last=False)

    def take(self, img: np.ndarray, reg: Registration) -> np.ndarray:
        with self._lock:
            hit = self._memo.pop(id(img), None)
        if hit is not None and hit[0]() is img:
            return hit[1]
        return reg.estimate(img)
