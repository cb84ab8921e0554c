"""Benchmark: the edge runtime against a torch PaDiM reference, on one machine, in one run.

    python -m benchmarks.run            # full: 256x256, d=100, N=50 and 500, ResNet18 and Lite0
    python -m benchmarks.run --quick    # tiny smoke run (64x64, d=20): checks it works, not speed

Measured for each backbone, on the same images:
  scoring   per-image latency (median, p99; batch 1) and throughput (batch 8) for every backend /
            precision of the edge runtime, and for the torch reference; the reference / ours ratio;
  floor     the bare backbone alone, and one read of the fitted statistics as scoring stores them;
            ours / (backbone + read) says how close scoring comes to what it cannot avoid;
  fit       images/s and peak RSS for each N, ours and the reference, each in a fresh process;
  accuracy  image and pixel AUROC of ours and of the reference on the demo data.
Everything is interleaved (see timing.py). Results: a table on stdout, results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from edge.demo_data import make_category
from edge.imageio import read_image, read_mask
from edge.inspector import Inspector
from edge.metrics import auroc
from edge.padim import kernel
from edge.preprocess import batch_tensor

from .backbones import BACKBONES
from .ov_runner import OvRunner, cpu_precisions
from .report import markdown, targets
from .timing import interleaved, make_reader, memory_bandwidth_gbs, summary_ms
from .torch_reference import TorchPadim

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    size: int = 256
    d: int = 100
    n_fit: tuple[int, ...] = (50, 500)
    n_test_good: int = 40
    n_per_defect: int = 15  # x 4 defect kinds
    texture: str = "metal"
    reps: int = 100  # batch-1 repetitions per contender
    reps_batch: int = 12
    batch: int = 8
    archs: tuple[str, ...] = ("resnet18", "efficientnet-lite0")


QUICK = Config(size=64, d=10, n_fit=(12, 24), n_test_good=4, n_per_defect=2, reps=3, reps_batch=2, batch=2)


def machine() -> dict:
    info = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__}
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines()
        kv = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
        flags = kv.get("Flags", "").split()
        info.update({"cpu": kv.get("Model name", "?"), "cpus": kv.get("CPU(s)", "?"),
                     "threads_per_core": kv.get("Thread(s) per core", "?"), "l2": kv.get("L2 cache", "?"),
                     "l3": kv.get("L3 cache", "?"), "hypervisor": kv.get("Hypervisor vendor", "none"),
                     "simd": " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16")
                                      if f in flags)})
    except (OSError, subprocess.CalledProcessError):
        info["cpu"] = platform.processor() or "?"
    try:
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    import onnxruntime
    import openvino

    info["onnxruntime"] = onnxruntime.__version__
    info["openvino"] = openvino.__version__
    return info


def run_fit(method: str, arch: str, bundle: Path, images: Path, n: int, d: int, out: Path) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.fit_worker", method, "--arch", arch, "--bundle", str(bundle),
           "--images", str(images), "--n", str(n), "--d", str(d), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent)
    if r.returncode != 0:
        raise RuntimeError(f"fit worker failed ({' '.join(cmd)}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def load_test_set(root: Path) -> list[tuple[np.ndarray, int, np.ndarray]]:
    items = []
    for p in sorted((root / "test").glob("*/*.png")):
        img = read_image(p)
        if p.parent.name == "good":
            items.append((img, 0, np.zeros(img.shape[:2], bool)))
        else:
            items.append((img, 1, read_mask(root / "ground_truth" / p.parent.name / f"{p.stem}_mask.png",
                                            img.shape[:2])))
    return items


def open_variants(root: Path) -> dict[str, Inspector]:
    """One inspector per backend/precision, sharing one copy of the statistics.

    onnxruntime and OpenVINO f32 are edge's own backends, as `edge-inspect score` opens them;
    OpenVINO's bf16/f16 (the CPU's reduced precisions) go through benchmarks' OvRunner. All hold
    the Mahalanobis factors as `auto` picks (fp16 on this kind of CPU); one more onnxruntime row
    holds them in fp32, to show what fp16 factors change.
    """
    out = {"onnxruntime fp32": Inspector.load(root, "onnxruntime")}
    base = out["onnxruntime fp32"]
    if kernel.library() is not None and base.factor_precision != "fp32":
        out["onnxruntime fp32, fp32 factors"] = Inspector(root, base.bundle, base.stats, base.calibration, base.post,
                                                          base.manifest, base.backend, factor_precision="fp32")
    model = base.bundle.root / base.bundle.model("onnx").path
    taps = [t.name for t in base.bundle.taps]
    ov = Inspector.load(root, "openvino", verify=False).backend
    if not set(taps) <= set(ov.output_names):
        # edge's OpenVINO backend names outputs with get_any_name(), which OpenVINO may take from a
        # merged Pad tensor (Lite0); the fix is in flight elsewhere, until then the runner stands in
        ov = OvRunner(model, taps, "f32")
    out["openvino f32"] = Inspector(root, base.bundle, base.stats, base.calibration, base.post, base.manifest, ov)
    for prec in cpu_precisions()[1:]:
        out[f"openvino {prec}"] = Inspector(root, base.bundle, base.stats, base.calibration, base.post,
                                            base.manifest, OvRunner(model, taps, prec))
    return out


def accuracy(score_batch, items, batch: int) -> dict:
    scores, maps = [], []
    for i in range(0, len(items), batch):
        s, m = score_batch([it[0] for it in items[i:i + batch]])
        scores += list(s)
        maps += list(m)
    labels = [it[1] for it in items]
    return {"image_auroc": auroc(scores, labels),
            "pixel_auroc": auroc(np.concatenate([m.ravel() for m in maps]),
                                 np.concatenate([it[2].ravel() for it in items])),
            "_maps": maps}


def bench_arch(arch: str, cfg: Config, work: Path, data: Path, log) -> dict:
    size = (cfg.size, cfg.size)
    log(f"[{arch}] exporting the backbone bundle")
    bb = BACKBONES[arch](work / arch / "bundle", size)
    res: dict = {"arch": arch, "weights": bb.weights, "fit": {}}

    for n in cfg.n_fit:
        for method in ("ours", "reference"):
            log(f"[{arch}] fit {method}, N={n} (fresh process)")
            out = work / arch / (f"ours-{n}" if method == "ours" else f"ref-{n}.pt")
            res["fit"][f"{method} N={n}"] = run_fit(method, arch, bb.bundle, data / "train" / "good", n, cfg.d, out)

    nmax = max(cfg.n_fit)
    variants = open_variants(work / arch / f"ours-{nmax}")
    ort = variants["onnxruntime fp32"]
    res["backends"] = {name: f"{type(i.backend).__module__}.{type(i.backend).__name__}" for name, i in variants.items()}
    stats, spec_in = ort.stats, ort.bundle.input
    ref = TorchPadim(bb.module, stats.channel_idx)
    ref.load_state(torch.load(work / arch / f"ref-{nmax}.pt"))
    res["grid"] = list(stats.grid)
    res["d"] = stats.d
    scorer = stats.scorer(ort.factor_precision)  # None without the native kernel: numpy bands
    # fp16 pairs are read as fp32 words (same bytes) so the gemv reader streams them at BLAS speed
    held = ([a.view(np.float32) for a in scorer.buffers] if scorer else stats.block_rows.bands + [stats.mean])
    res["scoring_layout"] = (f"native kernel, {scorer.precision} row blocks" if scorer else "numpy fp32 bands")
    res["stats_bytes"] = {"scoring_layout": int(sum(a.nbytes for a in held)),
                          "dense_fp32": int(stats.factor.nbytes + stats.mean.nbytes),
                          "reference_inv_cov": ref.stats_bytes}

    log(f"[{arch}] accuracy on {len(items := load_test_set(data))} test images")
    acc = {}
    for name, insp in variants.items():
        acc[f"ours {name}"] = accuracy(
            lambda imgs, insp=insp: tuple(zip(*[(r.raw_score, r.anomaly_map) for r in insp.inspect(imgs)])),
            items, cfg.batch)
    acc["torch reference"] = accuracy(lambda imgs: ref.score(batch_tensor(imgs, spec_in))[::-1], items, cfg.batch)
    ours_maps, ref_maps = acc["ours onnxruntime fp32"]["_maps"], acc["torch reference"]["_maps"]
    res["map_rel_diff"] = float(np.mean([np.abs(a - b).mean() / np.abs(b).mean() for a, b in zip(ours_maps, ref_maps)]))
    res["accuracy"] = {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")} for k, v in acc.items()}
    del acc, ours_maps, ref_maps

    imgs = [it[0] for it in items]
    x1 = batch_tensor(imgs[:1], spec_in)
    fns, stages = {}, {name: [] for name in variants}
    for name, insp in variants.items():
        def run_ours(i, insp=insp, name=name):
            stages[name].append(insp.inspect([imgs[i % len(imgs)]])[0].timings_ms)
        fns[f"ours {name}"] = run_ours
        fns[f"bare backbone {name}"] = lambda i, be=insp.backend: be.infer({be.input_name: x1})
    fns["torch reference"] = lambda i: ref.score(batch_tensor([imgs[i % len(imgs)]], spec_in))
    xt = torch.from_numpy(x1)

    def bare_torch(i):
        with torch.no_grad():
            return bb.module(xt)

    fns["bare backbone torch"] = bare_torch
    # the floor the issue defines: one read of the dense fp32 statistics (d x d per position)
    fns["stats read, dense fp32"] = make_reader([stats.factor, stats.mean])
    # and the bytes scoring actually reads, in the layout it holds them
    fns["stats read, as scoring holds them"] = make_reader(held)
    log(f"[{arch}] latency, batch 1: {cfg.reps} interleaved rounds of {len(fns)} contenders")
    lat = interleaved(fns, cfg.reps)
    res["latency"] = {k: summary_ms(v) for k, v in lat.items()}
    res["stages_ms"] = {name: {k: float(np.median([t[k] for t in ts])) for k in ts[0]} for name, ts in stages.items()}

    b = cfg.batch
    groups = [imgs[i * b % len(imgs):i * b % len(imgs) + b] for i in range(len(imgs) // b)]
    tfns = {f"ours {name}": (lambda i, insp=insp: insp.inspect(groups[i % len(groups)])) for name, insp in variants.items()}
    tfns["torch reference"] = lambda i: ref.score(batch_tensor(groups[i % len(groups)], spec_in))
    log(f"[{arch}] throughput, batch {b}: {cfg.reps_batch} interleaved rounds")
    thr = interleaved(tfns, cfg.reps_batch, warmup=1)
    res["throughput"] = {k: {"images_per_s": b / float(np.median(v)), **summary_ms(v, per=b)} for k, v in thr.items()}

    ref_ms = res["latency"]["torch reference"]["median_ms"]
    read_ms = res["latency"]["stats read, dense fp32"]["median_ms"]
    own_read_ms = res["latency"]["stats read, as scoring holds them"]["median_ms"]
    res["ratios"] = {}
    for name in variants:
        ours_ms = res["latency"][f"ours {name}"]["median_ms"]
        bare_ms = res["latency"][f"bare backbone {name}"]["median_ms"]
        res["ratios"][name] = {"speedup_vs_reference": ref_ms / ours_ms,
                               "total_over_floor": ours_ms / (bare_ms + read_ms),
                               "floor_ms": bare_ms + read_ms,
                               "total_over_own_read": ours_ms / (bare_ms + own_read_ms)}
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny smoke run; numbers mean nothing")
    ap.add_argument("--arch", action="append", choices=sorted(BACKBONES), help="only these backbones")
    ap.add_argument("--workdir", type=Path, help="keep bundles, data and fits here (default: a temp dir)")
    ap.add_argument("--out", type=Path, help="where results.json/.md go (default: benchmarks/, or the workdir "
                                             "with --quick)")
    a = ap.parse_args(argv)
    cfg = QUICK if a.quick else Config()
    if a.arch:
        cfg = Config(**{**asdict(cfg), "archs": tuple(a.arch)})
    work = a.workdir or Path(tempfile.mkdtemp(prefix="edge-inspect-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out = a.out or (work if a.quick else HERE)
    t0 = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    try:
        data = work / "data"
        if not (data / "train").exists():
            log(f"making demo data: {max(cfg.n_fit)} good train images, {cfg.n_test_good} good + "
                f"{4 * cfg.n_per_defect} defective test images, {cfg.size}x{cfg.size}")
            make_category(data, cfg.texture, max(cfg.n_fit), cfg.n_test_good, cfg.n_per_defect,
                          size=(cfg.size, cfg.size), seed=0)
        results = {"config": asdict(cfg), "quick": a.quick, "machine": machine(),
                   "memory_bandwidth_gbs": memory_bandwidth_gbs(64 if a.quick else 1024),
                   "archs": {arch: bench_arch(arch, cfg, work, data, log) for arch in cfg.archs}}
        results["targets"] = targets(results)
        results["seconds"] = time.perf_counter() - t0
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        md = markdown(results)
        (out / "results.md").write_text(md)
        print(md)
        log(f"wrote {out / 'results.json'} and {out / 'results.md'}")
    finally:
        if a.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
