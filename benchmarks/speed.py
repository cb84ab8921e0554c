"""Benchmark for big photos, strips and folders (issue #11), side by side in one run.

    python -m benchmarks.speed                 # ~15 minutes on a 2-core VM
    python -m benchmarks.speed --quick         # small sizes: checks it works, not speed
    python -m benchmarks.speed --strip-bundle DIR   # reuse an exported 256x1600 Lite0 bundle
    python -m benchmarks.speed --work DIR --prepare  # write the data and fit every inspector into DIR, no timing
    python -m benchmarks.speed --work DIR            # then time them (fits found in DIR are reused)

Every number is end to end through `score_paths` (what `edge-inspect score` runs: decode, model,
maps, decision, mask PNG, overlay JPEG for NG, fsynced record, CSV), with the inspector `fit`
wrote, on the runtime and inference precision `auto` picks. Contenders are interleaved (timing.py).

  folder  a folder of 60 256-px demo images (40 good) and its first 16 (the folder of earlier runs):
          edge per image, the torch PaDiM reference (batch 1, images
          already decoded, no files written), the bare backbone at the precision used (batch 1 and
          batch 8) and one read of the dense fp32 statistics;
          targets: reference / edge ≥ 5; edge / (bare backbone + one read) ≤ 1.3.
  photo   a 3872x3200 photo (JPEG, quality 95, as cameras write them) with one small scratch, windows
          of 512 px with 32 px overlap (shared statistics): seconds per photo and whether the scratch
          is found; target ≤ 1.0 s. --photo-tiles 512,768 measures other window sizes too.
  strip   1600x256 strips through a bundle exported at 256x1600 (no squashing), 90% good: ms per strip
          with PaDiM alone (per-position statistics, --register off: a steel strip is a surface, with no
          reference view to register to), the same fitted with registration (fit's default for the
          aligned model), and a cascade (the PaDiM gate → segmenter at 256x1600, run where the gate's
          score ≥ the gate, set on 20 other good strips to pass 30% of them, as a user would),
          interleaved; target ≤ 120 ms. The segmenter is exported with random weights (--seg-bundle
          to give a trained one): its time is real, its masks are not meaningful.
  accuracy  image and pixel AUROC with the inference precision used against fp32 (≤ 0.002).
Results: a table on stdout and speed-results.json / speed-results.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from edge.demo_data import make_category, texture
from edge.fitting import FitOptions, fit_inspector
from edge.imageio import read_image, read_mask
from edge.inspector import Inspector
from edge.metrics import auroc
from edge.padim.tiling import Tiling
from edge.paths import default_backbone_dir
from edge.preprocess import batch_tensor
from edge.scoring import score_paths

from .run import machine
from .timing import interleaved, make_reader, summary_ms

HERE = Path(__file__).resolve().parent
FOLDER_IMAGES = 60


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _fit(good: list[Path], out: Path, backbone: Path, opts: FitOptions) -> tuple[Inspector, str]:
    """Fit (or, with --work, reuse the inspector an earlier run fitted there with the same options)."""
    if (out / "manifest.json").is_file():
        log(f"reusing the inspector fitted earlier in {out}")
        insp = Inspector.load(out)
        return insp, insp.describe()["inference"] or "?"
    rep = fit_inspector(good, out, backbone, opts, "auto", inference_precision="auto")
    return Inspector.load(out), rep.inference


def _category(root: Path, n_train: int, n_good: int, n_defect: int, seed: int, **kw) -> Path:
    """make_category, unless an earlier run (--work) wrote the same one there."""
    if len(list((root / "train" / "good").glob("*.png"))) == n_train and \
            len(list((root / "test" / "good").glob("*.png"))) == n_good:
        return root
    return make_category(root, "metal", n_train, n_good, n_defect, seed=seed, **kw)


def _score_once(insp: Inspector, paths: list[Path], work: Path, i: int, keep: bool = False) -> list:
    out = work / f"run-{i}"
    s = score_paths(insp, paths, out, batch_size=8)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    return s.records


def bench_folder(work: Path, quick: bool, reps: int, prepare: bool = False) -> dict | None:
    import torch

    from .backbones import module_for
    from .torch_reference import TorchPadim

    # 60 images (40 good, 5 of each of 4 defect kinds: NG overlays on those) as 7 batches of 8 and one
    # of 4; the 16 first (2 batches, mostly defects) beside it, as measured before: there the pipeline's
    # fill and drain weigh
    n_train, n_img, n_small = (20, 8, 8) if quick else (60, FOLDER_IMAGES, 16)
    data = _category(work / "folder" / "metal", n_train, 40, 5, seed=11)
    log(f"folder: fit on {n_train} demo images")
    insp, inference = _fit(sorted((data / "train" / "good").glob("*.png")), work / "folder" / "insp",
                           default_backbone_dir(), FitOptions(mode="aligned"))
    if prepare:
        return None
    paths = sorted((data / "test").rglob("*.png"))[:n_img]
    small = paths[:n_small]
    imgs = [read_image(p) for p in paths]
    ref = TorchPadim(module_for("efficientnet-lite0"), insp.stats.channel_idx)
    ref.fit(batch_tensor([read_image(p)], insp.bundle.input) for p in sorted((data / "train" / "good").glob("*.png")))
    spec, be, stats = insp.bundle.input, insp.backend, insp.stats
    x1, x8 = batch_tensor(imgs[:1], spec), batch_tensor(imgs[:8], spec)
    fns = {
        "edge score, folder": lambda i: _score_once(insp, paths, work, i),
        "edge score, 16 images": lambda i: _score_once(insp, small, work, i),
        "torch reference": lambda i: [ref.score(batch_tensor([im], spec)) for im in imgs],
        "bare backbone b1": lambda i: [be.infer({be.input_name: x1}) for _ in imgs],
        "bare backbone b8": lambda i: [be.infer({be.input_name: x8}) for _ in range(len(imgs) // 8)],
        "stats read, dense fp32": lambda i, r=make_reader([stats.factor, stats.mean]): [r() for _ in imgs],
    }
    log(f"folder: {reps} interleaved rounds of {len(fns)} contenders, {len(imgs)} images each")
    load0 = os.getloadavg()
    per = {"edge score, 16 images": len(small)}
    lat = {k: summary_ms(v, per=per.get(k, len(imgs))) for k, v in interleaved(fns, reps, warmup=1).items()}
    ours, refm = lat["edge score, folder"]["median_ms"], lat["torch reference"]["median_ms"]
    floor = lat["bare backbone b1"]["median_ms"] + lat["stats read, dense fp32"]["median_ms"]
    return {"runtime": f"{be.describe()} ({be.reason})", "inference": inference, "n_images": len(imgs),
            "n_good": sum(p.parent.name == "good" for p in paths), "n_small": len(small),
            "speedup_vs_reference_16": refm / lat["edge score, 16 images"]["median_ms"],
            "load_average": [list(load0), list(os.getloadavg())],
            "latency_ms_per_image": lat, "speedup_vs_reference": refm / ours, "floor_ms": floor,
            "total_over_floor": ours / floor,
            "total_over_floor_b8": ours / (lat["bare backbone b8"]["median_ms"] +
                                           lat["stats read, dense fp32"]["median_ms"] / 8)}


def _scratch(img: np.ndarray, rng: np.random.Generator, length: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    cx, cy = int(rng.uniform(0.2, 0.8) * w), int(rng.uniform(0.2, 0.8) * h)
    ang = rng.uniform(0, np.pi)
    p1 = (int(cx - length / 2 * np.cos(ang)), int(cy - length / 2 * np.sin(ang)))
    p2 = (int(cx + length / 2 * np.cos(ang)), int(cy + length / 2 * np.sin(ang)))
    mask = np.zeros((h, w), np.uint8)
    cv2.line(mask, p1, p2, 255, width)
    out = img.copy()
    out[mask > 0] = np.clip(out[mask > 0].astype(np.int16) - 70, 0, 255).astype(np.uint8)
    return out, mask


def _photos(work: Path, quick: bool) -> tuple[tuple[int, int], list[Path], list[Path], list[np.ndarray]]:
    """The photo benchmark's data, written once: good photos to fit on, 3 with a scratch and its mask."""
    size = (800, 968) if quick else (3200, 3872)
    root = work / "photo"
    n_good = 6 if quick else 12
    good, tests, gts = sorted((root / "good").glob("*.jpg")), sorted(root.glob("scratch-*.jpg")), []
    if len(good) == n_good and len(tests) == 3:
        return size, good, tests, [cv2.imread(str(root / f"gt-{i}.png"), 0) > 0 for i in range(3)]
    rng = np.random.default_rng(21)
    (root / "good").mkdir(parents=True, exist_ok=True)
    log(f"photo: writing {n_good} good {size[1]}x{size[0]} photos and 3 with a scratch (JPEG, quality 95)")
    good, tests = [], []
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95]
    for i in range(n_good):
        good.append(root / "good" / f"{i:02d}.jpg")
        cv2.imwrite(str(good[-1]), texture("metal", size, rng), jpeg)
    for i in range(3):
        img, m = _scratch(texture("metal", size, rng), rng, length=size[0] // 20, width=max(4, size[0] // 400))
        tests.append(root / f"scratch-{i}.jpg")
        cv2.imwrite(str(tests[-1]), img, jpeg)
        cv2.imwrite(str(root / f"gt-{i}.png"), m)
        gts.append(m > 0)
    return size, good, tests, gts


def bench_photo(work: Path, quick: bool, reps: int, tile: int | None = None, prepare: bool = False) -> dict | None:
    """Seconds per photo end to end, windows of ``tile`` px (default 512; 256 with --quick), 32 px overlap."""
    size, good, tests, gts = _photos(work, quick)
    tile = tile or (256 if quick else 512)
    overlap = 16 if quick else 32
    opts = FitOptions(tiling=Tiling.windows_of(str(tile), overlap, "shared"), mode="aligned")
    log(f"photo: fit, windows of {tile} px with {overlap} px overlap, shared statistics")
    insp, inference = _fit(good, work / "photo" / f"insp-{tile}", default_backbone_dir(), opts)
    if prepare:
        return None
    load0 = os.getloadavg()
    recs = _score_once(insp, tests, work, -1, keep=True)
    found = []
    for r, gt in zip(recs, gts):
        mask = cv2.imread(str(r.mask), 0) > 0 if r.mask else np.zeros_like(gt)
        found.append(bool(r.decision == "NG" and (mask & gt).any()))
    log(f"photo: {reps} rounds of 3 photos end to end")
    lat = {k: summary_ms(v, per=len(tests)) for k, v in interleaved(
        {"edge score, photo": lambda i: _score_once(insp, tests, work, i)}, reps, warmup=1).items()}
    return {"size": list(size), "tile": tile, "tiling": insp.tiling.describe(), "inference": inference,
            "runtime": insp.backend.describe(), "found": found, "latency_ms_per_photo": lat,
            "load_average": [list(load0), list(os.getloadavg())]}


def bench_strip(work: Path, quick: bool, reps: int, bundle: Path | None, seg_bundle: Path | None = None,
                prepare: bool = False) -> dict | None:
    size = (64, 400) if quick else (256, 1600)
    if bundle is None and (work / "strip-bundle" / "manifest.json").is_file():
        bundle = work / "strip-bundle"  # exported by an earlier run (--work)
    if bundle is None:
        from export.backbone import export_backbone

        log(f"strip: exporting Lite0 at {size[0]}x{size[1]}")
        bundle = export_backbone("efficientnet-lite0", work / "strip-bundle", size, weights="pretrained")
    if seg_bundle is None and (work / "strip-seg" / "manifest.json").is_file():
        seg_bundle = work / "strip-seg"
    if seg_bundle is None:
        import subprocess
        import sys

        log(f"strip: exporting a Lite0 segmenter at {size[0]}x{size[1]} (random weights: for its time only)")
        seg_bundle = work / "strip-seg"
        subprocess.run([sys.executable, "-m", "export.cli", "segmenter", "efficientnet-lite0", "--mask-classes", "4",
                        "--size", f"{size[0]}x{size[1]}", "--weights", "none", "--out", str(seg_bundle)],
                       check=True, stdout=subprocess.DEVNULL)
    data = _category(work / "strip" / "metal", 20 if quick else 40, 38, 1, seed=31, size=size)
    # per-position statistics of a 64x400 grid at d=100 need ~6.1 GB, over fit's 6 GB guard: as its hint
    # says, a Gaussian per 2x2 grid cells (the same distances to compute per strip, a quarter of the memory)
    cell = 1 if quick else 2
    log(f"strip: fit on strips, the bundle's own shape, --stats-cell {cell}, --register off and auto")
    train = sorted((data / "train" / "good").glob("*.png"))
    insp, inference = _fit(train, work / "strip" / "insp", bundle,
                           FitOptions(mode="aligned", tiling=Tiling(cell=cell), register="off"))
    registered, _ = _fit(train, work / "strip" / "insp-registered", bundle,
                         FitOptions(mode="aligned", tiling=Tiling(cell=cell), register="auto"))
    # a gate pays off only when it costs well under the stage behind it (README, cascades): the gate as
    # the README recommends, PaDiM on a half-size export of Lite0 (128x800), fitted with fit's defaults
    half = (size[0] // 2, size[1] // 2)
    half_bundle = work / "strip-gate-bundle"
    if not (half_bundle / "manifest.json").is_file():
        from export.backbone import export_backbone

        log(f"strip: exporting Lite0 at {half[0]}x{half[1]} for the cascade's gate")
        export_backbone("efficientnet-lite0", half_bundle, half, weights="pretrained")
    half_gate, _ = _fit(train, work / "strip" / "insp-gate-half", half_bundle, FitOptions(mode="aligned"))
    if prepare:
        return None
    load0 = os.getloadavg()
    all_good = sorted((data / "test" / "good").glob("*.png"))
    good, held = all_good[:18], all_good[18:]
    bad = sorted(p for p in (data / "test").rglob("*.png") if p.parent.name != "good")[:2]
    paths = good + bad  # 90% good, as on a line
    # the gate as a user would set it: on 20 other good strips of the line than those timed, passing 30%
    from edge.cascade import open_cascade

    def cascade(gate_insp: Inspector, name: str) -> tuple:
        held_scores = [r.score for r in _score_once(gate_insp, held, work, -3)]
        gate = float(np.quantile(held_scores, 0.70))
        toml = work / "strip" / f"cascade-{name}.toml"
        toml.write_text(f'[[stage]]\nname = "gate"\ninspector = "{gate_insp.root}"\n'
                        f'[[stage]]\nname = "seg"\nmodel = "{seg_bundle}"\nwhen = "suspicious"\ngate = {gate:.4f}\n')
        casc = open_cascade(toml)
        recs = _score_once(casc, paths, work, -2)
        sent = [bool(r.stages and r.stages[1]["ran"]) for r in recs]
        return casc, {"gate": gate, "gate_good_scores": [float(v) for v in held_scores], "second_stage_ran": sum(sent),
                      "good_passed": sum(sent[:len(good)]), "defects_sent_on": sum(sent[len(good):])}

    casc, full = cascade(insp, "full")
    casc_half, half_info = cascade(half_gate, "half")
    ran, ran_good, gate = full["second_stage_ran"], full["good_passed"], full["gate"]
    log(f"strip: {reps} interleaved rounds of {len(paths)} strips ({len(good)} good), PaDiM alone and two cascades "
        f"(segmenter ran on {ran}/{len(paths)} behind the full-size gate, {half_info['second_stage_ran']} behind "
        f"the half-size one)")
    lat = {k: summary_ms(v, per=len(paths)) for k, v in interleaved(
        {"edge score, strips": lambda i: _score_once(insp, paths, work, i),
         "edge score, strips, registered": lambda i: _score_once(registered, paths, work, 2000 + i),
         "edge score, strips, cascade": lambda i: _score_once(casc, paths, work, 1000 + i),
         "edge score, strips, cascade, half-size gate": lambda i: _score_once(casc_half, paths, work, 3000 + i)},
        reps, warmup=1).items()}
    return {"size": list(size), "bundle_input": [insp.bundle.input.height, insp.bundle.input.width],
            "grid": list(insp.stats.grid), "stats_cell": cell, "inference": inference, "runtime": insp.backend.describe(),
            "register": "off (and auto in the 'registered' row)",
            "auto_registers": registered.registration is not None,
            "auto_registration": registered.describe().get("registration"),
            "n_strips": len(paths), "n_good": len(good), "cascade_second_stage_ran": ran,
            "cascade_good_passed": ran_good, "gate": gate, "cascade_defects_sent_on": full["defects_sent_on"],
            "gate_from": "70th percentile of 20 other good strips' PaDiM scores (passes ~30% of good strips)",
            "gate_good_scores": full["gate_good_scores"],
            "half_gate": {"bundle_input": [half_gate.bundle.input.height, half_gate.bundle.input.width],
                          "grid": list(half_gate.stats.grid), "register": half_gate.describe().get("registration"),
                          **half_info},
            "latency_ms_per_strip": lat, "load_average": [list(load0), list(os.getloadavg())]}


def bench_accuracy(work: Path) -> dict:
    """AUROC with the inference precision fit chose, against fp32, on the folder benchmark's data."""
    root = work / "folder" / "insp"
    data = work / "folder" / "metal"
    items = []
    for p in sorted((data / "test").glob("*/*.png")):
        img = read_image(p)
        gt = (np.zeros(img.shape[:2], bool) if p.parent.name == "good" else
              read_mask(data / "ground_truth" / p.parent.name / f"{p.stem}_mask.png", img.shape[:2]))
        items.append((img, int(p.parent.name != "good"), gt))
    out = {}
    for name, prec in (("used", "auto"), ("fp32", "fp32")):
        insp = Inspector.load(root, inference_precision=prec)
        res = [r for i in range(0, len(items), 8) for r in insp.inspect([it[0] for it in items[i:i + 8]])]
        out[name] = {"compute": insp.backend.compute,
                     "image_auroc": auroc([r.raw_score for r in res], [it[1] for it in items]),
                     "pixel_auroc": auroc(np.concatenate([r.anomaly_map.ravel() for r in res]),
                                          np.concatenate([it[2].ravel() for it in items]))}
    out["image_delta"] = abs(out["used"]["image_auroc"] - out["fp32"]["image_auroc"])
    out["pixel_delta"] = abs(out["used"]["pixel_auroc"] - out["fp32"]["pixel_auroc"])
    return out


def markdown(r: dict) -> str:
    f, p, s, a = r["folder"], r["photo"], r["strip"], r["accuracy"]
    lat = f["latency_ms_per_image"]
    m = r["machine"]
    ok = lambda c: "**met**" if c else "**not met**"  # noqa: E731
    photo_ms = p["latency_ms_per_photo"]["edge score, photo"]["median_ms"]
    strip_ms = s["latency_ms_per_strip"]["edge score, strips"]["median_ms"]
    casc_ms = s["latency_ms_per_strip"].get("edge score, strips, cascade", {}).get("median_ms")
    reg_ms = s["latency_ms_per_strip"].get("edge score, strips, registered", {}).get("median_ms")
    half_ms = s["latency_ms_per_strip"].get("edge score, strips, cascade, half-size gate", {}).get("median_ms")
    hg = s.get("half_gate", {})
    rows = [
        "| what | measured | target | |", "|---|---:|---:|---|",
        f"| `score` over a folder of {f['n_images']} 256-px images ({f.get('n_good', '?')} good), per image | "
        f"{lat['edge score, folder']['median_ms']:.1f} ms | | |",
        (f"| same, its first {f.get('n_small', 16)} images (mostly defects: the folder measured before) | "
         f"{lat['edge score, 16 images']['median_ms']:.1f} ms ({f['speedup_vs_reference_16']:.2f}x the reference) | | |")
        if "edge score, 16 images" in lat else "",
        f"| torch PaDiM reference, batch 1, per image | {lat['torch reference']['median_ms']:.1f} ms | | |",
        f"| reference ÷ `score` | {f['speedup_vs_reference']:.2f}x | ≥ 5x | {ok(f['speedup_vs_reference'] >= 5)} |",
        f"| bare backbone at the precision used, batch 1 / batch 8 per image | "
        f"{lat['bare backbone b1']['median_ms']:.1f} / {lat['bare backbone b8']['median_ms']:.1f} ms | | |",
        f"| one read of the dense fp32 statistics | {lat['stats read, dense fp32']['median_ms']:.1f} ms | | |",
        f"| `score` ÷ (backbone b1 + one read) | {f['total_over_floor']:.2f} | ≤ 1.3 | {ok(f['total_over_floor'] <= 1.3)} |",
        f"| same, floor at batch 8 (as `score` batches) | {f['total_over_floor_b8']:.2f} | | |",
        f"| {p['size'][1]}x{p['size'][0]} photo, one small scratch, per photo | {photo_ms / 1000:.2f} s "
        f"(found {sum(p['found'])}/{len(p['found'])}) | ≤ 1.0 s, found | {ok(photo_ms <= 1000 and all(p['found']))} |",
        *[f"| same, windows of {q['tile']} px ({q['tiling'].split(' windows')[0]} windows) | "
          f"{q['latency_ms_per_photo']['edge score, photo']['median_ms'] / 1000:.2f} s (found {sum(q['found'])}/"
          f"{len(q['found'])}) | ≤ 1.0 s, found | "
          f"{ok(q['latency_ms_per_photo']['edge score, photo']['median_ms'] <= 1000 and all(q['found']))} |"
          for q in r.get("photo_more", [])],
        f"| {s['size'][1]}x{s['size'][0]} strip (bundle {s['bundle_input'][0]}x{s['bundle_input'][1]}), PaDiM "
        f"(--register off), per strip | {strip_ms:.0f} ms | ≤ 120 ms | {ok(strip_ms <= 120)} |",
        (f"| same, fitted with fit's default `--register auto` ("
         f"{'registered' if s.get('auto_registers', True) else 'which found nothing to register on these strips'}) | "
         f"{reg_ms:.0f} ms | ≤ 120 ms | "
         f"{ok(reg_ms <= 120)} |") if reg_ms is not None else "",
        (f"| same, cascade PaDiM gate → segmenter (gate {s.get('gate', 0.7):.2f}: segmenter ran on "
         f"{s.get('cascade_second_stage_ran')}/{s.get('n_strips')} strips, "
         f"{s.get('cascade_good_passed', '?')} of the {s.get('n_good')} good), per strip | {casc_ms:.0f} ms | ≤ 120 ms | "
         f"{ok(casc_ms <= 120)} |") if casc_ms is not None else "",
        (f"| same, cascade with the gate on a {hg['bundle_input'][0]}x{hg['bundle_input'][1]} export of Lite0 (as the "
         f"README recommends; fit's defaults; gate {hg['gate']:.2f}: segmenter ran on {hg['second_stage_ran']}/"
         f"{s['n_strips']} strips, {hg['good_passed']} of the {s['n_good']} good, {hg['defects_sent_on']} of the "
         f"{s['n_strips'] - s['n_good']} defective), per strip | {half_ms:.0f} ms | ≤ 120 ms | {ok(half_ms <= 120)} |")
        if half_ms is not None else "",
        f"| image / pixel AUROC, precision used ({a['used']['compute']}) vs fp32 | {a['image_delta']:.4f} / "
        f"{a['pixel_delta']:.4f} | ≤ 0.002 | {ok(a['image_delta'] <= 0.002 and a['pixel_delta'] <= 0.002)} |",
    ]
    notes = [f"Machine: {m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs, {m.get('memory_gib', '?')} GiB, {m.get('simd', '')}; runtime {f['runtime']}.",
             f"Inference precision (fit's parity check): {f['inference']}",
             f"Distances: {r.get('kernel', '?')}.",
             f"Photo: {p['tiling']}. Strip: statistics grid {s['grid'][0]}x{s['grid'][1]} (--stats-cell "
             f"{s.get('stats_cell', 1)}); the cascade's gate: "
             f"{s.get('gate_from', 'fixed')}; the segmenter has random weights (its time does not depend on them).",
             "Load average (1 min) at the start and end of each section: " + "; ".join(
                 f"{k} {v['load_average'][0][0]:.1f} → {v['load_average'][1][0]:.1f}"
                 for k, v in (("folder", f), ("photo", p), ("strip", s)) if v.get("load_average")) +
             f" (2 cores; at the end {r.get('load_average_at_end', [0])[0]:.1f}).",
             "Each figure is the median of interleaved rounds, end to end through `score_paths` "
             "(decode, model, maps, decision, mask PNG, NG overlay JPEG, fsynced record, CSV)."]
    return "\n".join(r for r in rows if r) + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--strip-bundle", type=Path, default=None)
    ap.add_argument("--seg-bundle", type=Path, default=None, help="a segmenter bundle at the strip's shape")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--photo-tiles", default=None,
                    help="window sizes for the photo, the first in the targets table (default 512; e.g. 512,768)")
    ap.add_argument("--only", default="folder,photo,strip,accuracy")
    ap.add_argument("--name", default=None, help="results file stem (default speed-results[-quick])")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep the data, bundles and fitted inspectors in this folder and reuse those an earlier "
                         "run left there (default: a temporary folder, removed at the end)")
    ap.add_argument("--prepare", action="store_true",
                    help="with --work: write the data and fit the inspectors only, time nothing (fit while the "
                         "machine is busy, time in a quiet moment)")
    ap.add_argument("--merge", type=Path, default=None,
                    help="a results .json whose sections this run does not measure are kept (each has its load)")
    args = ap.parse_args(argv)
    reps = args.reps or (2 if args.quick else 7)
    from edge.padim import kernel

    res: dict = {"machine": machine(), "quick": args.quick, "kernel": kernel.status()}
    if "older source" in res["kernel"]:
        log(f"the Mahalanobis kernel: {res['kernel']}")
    if args.merge:
        kept = json.loads(args.merge.read_text())
        only0 = args.only.split(",")
        res.update({k: v for k, v in kept.items() if k in ("folder", "photo", "photo_more", "strip", "accuracy")
                    and k.split("_")[0] not in only0})
    name = args.name or ("speed-results-quick" if args.quick else "speed-results")

    def save():  # after every section, so a long run that is stopped keeps what it measured
        if args.prepare:
            return
        (HERE / f"{name}.json").write_text(json.dumps(res, indent=2, default=str))

    if args.prepare and args.work is None:
        ap.error("--prepare needs --work DIR (where the fitted inspectors are kept)")
    with tempfile.TemporaryDirectory(prefix="edge-speed-") as tmp:
        work = Path(tmp) if args.work is None else args.work
        if args.work is not None:
            work.mkdir(parents=True, exist_ok=True)
            res["work"] = str(work)
        only = args.only.split(",")
        prep = args.prepare
        if "folder" in only:
            res["folder"] = bench_folder(work, args.quick, reps, prep)
            save()
        if "photo" in only:
            tiles = [int(t) for t in args.photo_tiles.split(",")] if args.photo_tiles else [None]
            res["photo"] = bench_photo(work, args.quick, reps, tiles[0], prep)
            save()
            for t in tiles[1:]:
                res.setdefault("photo_more", []).append(bench_photo(work, args.quick, reps, t, prep))
                save()
        if "strip" in only:
            res["strip"] = bench_strip(work, args.quick, reps, args.strip_bundle, args.seg_bundle, prep)
            save()
        if prep:
            log(f"prepared in {work}: run again with --work {work} (and without --prepare) to time")
            return 0
        if "accuracy" in only and "folder" in only:
            res["accuracy"] = bench_accuracy(work)
    res["load_average_at_end"] = list(os.getloadavg())
    save()
    if all(k in res for k in ("folder", "photo", "strip", "accuracy")):
        md = markdown(res)
        (HERE / f"{name}.md").write_text(md)
        print(md)
    else:
        print(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
