"""Tiling for large photos: cut each image into rows × cols tiles at the model's input size.

A 3872×3200 photo resized to 256×256 loses defects a few pixels wide. With tiles, the image
is resized to (rows·H, cols·W) and cut into tiles the backbone sees at full detail; the tiles'
feature grids are stitched back into one (rows·gh, cols·gw) grid, so the anomaly map, the
score and the mask cover the whole photo.

Two kinds of statistics:
* ``per-tile`` (default): every position of the stitched grid has its own Gaussian, as if the
  model saw the whole image at once — right for positioned parts (an assembly, a casting).
  Memory grows with the number of tiles.
* ``shared``: one Gaussian per position *within a tile*, fitted on every tile of every image —
  right for textures and strip, where any tile looks like any other; memory as without tiles.

Or windows of a fixed size in photo pixels (``--tile 512 --tile-overlap 32``): the photo is cut
at its own resolution into windows that overlap by that many pixels, each window is resized to
the model's input, and the tiles' maps are blended back (a tent weight per tile, so seams and the
border effects of each tile fade) onto one canvas covering the photo. The windows are laid out
on the first fitted photo's size; scoring resizes other sizes to it. Per-tile statistics keep a
Gaussian for every position of every window.

With 1 × 1 (the default) everything here is the identity.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from ..bundle import InputSpec
from ..errors import ConfigError, ImageError
from ..preprocess import check_aspect, to_tensor

MODES = ("per-tile", "shared")
MAX_WINDOWS = 1024
MAX_CELL = 16


@dataclass(frozen=True)
class Tiling:
    rows: int = 1
    cols: int = 1
    mode: str = "per-tile"
    tile: tuple[int, int] | None = None  # window (h, w) in photo pixels (--tile); None: rows x cols
    overlap: int = 0  # pixels shared by neighbouring windows (--tile-overlap)
    image: tuple[int, int] | None = None  # the photo size the windows are laid out on
    cell: int = 1  # --stats-cell: K×K neighbouring grid positions share one Gaussian (memory ÷ K²)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ConfigError(f"tile mode {self.mode!r} is unknown; choose {' or '.join(MODES)}")
        if not 1 <= self.cell <= MAX_CELL:
            raise ConfigError(f"stats cell {self.cell}: must be 1 (a Gaussian per position) to {MAX_CELL}")
        if self.tile is not None:
            if min(self.tile) < 16:
                raise ConfigError(f"tile {self.tile[0]}x{self.tile[1]}: each side must be at least 16 pixels")
            if not 0 <= self.overlap < min(self.tile) // 2:
                raise ConfigError(f"tile overlap {self.overlap} px must be ≥ 0 and under half the tile "
                                  f"({min(self.tile) // 2} px)")
            if self.count > MAX_WINDOWS:
                raise ConfigError(f"{self.count} windows of {self.tile[0]}x{self.tile[1]} px on a "
                                  f"{self.image[0]}x{self.image[1]} photo (at most {MAX_WINDOWS})",
                                  hint="use a larger --tile or a smaller --tile-overlap")
            return
        if self.overlap:
            raise ConfigError("--tile-overlap needs --tile SIZE (windows in pixels), not --tiles RxC")
        if self.rows < 1 or self.cols < 1 or self.rows * self.cols > 64:
            raise ConfigError(f"tiles {self.rows}x{self.cols}: rows and cols must be ≥ 1, at most 64 tiles")

    @classmethod
    def parse(cls, text: str | None, mode: str = "per-tile") -> "Tiling":
        """'2x3' → 2 rows, 3 columns."""
        if not text:
            return cls(1, 1, mode)
        try:
            r, c = (int(v) for v in text.lower().split("x"))
        except ValueError:
            raise ConfigError(f"tiles {text!r}: write ROWSxCOLS, e.g. 2x2") from None
        return cls(r, c, mode)

    @classmethod
    def windows_of(cls, size: str, overlap: int = 0, mode: str = "per-tile") -> "Tiling":
        """'512' or '480x640' (HxW, photo pixels) → windows, laid out once the photo size is known."""
        return cls(mode=mode, tile=parse_size(size, "tile"), overlap=int(overlap))

    @classmethod
    def from_options(cls, tiles: str | None, tile: str | None, overlap: int | None, mode: str | None,
                     cell: int | None = None) -> "Tiling":
        """The CLI's --tiles / --tile / --tile-overlap / --tile-mode / --stats-cell, one of the two layouts
        (None: not given)."""
        if tiles and tile:
            raise ConfigError("give either --tiles RxC or --tile SIZE, not both")
        overlap, mode = overlap or 0, mode or "per-tile"
        t = cls.windows_of(tile, overlap, mode) if tile else cls.parse(tiles, mode) if not overlap else \
            cls(overlap=overlap)  # refused in __post_init__ with what to do
        return replace(t, cell=int(cell or 1))

    def differences(self, tiles: str | None = None, tile: str | None = None, overlap: int | None = None,
                    mode: str | None = None, cell: int | None = None) -> list[str]:
        """What the options given to score/eval/a station (None: not given) say that this fitted tiling does
        not do. Scoring always uses the fitted tiling (its statistics are laid out on it), so a flag can
        only confirm it; each difference is one readable line."""
        out = []
        if tiles is not None:
            want = Tiling.parse(tiles)
            if self.windowed or (want.rows, want.cols) != (self.rows, self.cols):
                out.append(f"tiles {tiles} asked, but it was fitted with {self.describe()}")
        if tile is not None:
            th, tw = parse_size(tile, "tile")
            if not self.windowed:
                out.append(f"tile {tile} px asked, but it was fitted with {self.describe()}")
            elif (min(th, self.image[0]), min(tw, self.image[1])) != tuple(self.tile):
                out.append(f"tile {th}x{tw} px asked, but its windows are {self.tile[0]}x{self.tile[1]} px")
        if overlap is not None:
            if self.windowed and min(overlap, max(0, min(self.tile) // 2 - 1)) != self.overlap:
                out.append(f"tile overlap {overlap} px asked, but its windows overlap by {self.overlap} px")
            elif not self.windowed and overlap:
                out.append(f"tile overlap {overlap} px asked, but it was fitted with {self.describe()}")
        if mode is not None and mode != self.mode:
            out.append(f"tile mode {mode} asked, but its statistics are {self.mode}")
        if cell is not None and cell != self.cell:
            out.append(f"stats cell {cell} asked, but {self.cell}x{self.cell} grid cells share each Gaussian")
        return out

    @classmethod
    def from_dict(cls, d: dict | None) -> "Tiling":
        d = d or {}
        t = cls(int(d.get("rows", 1)), int(d.get("cols", 1)), d.get("mode", "per-tile"),
                tuple(d["tile"]) if d.get("tile") else None, int(d.get("overlap", 0)), cell=int(d.get("cell", 1)))
        return t.laid_out(*d["image"]) if t.tile is not None and d.get("image") else t

    @property
    def windowed(self) -> bool:
        return self.tile is not None

    def laid_out(self, height: int, width: int) -> "Tiling":
        """Fix the windows on a photo of this size (the first fitted photo)."""
        if not self.windowed:
            return self
        th, tw = min(self.tile[0], height), min(self.tile[1], width)
        ov = min(self.overlap, max(0, min(th, tw) // 2 - 1))
        return replace(self, tile=(th, tw), overlap=ov, image=(int(height), int(width)),
                       rows=len(_starts(height, th, ov)), cols=len(_starts(width, tw, ov)))

    def windows(self) -> list[tuple[int, int]]:
        """Top-left corners (y, x) of the windows on the photo, row-major."""
        (ih, iw), (th, tw) = self.image, self.tile
        return [(y, x) for y in _starts(ih, th, self.overlap) for x in _starts(iw, tw, self.overlap)]

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def shared(self) -> bool:
        return self.mode == "shared" and self.count > 1

    def to_dict(self) -> dict:
        d = {"rows": self.rows, "cols": self.cols, "mode": self.mode}
        if self.windowed:
            d.update(tile=list(self.tile), overlap=self.overlap, image=list(self.image) if self.image else None)
        if self.cell > 1:
            d["cell"] = self.cell
        return d

    def describe(self) -> str:
        cells = f", statistics shared by {self.cell}x{self.cell} grid cells" if self.cell > 1 else ""
        if self.windowed:
            return (f"{self.count} windows of {self.tile[0]}x{self.tile[1]} px, {self.overlap} px overlap, on "
                    f"{self.image[0]}x{self.image[1]} photos ({self.mode}{cells})")
        return (f"{self.rows}x{self.cols} tiles ({self.mode}{cells})" if self.count > 1 else
                f"no tiles{cells}")

    @property
    def samples_per_image(self) -> int:
        """Rows of :meth:`samples` per image: its tiles when they share statistics, times the cells."""
        return (self.count if self.shared else 1) * self.cell ** 2

    def check_cells(self, tile_grid: tuple[int, int]) -> None:
        """--stats-cell K must divide the statistics grid (per tile, K×K cells never straddle two tiles)."""
        if self.cell == 1:
            return
        gh, gw = tile_grid
        if gh % self.cell or gw % self.cell:
            fits = [k for k in range(2, MAX_CELL + 1) if gh % k == 0 and gw % k == 0]
            raise ConfigError(f"--stats-cell {self.cell} does not divide the model's {gh}x{gw} feature grid",
                              hint=f"use --stats-cell {' or '.join(map(str, fits))}" if fits else
                              "this backbone's grid has no common divisor; use --tile-mode shared or --mode texture")

    def tensors(self, img_bgr: np.ndarray, spec: InputSpec, check: bool = True) -> np.ndarray:
        """One image → (tiles, 3, H, W), tiles in row-major order. ``check=False``: its shape was
        already screened (:meth:`check_image`), so it is not checked again."""
        if self.windowed:
            return self._window_tensors(img_bgr, spec, check)
        if self.count == 1:
            return to_tensor(img_bgr, spec, check=check)[None]
        h, w = spec.height, spec.width
        big_h, big_w = self.rows * h, self.cols * w
        ih, iw = img_bgr.shape[:2]
        if (ih, iw) != (big_h, big_w):
            if check:
                check_aspect((ih, iw), (big_h, big_w), f"the {self.rows}x{self.cols} tiles' canvas")
            shrink = ih > big_h and iw > big_w
            img_bgr = cv2.resize(img_bgr, (big_w, big_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        return np.stack([to_tensor(img_bgr[r * h:(r + 1) * h, c * w:(c + 1) * w], spec)
                         for r in range(self.rows) for c in range(self.cols)])

    def batch(self, images: list[np.ndarray], spec: InputSpec, checked: bool = False) -> np.ndarray:
        """Images → one input batch, each image's tiles in order (the one place tiles are batched).
        ``checked``: every image's shape was screened already (:meth:`check_image`)."""
        return np.concatenate([self.tensors(im, spec, check=not checked) for im in images])

    def _window_tensors(self, img_bgr: np.ndarray, spec: InputSpec, check: bool = True) -> np.ndarray:
        ih, iw = self.image
        if img_bgr.shape[:2] != (ih, iw):
            if check:
                check_aspect(img_bgr.shape[:2], (ih, iw), "the photo size the windows were laid out on")
            shrink = img_bgr.shape[0] > ih and img_bgr.shape[1] > iw
            img_bgr = cv2.resize(img_bgr, (iw, ih), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        th, tw = self.tile
        wins = self.windows()
        out = np.empty((len(wins), 3, spec.height, spec.width), np.float32)
        for i, (y, x) in enumerate(wins):
            to_tensor(img_bgr[y:y + th, x:x + tw], spec, out[i], check=False)  # the window's shape: check_windows
        return out

    def check_image(self, shape: tuple[int, int], spec: InputSpec) -> None:
        """Refuse (ImageError) an image whose shape is far from what it is resized to (preprocess.check_aspect)."""
        if self.windowed:
            check_aspect(shape, self.image, "the photo size the windows were laid out on")
        elif self.count > 1:
            check_aspect(shape, (self.rows * spec.height, self.cols * spec.width),
                         f"the {self.rows}x{self.cols} tiles' canvas")
        else:
            check_aspect(shape, (spec.height, spec.width))

    def check_windows(self, spec: InputSpec) -> None:
        """Windows whose shape is far from the model input's would be squashed in every photo: refuse them once."""
        if self.windowed:
            try:
                check_aspect(self.tile, (spec.height, spec.width))
            except ImageError as e:
                raise ConfigError(f"windows of {self.tile[0]}x{self.tile[1]} px (HxW) do not fit the model's "
                                  f"{spec.height}x{spec.width} input: " + e.message.split(": ", 1)[-1],
                                  hint=f"use --tile with the input's shape, e.g. --tile "
                                       f"{spec.height * 2}x{spec.width * 2}") from None

    def stats_grid(self, tile_grid: tuple[int, int]) -> tuple[int, int]:
        """The grid of the statistics: one Gaussian per cell of it."""
        gh, gw = self._position_grid(tile_grid)
        return gh // self.cell, gw // self.cell

    def _position_grid(self, tile_grid: tuple[int, int]) -> tuple[int, int]:
        if self.shared or self.count == 1 and not self.windowed:
            return tile_grid
        if self.windowed:
            return self.count * tile_grid[0], tile_grid[1]  # every window's positions, window after window
        return self.rows * tile_grid[0], self.cols * tile_grid[1]

    def samples(self, emb: np.ndarray, tile_grid: tuple[int, int]) -> np.ndarray:
        """Tile embeddings (B·T, d, gh·gw) → what the statistics are fitted on and scored against:
        shared: the tiles themselves; per-tile: one stitched (B, d, rows·gh·cols·gw) embedding per image.
        With --stats-cell K, the K² positions of each K×K cell become K² samples of that cell's Gaussian
        (rows cell-offset-major: (B·K², d, cells))."""
        e = self._tile_samples(emb, tile_grid)
        k = self.cell
        if k == 1:
            return e
        gh, gw = self._position_grid(tile_grid)
        b, d, _ = e.shape
        e = e.reshape(b, d, gh // k, k, gw // k, k).transpose(0, 3, 5, 1, 2, 4)
        return np.ascontiguousarray(e.reshape(b * k * k, d, (gh // k) * (gw // k)))

    def _uncell(self, grids: np.ndarray) -> np.ndarray:
        """Distance grids of cell samples (B·K², GH/K, GW/K) → one (B, GH, GW) grid per sample of the tiles."""
        k = self.cell
        if k == 1:
            return grids
        bk, ch, cw = grids.shape
        g = grids.reshape(bk // (k * k), k, k, ch, cw).transpose(0, 3, 1, 4, 2)
        return g.reshape(bk // (k * k), ch * k, cw * k)

    def _tile_samples(self, emb: np.ndarray, tile_grid: tuple[int, int]) -> np.ndarray:
        if self.count == 1 and not self.windowed or self.shared:
            return emb
        gh, gw = tile_grid
        bt, d, _ = emb.shape
        if self.windowed:
            e = emb.reshape(bt // self.count, self.count, d, gh * gw).transpose(0, 2, 1, 3)
            return np.ascontiguousarray(e.reshape(bt // self.count, d, self.count * gh * gw))
        e = emb.reshape(bt // self.count, self.rows, self.cols, d, gh, gw).transpose(0, 3, 1, 4, 2, 5)
        return np.ascontiguousarray(e.reshape(bt // self.count, d, self.rows * gh * self.cols * gw))

    def stitch(self, grids: np.ndarray) -> np.ndarray:
        """Distance maps of ``samples`` → one (B, rows·gh, cols·gw) map per image (windows: one blended
        canvas per image, at the tiles' own grid resolution)."""
        grids = self._uncell(grids)
        if self.windowed:
            return self._blend(grids)
        if self.count == 1 or not self.shared:
            return grids
        bt, gh, gw = grids.shape
        g = grids.reshape(bt // self.count, self.rows, self.cols, gh, gw).transpose(0, 1, 3, 2, 4)
        return g.reshape(bt // self.count, self.rows * gh, self.cols * gw)

    def canvas(self, tile_grid: tuple[int, int]) -> tuple[tuple[int, int], list[tuple[int, int]]]:
        """The blended map's (height, width) in grid cells, and each window's top-left cell."""
        gh, gw = tile_grid
        (ih, iw), (th, tw) = self.image, self.tile
        ch, cw = max(gh, round(ih * gh / th)), max(gw, round(iw * gw / tw))
        ys = _cells(_starts(ih, th, self.overlap), th / gh, ch - gh, gh)
        xs = _cells(_starts(iw, tw, self.overlap), tw / gw, cw - gw, gw)
        return (ch, cw), [(y, x) for y in ys for x in xs]

    def _blend(self, grids: np.ndarray) -> np.ndarray:
        t = self.count
        if self.shared:
            bt, gh, gw = grids.shape
        else:
            bt, gh, gw = grids.shape[0] * t, grids.shape[1] // t, grids.shape[2]
        tiles = grids.reshape(bt // t, t, gh, gw)
        (ch, cw), corners = self.canvas((gh, gw))
        w = np.outer(_tent(gh), _tent(gw)).astype(np.float32)
        acc = np.zeros((tiles.shape[0], ch, cw), np.float32)
        wsum = np.zeros((ch, cw), np.float32)
        for i, (y, x) in enumerate(corners):
            acc[:, y:y + gh, x:x + gw] += tiles[:, i] * w
            wsum[y:y + gh, x:x + gw] += w
        return acc / wsum


def _starts(n: int, t: int, overlap: int) -> list[int]:
    """Window starts along one side: every t − overlap pixels, the last one flush with the edge."""
    if t >= n:
        return [0]
    return list(range(0, n - t, t - overlap)) + [n - t]


def _cells(starts: list[int], cell: float, last: int, size: int) -> list[int]:
    """Pixel starts → cell starts on the canvas; the last window flush with the canvas edge, and no gap
    between neighbours from rounding."""
    out: list[int] = []
    for i, s in enumerate(starts):
        c = last if i == len(starts) - 1 else min(round(s / cell), last)
        out.append(min(c, out[-1] + size) if out else 0)
    return out


def _tent(n: int) -> np.ndarray:
    """1 in the middle falling to 1/n at the edges: where windows overlap, each one's border (where
    its receptive field runs off the window) counts least."""
    i = np.arange(n)
    return np.minimum(i + 1, n - i) / ((n + 1) // 2)


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """'512' → (512, 512); '256x1600' → (256, 1600) as height x width."""
    try:
        parts = [int(v) for v in str(text).lower().replace("×", "x").split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise ConfigError(f"{what} {text!r}: write PIXELS or HEIGHTxWIDTH, e.g. 512 or 480x640")
    return parts[0], parts[1]
