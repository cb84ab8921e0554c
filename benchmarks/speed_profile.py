"""Where one photo's and one strip's time goes: each step of `score` timed alone (wall and CPU).

    python -m benchmarks.speed --work DIR --prepare      # first: the data and inspectors
    python -m benchmarks.speed_profile --work DIR        # then: a table per inspector

The steps are those `score_paths` runs for each image (decode, tensors, backbone, embedding,
distances, stitching and registration back to the image, map upsample + blur, score, mask, mask PNG,
overlay for an NG image), called one after another on one image (a photo's windows are one batch),
each ``--reps`` times; the median wall time and the median CPU time of the whole process (every
thread: OpenVINO's, OpenCV's and the kernel's) are reported. `score` overlaps these steps on
threads (score_pipeline.py), so its wall time per image is less than the sum of the walls here;
the sum of the CPU column is what two cores have to share. Say the load average with the numbers
(it is printed): on a shared VM, wall and CPU times both grow with it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from edge.artifacts import OVERLAY_SUFFIX, write_mask, write_overlay
from edge.imageio import read_image
from edge.inspector import Inspector
from edge.padim.embed import embed
from edge.padim.score import anomaly_mask, distance_maps, full_res_map, image_score
from edge.scoring import score_paths


def _timed(fn, reps: int) -> tuple[object, float, float]:
    walls, cpus = [], []
    out = None
    for _ in range(reps):
        c, t = time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return out, 1000 * float(np.median(walls)), 1000 * float(np.median(cpus))


def profile(insp: Inspector, image: Path, batch: list[Path], reps: int, scratch: Path) -> list[tuple[str, float, float]]:
    """[(step, wall ms, cpu ms)] for one image, then `score_paths` over ``batch`` per image."""
    rows = []

    def step(name, fn):
        out, wall, cpu = _timed(fn, reps)
        rows.append((name, wall, cpu))
        return out

    img = step("decode", lambda: read_image(image))
    x = step("tensors (windows or registration, normalise)", lambda: insp.tensors([img]))
    be = insp.backend
    out = step(f"backbone ({x.shape[0]} row{'s' if x.shape[0] > 1 else ''})", lambda: be.infer({be.input_name: x}))
    spec, til = insp.spec, insp.tiling
    emb = step("embedding (+ cells)", lambda: til.samples(embed(out, spec, insp._scratch), spec.grid))
    d = step("distances (kernel)", lambda: distance_maps(emb, insp.stats, insp.mode, insp.sample_grid,
                                                           insp.factor_precision, insp.threads))
    reg = insp.registration
    warp = reg.register(img)[1] if reg is not None else None

    def back():
        g = til.stitch(d)[0]
        return g if reg is None else reg.map_to_image(g, warp)

    grid = step("stitch (+ registration back to the image)", back)
    amap = step("map: upsample + blur", lambda: full_res_map(grid, img.shape[:2], insp.post.blur_sigma,
                                                             insp.roi.inside(img.shape[:2]) if insp.roi else None))
    step("score (max)", lambda: image_score(amap))
    step("mask (threshold + opening)", lambda: anomaly_mask(amap, insp.calibration.pixel_threshold,
                                                             insp.post.open_radius, True))
    res = insp.decide(grid, img.shape[:2])
    step("mask PNG", lambda: write_mask(scratch / "m.png", res))
    step(f"overlay draw + JPEG ({res.decision}; written for NG)",
         lambda: write_overlay(scratch / f"o{OVERLAY_SUFFIX}", img, res, insp.threshold))

    def whole(i=[0]):
        i[0] += 1
        s = score_paths(insp, batch, scratch / f"run{i[0]}", batch_size=8)
        shutil.rmtree(scratch / f"run{i[0]}", ignore_errors=True)
        return s

    _, wall, cpu = _timed(whole, max(1, reps // 2))
    rows.append((f"`score` end to end, per image of {len(batch)} (overlapped)", wall / len(batch), cpu / len(batch)))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="the --work folder of benchmarks.speed --prepare")
    ap.add_argument("--only", default="folder,photo-512,photo-768,strip", help="inspectors: photo-TILE, strip, strip-registered, folder")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="also write the tables here")
    args = ap.parse_args(argv)
    w = args.work
    strips = w / "strip" / "metal" / "test"
    strip_batch = sorted((strips / "good").glob("*.png"))[:18] + sorted(
        p for p in strips.rglob("*.png") if p.parent.name != "good")[:2]
    photos = sorted((w / "photo").glob("scratch-*.jpg"))
    cases = {}
    for name in args.only.split(","):
        if name.startswith("photo-"):
            cases[name] = (w / "photo" / f"insp-{name[6:]}", photos[0], photos)
        elif name == "folder":
            imgs = sorted((w / "folder" / "metal" / "test").rglob("*.png"))[:16]
            cases[name] = (w / "folder" / "insp", imgs[0], imgs)
        elif name == "strip":
            cases[name] = (w / "strip" / "insp", strip_batch[0], strip_batch)
        elif name == "strip-registered":
            cases[name] = (w / "strip" / "insp-registered", strip_batch[0], strip_batch)
        else:
            ap.error(f"unknown inspector {name!r}")
    results = {}
    scratch = w / "profile-scratch"
    scratch.mkdir(exist_ok=True)
    for name, (root, image, batch) in cases.items():
        insp = Inspector.load(root)
        load0 = os.getloadavg()[0]
        rows = profile(insp, image, batch, args.reps, scratch)
        load1 = os.getloadavg()[0]
        results[name] = {"inspector": insp.tiling.describe(), "runtime": insp.backend.describe(),
                         "load_average": [load0, load1], "rows": rows}
        print(f"\n{name}: {insp.tiling.describe()}, {insp.backend.describe()}; load average {load0:.1f} → {load1:.1f}")
        print(f"| step | wall ms | CPU ms |\n|---|---:|---:|")
        steps = rows[:-1]
        for step, wall, cpu in rows:
            print(f"| {step} | {wall:.1f} | {cpu:.1f} |")
        print(f"| sum of the steps | {sum(r[1] for r in steps):.1f} | {sum(r[2] for r in steps):.1f} |")
    shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
