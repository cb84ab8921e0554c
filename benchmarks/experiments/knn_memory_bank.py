"""Experiment (not a product feature): a PatchCore-style nearest-neighbour memory bank on the product's embedding.

    python -m benchmarks.experiments.knn_memory_bank realdata-dev coins,flower,brick,tissue,moon 20,80 3 2 0.1

args: data group dir under ~/.cache/edge-inspect, categories, Ns, aggregate k, pool, coreset fraction.
"""
import glob
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from edge.backends import open_backend
from edge.bundle import load_bundle
from edge.imageio import read_image
from edge.metrics import auroc
from edge.padim.embed import embed, make_spec
from edge.padim.tiling import Tiling

root = Path.home()/".cache/edge-inspect"/sys.argv[1]
cats = sys.argv[2].split(",")
ns = [int(x) for x in sys.argv[3].split(",")]
agg = int(sys.argv[4]) if len(sys.argv) > 4 else 3
pool = int(sys.argv[5]) if len(sys.argv) > 5 else 2
coreset_frac = float(sys.argv[6]) if len(sys.argv) > 6 else 0.1
bundle = load_bundle(Path.home()/".local/share/edge-inspect/backbones/efficientnet-lite0")
be = open_backend(bundle, "onnxruntime", None, None, None)
spec = make_spec(bundle.taps, (256, 256), None, 0, agg)
T = Tiling()

def feats(paths):
    out = []
    for i in range(0, len(paths), 8):
        imgs = [read_image(p) for p in paths[i:i+8]]
        x = T.batch(imgs, bundle.input)
        e = embed(be.infer({be.input_name: x}), spec)  # B,d,P
        b, d, _ = e.shape
        e = e.reshape(b, d, 64, 64)
        if pool > 1:
            e = e.reshape(b, d, 64//pool, pool, 64//pool, pool).mean(axis=(3, 5))
        out.append(e.reshape(b, d, -1).transpose(0, 2, 1))  # B,P,d
    return np.concatenate(out)

def greedy_coreset(x, k, seed=0):
    rng = np.random.default_rng(seed)
    proj = x @ rng.standard_normal((x.shape[1], 64)).astype(np.float32) / 8
    n = x.shape[0]
    sel = [int(rng.integers(n))]
    dmin = ((proj - proj[sel[0]])**2).sum(1)
    for _ in range(k - 1):
        i = int(np.argmax(dmin)); sel.append(i)
        dmin = np.minimum(dmin, ((proj - proj[i])**2).sum(1))
    return np.array(sel)

def knn(q, bank, bank_sq):
    # q: (M,d) -> min distance
    d2 = (q**2).sum(1)[:, None] - 2 * q @ bank.T + bank_sq[None]
    return np.sqrt(np.maximum(d2.min(1), 0))

def amap_of(dist, g):
    m = cv2.resize(dist.reshape(g, g).astype(np.float32), (256, 256), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(m, (0, 0), 4)

res = []
for cat in cats:
    c = root/cat
    train = sorted(glob.glob(str(c/"train/good/*.png")))
    tests = sorted(glob.glob(str(c/"test/*/*.png")))
    labels = np.array([0 if "/good/" in t else 1 for t in tests])
    ft = feats(tests)
    g = int(np.sqrt(ft.shape[1]))
    masks = []
    for t in tests:
        if "/good/" in t:
            masks.append(np.zeros((256, 256), bool))
        else:
            kind, name = t.split("/")[-2], Path(t).stem
            m = cv2.imread(str(c/"ground_truth"/kind/f"{name}_mask.png"), 0)
            masks.append(cv2.resize(m, (256, 256), interpolation=cv2.INTER_NEAREST) > 127)
    for n in ns:
        t0 = time.time()
        ftr = feats(train[:n])
        bank = ftr.reshape(-1, ftr.shape[-1])
        if coreset_frac < 1:
            bank = bank[greedy_coreset(bank, int(len(bank)*coreset_frac))]
        bsq = (bank**2).sum(1)
        maps = [amap_of(knn(f, bank, bsq), g) for f in ft]
        s = np.array([m.max() for m in maps])
        ia = auroc(s, labels)
        sub = [cv2.resize(m, (64, 64), interpolation=cv2.INTER_AREA) for m in maps]
        sm = [cv2.resize(m.astype(np.uint8), (64, 64), interpolation=cv2.INTER_NEAREST) for m in masks]
        pa = auroc(np.concatenate([x.ravel() for x in sub]), np.concatenate([x.ravel() for x in sm]).astype(bool))
        res.append((cat, n, ia, pa))
        print(f"{cat} N={n} img {ia:.3f} px {pa:.3f} bank {len(bank)} {time.time()-t0:.0f}s", flush=True)
for n in ns:
    r = [x for x in res if x[1] == n]
    print(f"MEAN N={n} img {np.mean([x[2] for x in r]):.3f} px {np.mean([x[3] for x in r]):.3f}")
