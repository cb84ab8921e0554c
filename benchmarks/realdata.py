"""A harder evaluation set from real photographs, with planted defects and exact masks (MVTec layout).

    python -m benchmarks.realdata OUT --group dev        # for designing methods
    python -m benchmarks.realdata OUT --group holdout    # only for the final table: never tune on it
    python -m benchmarks.realdata OUT --group all --size 256

The photos ship inside installed wheels (scikit-image, scikit-learn; ``pip install
'edge-inspect[bench]'``), nothing is downloaded, and the same seed always writes the same files.
``dev`` and ``holdout`` use different photographs. Each category holds
``train/good`` (80), ``test/good`` (30) and 48 defective test images over four defect kinds, with
``ground_truth/<kind>/<name>_mask.png``. OUT gets ``README.txt`` and ``dataset.json`` saying how every
category was made; each category gets ``defects.json`` (kind, severity, mask size of every defect)
and ``preview.png`` (good and defective examples with the mask outlined).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from .realdata_defects import Site, plant
from .realdata_sources import Region, aligned_capture, camera, load_photo, surface_capture, warp_crop

VERSION = 1


@dataclass(frozen=True)
class CategorySpec:
    name: str
    group: str  # dev | holdout
    kind: str  # aligned (positioned part) | surface (texture, random position and rotation)
    photo: str
    region: Region  # aligned: the part's ROI; surface: the usable area, halved into train | test
    defects: tuple[str, ...]
    donors: tuple[str, ...]  # photos that foreign material (patches) comes from
    side: int = 0  # surface: crop side in source pixels
    about: str = ""


SK, SL = "skimage:", "sklearn:"
CATEGORIES = (
    CategorySpec("coins", "dev", "aligned", SK + "coins.png", Region(46, 8, 288, 288),
                 ("scratch", "bent", "missing", "stain"), (SK + "chelsea.png", SK + "moon.png"),
                 about="a tray of old coins, photographed again and again"),
    CategorySpec("flower", "dev", "aligned", SL + "flower.jpg", Region(150, 0, 340, 340),
                 ("scratch", "bent", "particle", "smudge"), (SK + "astronaut.png", SK + "ihc.png"),
                 about="a dahlia head: a positioned object with fine repeated structure"),
    CategorySpec("brick", "dev", "surface", SK + "brick.png", Region(0, 0, 512, 512),
                 ("scratch", "hole", "stain", "patch"), (SK + "moon.png", SK + "camera.png"), side=150,
                 about="a brick wall, any position and rotation"),
    CategorySpec("tissue", "dev", "surface", SK + "ihc.png", Region(0, 0, 512, 512),
                 ("scratch", "smudge", "particle", "patch"), (SK + "astronaut.png", SL + "flower.jpg"), side=160,
                 about="stained tissue (immunohistochemistry): irregular organic texture"),
    CategorySpec("moon", "dev", "surface", SK + "moon.png", Region(0, 0, 512, 512),
                 ("scratch", "hole", "stain", "smudge"), (SK + "brick.png", SK + "camera.png"), side=160,
                 about="a cratered grey surface with benign blemishes"),
    CategorySpec("cup", "holdout", "aligned", SK + "coffee.png", Region(70, 0, 390, 390),
                 ("scratch", "bent", "missing", "stain"), (SL + "china.jpg", SK + "rocket.jpg"),
                 about="an espresso cup on its saucer, from above"),
    CategorySpec("engine", "holdout", "aligned", SK + "motorcycle_left.png", Region(290, 220, 190, 190),
                 ("scratch", "bent", "missing", "particle"), (SK + "gravel.png", SL + "china.jpg"),
                 about="the engine block of a motorcycle: a mechanical assembly"),
    CategorySpec("gravel", "holdout", "surface", SK + "gravel.png", Region(0, 0, 512, 512),
                 ("scratch", "patch", "hole", "stain"), (SK + "grass.png", SK + "rocket.jpg"), side=150,
                 about="loose gravel, any position and rotation"),
    CategorySpec("grass", "holdout", "surface", SK + "grass.png", Region(0, 0, 512, 512),
                 ("scratch", "smudge", "patch", "particle"), (SK + "gravel.png", SL + "china.jpg"), side=150,
                 about="a lawn: fine, high-contrast natural texture"),
    CategorySpec("speckle", "holdout", "surface", SK + "hubble_deep_field.jpg", Region(0, 0, 1000, 872),
                 ("scratch", "particle", "smudge", "patch"), (SK + "retina.jpg", SK + "rocket.jpg"), side=300,
                 about="a dark surface with bright specks (the Hubble deep field as a speckled coating)"),
    CategorySpec("veined", "holdout", "surface", SK + "retina.jpg", Region(380, 300, 820, 820),
                 ("scratch", "stain", "hole", "patch"), (SK + "coffee.png", SK + "gravel.png"), side=260,
                 about="an orange surface with branching veins (a retina, read as veined stone)"),
)
GROUPS = {"dev": [c for c in CATEGORIES if c.group == "dev"],
          "holdout": [c for c in CATEGORIES if c.group == "holdout"]}
GROUPS["all"] = GROUPS["dev"] + GROUPS["holdout"]


@dataclass(frozen=True)
class Counts:
    train: int = 80
    test_good: int = 30
    defects: int = 48  # spread evenly over the category's defect kinds


def _rng(seed: int, cat: str, split: str, i: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(cat.encode()), zlib.crc32(split.encode()), i])


def _donor(spec: CategorySpec):
    def take(rng: np.random.Generator, side: int) -> np.ndarray:
        src = load_photo(spec.donors[rng.integers(len(spec.donors))])
        h, w = src.shape[:2]
        crop = min(h, w) * rng.uniform(0.25, 0.5)
        r = crop * 0.71
        cx, cy = rng.uniform(r, w - r), rng.uniform(r, h - r)
        return warp_crop(src, cx, cy, crop, rng.uniform(0, 360), side).copy()
    return take


def _capture(spec: CategorySpec, split: str, size: int, rng: np.random.Generator) -> np.ndarray:
    src = load_photo(spec.photo)
    if spec.kind == "aligned":
        return aligned_capture(src, spec.region, size, rng)
    train_half, test_half = spec.region.halves()
    return surface_capture(src, train_half if split == "train" else test_half, spec.side, size, rng)


def _save(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), rgb[..., ::-1] if rgb.ndim == 3 else rgb):
        raise SystemExit(f"cannot write {path}")


def write_category(spec: CategorySpec, out: Path, size: int, counts: Counts, seed: int) -> dict:
    root = out / spec.name
    if root.exists():
        shutil.rmtree(root)
    for i in range(counts.train):
        _save(root / "train" / "good" / f"{i:03d}.png", camera(_capture(spec, "train", size, _rng(seed, spec.name, "train", i)),
                                                         _rng(seed, spec.name, "train-cam", i)))
    previews = []
    for i in range(counts.test_good):
        img = camera(_capture(spec, "test", size, _rng(seed, spec.name, "test", i)), _rng(seed, spec.name, "test-cam", i))
        _save(root / "test" / "good" / f"{i:03d}.png", img)
        if i < 2:
            previews.append((img, None))
    records = []
    per_kind = [counts.defects // len(spec.defects) + (k < counts.defects % len(spec.defects))
                for k in range(len(spec.defects))]
    for kind, n in zip(spec.defects, per_kind):
        for j in range(n):
            rng = _rng(seed, spec.name, kind, j)
            clean = _capture(spec, "test", size, rng)
            site = Site.of(clean, _donor(spec), on_structure=spec.kind == "aligned")
            sev = (j + rng.uniform()) / n  # stratified: from subtle to clear across the kind
            bad, mask = plant(kind, clean, site, sev, rng)
            img = camera(bad, _rng(seed, spec.name, kind + "-cam", j))
            _save(root / "test" / kind / f"{j:03d}.png", img)
            _save(root / "ground_truth" / kind / f"{j:03d}_mask.png", mask.astype(np.uint8) * 255)
            records.append({"image": f"test/{kind}/{j:03d}.png", "kind": kind, "severity": round(sev, 3),
                            "mask_pixels": int(mask.sum())})
            if j in (n // 4, n - 1):
                previews.append((img, mask))
    (root / "defects.json").write_text(json.dumps(records, indent=1) + "\n")
    _save(root / "preview.png", _preview(previews, size))
    return {**asdict(spec), "region": asdict(spec.region), "counts": asdict(counts),
            "defects_per_kind": dict(zip(spec.defects, per_kind))}


def _preview(items: list[tuple[np.ndarray, np.ndarray | None]], size: int) -> np.ndarray:
    """Good and defective examples side by side, each defect's mask outlined in green."""
    tiles = []
    for img, mask in items:
        t = img.copy()
        if mask is not None:
            cs, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(t, cs, -1, (0, 255, 0), 1)
        tiles.append(t)
    cols = 5
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    return np.vstack([np.hstack(tiles[i:i + cols]) for i in range(0, len(tiles), cols)])


def readme(group: str, size: int, seed: int, cats: list[dict]) -> str:
    lines = [f"Real-photo evaluation set, group {group!r}, {size}x{size}, seed {seed} "
             f"(benchmarks/realdata.py, version {VERSION}).", "",
             "Photos ship inside the scikit-image / scikit-learn wheels; nothing was downloaded.",
             "aligned: the same ROI each time, jittered by up to 3 px, 2 degrees and 2% scale, with a ~0.6 px",
             "  elastic wobble (part-to-part variation).",
             "surface: crops at a random position, any rotation and +-8% scale; train crops come from the first",
             "  half of the source region, test crops from the second half (no shared source pixel).",
             "Every image then gets camera effects: exposure, contrast, gamma (+-8%), white balance (+-4%),",
             "  uneven lighting (+-4%), blur (sigma 0-0.8 px) and read + shot noise.",
             "Defects are planted before the camera effects, with severities spread from subtle to clear;",
             "  masks are where the planted change's alpha is >= 0.5. Details per image: CATEGORY/defects.json.",
             ""]
    for c in cats:
        kinds = ", ".join(f"{k} x{n}" for k, n in c["defects_per_kind"].items())
        r = c["region"]
        lines.append(f"{c['name']:8s} [{c['group']}, {c['kind']}] {c['about']}; photo {c['photo']}, "
                     f"region x{r['x']} y{r['y']} {r['w']}x{r['h']}"
                     + (f", crop side {c['side']} px" if c["kind"] == "surface" else "")
                     + f"; defects: {kinds}; patches from {', '.join(c['donors'])}")
    return "\n".join(lines) + "\n"


def generate(out: str | Path, group: str = "dev", size: int = 256, counts: Counts = Counts(), seed: int = 0,
             only: list[str] | None = None, log=print) -> list[dict]:
    """Write the group's categories under ``out``; returns their descriptions (also in dataset.json)."""
    out = Path(out)
    specs = [c for c in GROUPS[group] if not only or c.name in only]
    if not specs:
        raise SystemExit(f"no category of group {group!r} matches {only}")
    out.mkdir(parents=True, exist_ok=True)
    cats = []
    for spec in specs:
        t0 = time.perf_counter()
        cats.append(write_category(spec, out, size, counts, seed))
        log(f"[realdata] {spec.name:8s} ({spec.kind}) {counts.train} train, {counts.test_good} good, "
            f"{counts.defects} defective test images in {time.perf_counter() - t0:.1f} s")
    (out / "dataset.json").write_text(json.dumps({"version": VERSION, "group": group, "size": size, "seed": seed,
                                                  "categories": cats}, indent=1) + "\n")
    (out / "README.txt").write_text(readme(group, size, seed, cats))
    return cats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.realdata", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="folder to write the categories into (created; a category folder is replaced)")
    ap.add_argument("--group", choices=sorted(GROUPS), default="dev",
                    help="dev: for designing methods; holdout: only for the final table (default dev)")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    ap.add_argument("--seed", type=int, default=0, help="the same seed writes the same files (default 0)")
    ap.add_argument("--categories", default="", help="comma-separated subset, e.g. coins,brick")
    ap.add_argument("--train", type=int, default=80, help="train/good images per category (default 80)")
    ap.add_argument("--test-good", type=int, default=30, help="test/good images per category (default 30)")
    ap.add_argument("--defects", type=int, default=48, help="defective test images per category (default 48)")
    a = ap.parse_args(argv)
    if a.size < 32:
        ap.error("--size must be at least 32")
    generate(a.out, a.group, a.size, Counts(a.train, a.test_good, a.defects), a.seed,
             [c for c in a.categories.split(",") if c])
    print(f"[realdata] wrote {a.out} (README.txt says how each category was made)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
