"""Scoring speed of the models `fit` can choose, side by side: #9's target "scoring with the defaults stays
at least as fast as today".

Before #9, every inspector was per-position PaDiM on raw cells (``aligned``, no neighbourhood average).
Now `fit --mode auto` keeps either that same model, with each image registered onto a reference view
first (aligned parts; registration.py), or the position-free one with a 3×3 average (``texture``). This fits each variant on the same demo images, then times `score` over the same
folder end to end (decode, backbone, statistics, maps, masks, records; the product's own score path),
interleaved so that all variants see the same load, and prints each one's time as a ratio to the
before-#9 model.

    python -m benchmarks.model_speed [--quick] [--category DIR] [--out benchmarks/model_speed_results.md]

``--category``: an MVTec-layout folder to time on instead of the demo images, e.g. a positioned part
(registration converges there, as it does on the line; on the demo textures it gives up early).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edge.demo_data import make_category
from edge.fitting import FitOptions, fit_inspector
from edge.inspector import Inspector
from edge.paths import default_backbone_dir

from .run import machine
from .speed import _score_once
from .timing import interleaved, summary_ms

BEFORE = "aligned, no average, not registered (before #9)"
VARIANTS = {  # name -> FitOptions fields
    BEFORE: {"mode": "aligned", "aggregate": 1, "d": 100, "register": "off"},
    "aligned, no average, registered (now aligned's default)": {"mode": "aligned", "aggregate": 1, "d": 100},
    "aligned, 3x3 average (#9's first default)": {"mode": "aligned", "aggregate": 3, "d": 100, "register": "off"},
    "texture, 3x3 average, d=100": {"mode": "texture", "aggregate": None, "d": 100},
    "texture, 3x3 average, every channel, not centred (texture's default before --centre)":
        {"mode": "texture", "centre": "none"},
    "texture, 3x3 average, every channel, centred (now texture's default)": {"mode": "texture"},
}


def run(work: Path, quick: bool, reps: int, category: Path | None = None) -> dict:
    n_train, n_img = (20, 8) if quick else (60, 16)
    data = category or make_category(work / "metal", "metal", n_train, 20, 5, seed=11)
    good = sorted((data / "train" / "good").glob("*.png"))[:n_train]
    paths = sorted((data / "test").rglob("*.png"))[:n_img]
    insps = {}
    for name, fields in VARIANTS.items():
        out = work / f"insp-{len(insps)}"
        fit_inspector(good, out, default_backbone_dir(), FitOptions(**fields), "auto")
        insps[name] = Inspector.load(out)
    auto = work / "insp-auto"
    chosen = fit_inspector(good, auto, default_backbone_dir(), FitOptions(), "auto").choice.mode

    fns = {k: (lambda i, insp=insp: _score_once(insp, paths, work, i)) for k, insp in insps.items()}
    lat = {k: summary_ms(v, per=len(paths)) for k, v in interleaved(fns, reps, warmup=1).items()}
    base = lat[BEFORE]["median_ms"]
    return {"machine": machine(), "n_images": len(paths), "reps": reps,
            "data": str(category) if category else "demo metal (256²)", "runtime": insps[BEFORE].backend.describe(),
            "auto_chose_on_this_data": chosen,
            "variants": {k: {**v, "ratio_to_before": v["median_ms"] / base} for k, v in lat.items()}}


def table(res: dict) -> str:
    rows = ["| model | score, ms/image (median) | p99 | time ÷ before #9 |", "|---|---:|---:|---:|"]
    for k, v in res["variants"].items():
        rows.append(f"| {k} | {v['median_ms']:.1f} | {v['p99_ms']:.1f} | {v['ratio_to_before']:.2f} |")
    return "\n".join(rows)


def _machine(m: dict) -> str:
    return (f"{m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs, {m.get('memory_gib', '?')} GiB, {m.get('simd', '')}, "
            f"onnxruntime {m.get('onnxruntime', '?')}, OpenVINO {m.get('openvino', '?')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and rounds (a smoke run)")
    ap.add_argument("--reps", type=int, default=None, help="interleaved rounds (default 15, quick 3)")
    ap.add_argument("--out", type=Path, default=None, help="write a markdown table (+ .json) here")
    ap.add_argument("--category", type=Path, default=None,
                    help="MVTec-layout folder to fit and time on (default: generated demo images)")
    a = ap.parse_args(argv)
    reps = a.reps or (3 if a.quick else 15)
    with tempfile.TemporaryDirectory(prefix="edge-model-speed-") as tmp:
        res = run(Path(tmp), a.quick, reps, a.category)
    args = (" --quick" if a.quick else "") + (f" --category {a.category}" if a.category else "")
    text = (f"# Scoring speed per model\n\n`python -m benchmarks.model_speed{args}`: "
            f"`score` over {res['n_images']} images of {res['data']}, end to end, {res['reps']} interleaved "
            f"rounds, {res['runtime']}; machine: {_machine(res['machine'])}. `fit --mode auto` chose "
            f"{res['auto_chose_on_this_data']} on these images.\n\n{table(res)}\n")
    print(text)
    if a.out:
        a.out.write_text(text)
        a.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
