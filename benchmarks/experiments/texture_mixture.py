"""Experiment (not a product feature): position-free pooled Gaussian (K=1) vs a K-component mixture on per-position
residuals, dev surfaces (needs scikit-learn).

    python -m benchmarks.experiments.texture_mixture realdata-dev tissue,moon,brick 20 1,4
"""
import glob
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from sklearn.mixture import GaussianMixture

from edge.backends import open_backend
from edge.bundle import load_bundle
from edge.imageio import read_image
from edge.metrics import auroc
from edge.padim.embed import embed, make_spec
from edge.padim.tiling import Tiling

root = Path.home()/".cache/edge-inspect"/sys.argv[1]
cats = sys.argv[2].split(","); n = int(sys.argv[3]); Ks = [int(k) for k in sys.argv[4].split(",")]
bundle = load_bundle(Path.home()/".local/share/edge-inspect/backbones/efficientnet-lite0")
be = open_backend(bundle, "onnxruntime", None, None, None)
spec = make_spec(bundle.taps, (256, 256), 100, 0, 3)
T = Tiling()
def feats(paths):
    out = []
    for i in range(0, len(paths), 8):
        x = T.batch([read_image(p) for p in paths[i:i+8]], bundle.input)
        out.append(embed(be.infer({be.input_name: x}), spec).transpose(0, 2, 1))  # B,P,d
    return np.concatenate(out)
def amap(dist):
    m = cv2.resize(dist.reshape(64, 64).astype(np.float32), (256, 256), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(m, (0, 0), 4)
for cat in cats:
    c = root/cat
    train = sorted(glob.glob(str(c/"train/good/*.png")))[:n]
    tests = sorted(glob.glob(str(c/"test/*/*.png")))
    labels = np.array([0 if "/good/" in t else 1 for t in tests])
    masks = []
    for t in tests:
        if "/good/" in t: masks.append(np.zeros((64, 64), bool))
        else:
            m = cv2.imread(str(c/"ground_truth"/t.split("/")[-2]/f"{Path(t).stem}_mask.png"), 0)
            masks.append(cv2.resize(m, (64, 64), interpolation=cv2.INTER_NEAREST) > 127)
    ftr, fte = feats(train), feats(tests)
    mu = ftr.mean(0)  # P,d
    rtr, rte = ftr - mu, fte - mu
    # per-position scale as product does
    spread = (rtr**2).sum((0, 2)); scale = np.sqrt(spread / spread.mean())
    X = rtr.reshape(-1, 100)
    rng = np.random.default_rng(0)
    sub = X[rng.choice(len(X), min(len(X), 20000), replace=False)]
    out = []
    for K in Ks:
        t0 = time.time()
        g = GaussianMixture(K, covariance_type="full", reg_covar=0.01, random_state=0, max_iter=40).fit(sub)
        def score(r, K=K, g=g, scale=scale):
            # min over components of Mahalanobis distance
            d = []
            for k in range(K):
                L = np.linalg.cholesky(np.linalg.inv(g.covariances_[k]))
                z = (r - g.means_[k]) @ L
                d.append(np.sqrt((z**2).sum(-1)))
            return np.min(d, 0) / scale
        maps = [amap(score(r)) for r in rte]
        s = np.array([m.max() for m in maps])
        sub64 = [cv2.resize(m, (64, 64), interpolation=cv2.INTER_AREA) for m in maps]
        pa = auroc(np.concatenate([x.ravel() for x in sub64]), np.concatenate([x.ravel() for x in masks]))
        out.append(f"K={K} img {auroc(s, labels):.3f} px {pa:.3f} ({time.time()-t0:.0f}s)")
    print(cat, f"N={n}", " | ".join(out), flush=True)
