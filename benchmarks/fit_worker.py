"""One fit in a fresh process, so its peak RSS (ru_maxrss) is its own.

    python -m benchmarks.fit_worker ours      --bundle B --images DIR --n N --d D --out INSPECTOR_DIR
    python -m benchmarks.fit_worker reference --arch A --size H W --bundle B --images DIR --n N --d D --out FILE.pt

Prints one JSON line: n, seconds, images_per_s, peak_rss_mb (VmHWM), rss_before_mb (after imports and
model construction, before the first image). ``ours`` imports no torch, like the line device.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path


def _peak_rss_mb() -> float:
    """VmHWM: this process's own peak RSS. (ru_maxrss would do, but Linux carries the parent's
    peak into a forked child's ru_maxrss, so a big parent would mask a small child.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def fit_ours(a) -> dict:
    from edge.fitting import FitOptions, fit_inspector

    paths = sorted(Path(a.images).glob("*.png"))[: a.n]
    before = _current_rss_mb()
    t0 = time.perf_counter()
    fit_inspector(paths, a.out, a.bundle, FitOptions(d=a.d, batch_size=a.batch))
    return {"seconds": time.perf_counter() - t0, "rss_before_mb": before, "n": len(paths)}


def fit_reference(a) -> dict:
    import numpy as np
    import torch

    from edge.bundle import load_bundle
    from edge.imageio import read_image
    from edge.padim.embed import make_spec
    from edge.preprocess import batch_tensor

    from .backbones import module_for
    from .torch_reference import TorchPadim

    bundle = load_bundle(a.bundle)
    spec = make_spec(bundle.taps, (bundle.input.height, bundle.input.width), a.d, seed=0)
    ref = TorchPadim(module_for(a.arch), spec.channel_idx)
    paths = sorted(Path(a.images).glob("*.png"))[: a.n]

    def batches():
        for i in range(0, len(paths), a.batch):
            yield batch_tensor([read_image(p) for p in paths[i:i + a.batch]], bundle.input)

    before = _current_rss_mb()
    t0 = time.perf_counter()
    ref.fit(batches())
    torch.save(ref.state(), a.out)
    assert np.isfinite(ref.inv_cov.numpy()).all()
    return {"seconds": time.perf_counter() - t0, "rss_before_mb": before, "n": len(paths)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("method", choices=["ours", "reference"])
    ap.add_argument("--arch", default="")
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    r = fit_ours(a) if a.method == "ours" else fit_reference(a)
    r["images_per_s"] = r["n"] / r["seconds"]
    r["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(r))


if __name__ == "__main__":
    main()
