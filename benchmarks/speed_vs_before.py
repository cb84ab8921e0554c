"""#9's speed target as the issue words it: "scoring with the defaults stays at least as fast as today",
the product now against the product as it was when #9 was filed, side by side on the same images.

    python -m benchmarks.speed_vs_before                          # the dev set's coins and brick, REV f20394a
    python -m benchmarks.speed_vs_before --category DIR --rev REV --out benchmarks/speed_vs_before_results.md

For each category: the code at REV is checked out into a temporary git worktree (its native kernel built there
with this Python), each product fits its own inspector on the same good images with its own defaults
(`python -m edge fit --good DIR`), then each times its own `score_paths` (what `edge-inspect score` runs, with
its own default backend; today's also on onnxruntime, the earlier default) over the same test images. The
sides run in separate processes, alternated ROUNDS times, each call timed after one warm-up call in its
process; the result is the median per image and the
ratio now / REV. `benchmarks.model_speed` is the other view: every model on today's code, so it isolates
what a model costs (registration, every channel) from what the rest of the product gained since.
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

import numpy as np

from .run import machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BEFORE_9 = "f20394a"  # the product before #9 (benchmarks/accuracy_results_before_9.json)

CHILD = r"""
import json, shutil, sys, time
from pathlib import Path
from edge.inspector import Inspector
from edge.scoring import score_paths
insp_dir, images, out, calls = Path(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4])
insp = Inspector.load(insp_dir, sys.argv[5]) if len(sys.argv) > 5 else Inspector.load(insp_dir)
paths = [Path(p) for p in images]
times = []
for i in range(calls + 1):
    o = out / f"run-{i}"
    t = time.perf_counter()
    score_paths(insp, paths, o, batch_size=8)
    times.append(time.perf_counter() - t)
    shutil.rmtree(o, ignore_errors=True)
print(json.dumps({"seconds": times[1:], "backend": getattr(insp.backend, "name", "?")}))
"""


def _run(tree: Path, args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    r = subprocess.run([sys.executable, *args], cwd=tree, env=env, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} in {tree} failed:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    return r


def checkout(rev: str, where: Path) -> Path:
    tree = where / f"rev-{rev}"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(tree), rev], check=True,
                   capture_output=True)
    _run(tree, ["setup.py", "-q", "build_ext", "--inplace"])  # its own kernel (it falls back to numpy without)
    return tree


def measure(category: Path, trees: dict[str, Path], work: Path, n_images: int, rounds: int, calls: int) -> dict:
    good = category / "train" / "good"
    images = [str(p) for p in sorted((category / "test").rglob("*.png"))[:n_images]]
    insp = {}
    for name, tree in trees.items():
        insp[name] = work / f"{category.name}-{name}"
        _run(tree, ["-m", "edge", "fit", "--good", str(good), "--out", str(insp[name])])
        chosen = json.loads((insp[name] / "manifest.json").read_text()).get("padim", {}).get("mode", "aligned")
        print(f"[{category.name}] {name}: fitted ({chosen})", flush=True)
    # today's product also on the backend the earlier one used by default, to show what the backend gives
    sides = {"before": (trees["before"], insp["before"], []), "now": (trees["now"], insp["now"], []),
             "now, onnxruntime": (trees["now"], insp["now"], ["onnxruntime"])}
    secs: dict[str, list[float]] = {k: [] for k in sides}
    backend = {}
    load0 = os.getloadavg()
    for _ in range(rounds):
        for name, (tree, where, extra) in sides.items():
            r = _run(tree, ["-c", CHILD, str(where), json.dumps(images), str(work / "out"), str(calls), *extra])
            res = json.loads(r.stdout.strip().splitlines()[-1])
            secs[name] += res["seconds"]
            backend[name] = res["backend"]
    ms = {k: float(np.median(v)) * 1000 / len(images) for k, v in secs.items()}
    return {"category": category.name, "n_images": len(images), "ms_per_image": ms, "backend": backend,
            "ratio_now_over_before": ms["now"] / ms["before"],
            "ratio_now_onnxruntime_over_before": ms["now, onnxruntime"] / ms["before"],
            "calls": {k: len(v) for k, v in secs.items()},
            "load_average": [list(load0), list(os.getloadavg())]}


def _machine(m: dict) -> str:
    return f"{m.get('cpu', '?')}, {m.get('cpus', '?')} CPUs, {m.get('memory_gib', '?')} GiB, {m.get('simd', '')}"


def markdown(res: dict) -> str:
    lines = [f"# `score` with the defaults, now against the product before #9 ({res['rev']})", "",
             f"`{res['command']}` on {res['when']}; machine: {_machine(res['machine'])}.", "",
             "| category | images | before #9: ms / image (backend) | now: ms / image (backend) | now ÷ before | "
             "now on onnxruntime: ms / image | ÷ before |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in res["runs"]:
        m, b = r["ms_per_image"], r["backend"]
        lines.append(f"| {r['category']} | {r['n_images']} | {m['before']:.1f} ({b['before']}) | {m['now']:.1f} "
                     f"({b['now']}) | {r['ratio_now_over_before']:.2f} | {m['now, onnxruntime']:.1f} | "
                     f"{r['ratio_now_onnxruntime_over_before']:.2f} |")
    lines += ["", "Each product fitted its own inspector with its own defaults and scored with its own defaults "
              "(backend, batch 8); medians over " + ", ".join(f"{r['calls']['now']} calls" for r in res["runs"][:1])
              + " per side, the two sides alternated in separate processes. Load average (1 min): " +
              "; ".join(f"{r['category']} {r['load_average'][0][0]:.1f} → {r['load_average'][1][0]:.1f}"
                        for r in res["runs"]) + "."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    dev = Path.home() / ".cache" / "edge-inspect" / "realdata-dev"
    ap.add_argument("--category", type=Path, action="append", default=None,
                    help="MVTec-layout folders (default: the dev set's coins, a positioned part, and brick, a surface)")
    ap.add_argument("--rev", default=BEFORE_9, help=f"the product to compare with (default {BEFORE_9}: before #9)")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--calls", type=int, default=3, help="timed calls per process (after one warm-up call)")
    ap.add_argument("--out", type=Path, default=None, help="markdown (+ .json) results")
    a = ap.parse_args(argv)
    cats = a.category or [dev / "coins", dev / "brick"]
    with tempfile.TemporaryDirectory(prefix="speed-vs-before-") as tmp:
        work = Path(tmp)
        before = checkout(a.rev, work)
        try:
            trees = {"before": before, "now": REPO}
            runs = [measure(c, trees, work, a.images, a.rounds, a.calls) for c in cats]
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], capture_output=True)
    res = {"command": "python -m benchmarks.speed_vs_before " + " ".join(argv if argv is not None else sys.argv[1:]),
           "rev": a.rev, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
           "runs": runs}
    md = markdown(res)
    print(md)
    if a.out:
        a.out.write_text(md)
        a.out.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
