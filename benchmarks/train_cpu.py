"""Benchmark: `edge-export train` on CPU, and how the trained models do on a folder they never saw.

    python -m benchmarks.train_cpu                  # casting demo data, 256 px, segmenter + classifier
    python -m benchmarks.train_cpu --epochs 4 --kind segmenter
    python -m benchmarks.train_cpu --quick          # 64 px random tiny models: checks it runs, numbers mean nothing

Data: `edge-inspect demo-data --texture casting --train 60 --test-good 20 --per-defect 8` (112 images,
4 defect kinds) to train on, and a second folder of the same part with another seed to evaluate on.
For each kind it trains through the CLI (a fresh process, `--threads`), then runs
`edge-inspect eval UNSEEN --model BUNDLE` and reports:
  time      wall seconds and CPU seconds of training (from the manifest); CPU seconds / threads is
            what the wall time would be on an otherwise idle machine with that many cores, and the
            load average before and after says how idle this one was;
  validation  the manifest's figures on the held-out split the trainer used;
  unseen    image AUROC, F1 and (segmenter) Dice from eval's metrics.json on the unseen folder.
Results: a table on stdout and train_results.json in --out (default: the work dir).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str], log) -> None:
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def _demo(out: Path, seed: int, size: int, quick: bool) -> Path:
    from edge.demo_data import make_category

    n = dict(n_train=8, n_test_good=4, n_per_defect=2) if quick else dict(n_train=60, n_test_good=20, n_per_defect=8)
    return make_category(out, "casting", size=(size, size), seed=seed, **n)


def bench_kind(kind: str, train_dir: Path, unseen: Path, work: Path, args, log) -> dict:
    bundle = work / f"{kind}-bundle"
    cmd = ["edge-export", "train", kind, str(train_dir), "--out", str(bundle), "--epochs", str(args.epochs),
           "--size", str(args.size), "--threads", str(args.threads), "--seed", str(args.seed)]
    if args.quick:
        cmd += ["--weights", "none", "--width-scale", "0.25", "--batch-size", "4"]
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    _run(cmd, log)
    wall = time.perf_counter() - t0
    load1 = os.getloadavg()[0]
    m = json.loads((bundle / "manifest.json").read_text())
    tr, cal = m["training"], m["calibration"]
    ev = work / f"{kind}-eval"
    _run(["edge-inspect", "eval", str(unseen), "--model", str(bundle), "--out", str(ev)], log)
    met = json.loads((ev / "metrics.json").read_text())
    return {
        "kind": kind, "n_images": tr["data"]["n_images"], "epochs": len(tr["history"]), "best_epoch": tr["best_epoch"],
        "train_seconds": tr["seconds"], "train_cpu_seconds": tr["cpu_seconds"], "threads": args.threads,
        "idle_estimate_seconds": round(tr["cpu_seconds"] / args.threads, 1), "command_seconds": round(wall, 1),
        "load_before": round(load0, 1), "load_after": round(load1, 1),
        "per_epoch": tr["history"], "validation": cal["validation"],
        "unseen": {k: met.get(k) for k in ("image_auroc", "f1", "macro_f1", "dice", "iou") if k in met},
        "n_unseen": met.get("n_images"),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run; numbers mean nothing")
    ap.add_argument("--kind", action="append", choices=["segmenter", "classifier", "multitask"],
                    help="only these kinds [default: segmenter and classifier]")
    ap.add_argument("--epochs", type=int, default=None, help="[default: the trainer's own]")
    ap.add_argument("--size", type=int, default=None, help="[default: 256; 64 with --quick]")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, help="keep data and bundles here (default: a temp dir)")
    ap.add_argument("--out", type=Path, help="where train_results.json goes (default: the work dir)")
    args = ap.parse_args(argv)
    if args.epochs is None:
        from export.training.request import TrainRequest

        args.epochs = 1 if args.quick else TrainRequest.__dataclass_fields__["epochs"].default
    args.size = args.size or (64 if args.quick else 256)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="edge-train-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    train_dir = _demo(work / "train-data", 0, args.size, args.quick)
    unseen = _demo(work / "unseen-data", 1, args.size, args.quick)
    rows = [bench_kind(k, train_dir, unseen, work, args, log) for k in (args.kind or ["segmenter", "classifier"])]
    out = args.out or work
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_results.json").write_text(json.dumps({"size": args.size, "quick": args.quick, "rows": rows},
                                                       indent=2))
    print(f"{'kind':<11} {'imgs':>4} {'ep':>3} {'wall s':>7} {'CPU s':>7} {'idle est':>8} {'load':>9}  "
          f"{'val F1':>6} {'val Dice':>8}  {'unseen AUROC':>12} {'F1':>5} {'Dice':>5}")
    for r in rows:
        v, u = r["validation"], r["unseen"]

        def f(x):
            return "  -  " if x is None else f"{x:.3f}"
        print(f"{r['kind']:<11} {r['n_images']:>4} {r['epochs']:>3} {r['train_seconds']:>7.0f} "
              f"{r['train_cpu_seconds']:>7.0f} {r['idle_estimate_seconds']:>8.0f} "
              f"{r['load_before']:>4}-{r['load_after']:<4}  {f(v.get('f1')):>6} {f(v.get('dice')):>8}  "
              f"{f(u.get('image_auroc')):>12} {f(u.get('f1')):>5} {f(u.get('dice')):>5}")
    print(f"results: {out / 'train_results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
