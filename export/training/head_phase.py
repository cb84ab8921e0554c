"""The heads-only phase: with the pretrained trunk frozen, its features of every training image, in
every augmentation variant, are computed once, and the new heads train on them for many cheap
epochs (on Lite0 at 256 px a heads-only step costs about a seventh of a full one on a CPU, where
the trunk's backward pass dominates). The whole network then fine-tunes from there.

Built-in models only: the split between trunk and heads is known for the EfficientNet-Lite
classifier, the FPN segmenter and the multitask model; a module:factory model skips this phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..architectures.efficientnet_lite import EfficientNetLite
from ..architectures.heads import LiteFPNSegmenter, LiteMultiTask
from ..errors import TrainingError
from ..tta import FLIPS, mean_unflipped
from .data import Variant, apply_variant

MAX_CACHE_BYTES = 4 * 1024**3
CACHE_BATCH = 16

Features = list[torch.Tensor]


@dataclass(frozen=True)
class Split:
    """A built-in network cut where its pretrained trunk ends."""

    trunk: Callable[[torch.Tensor], Features]  # images → the features the heads read
    heads: Callable[[Features], tuple[torch.Tensor, ...]]  # → the model's outputs, in order


def split_network(net: nn.Module) -> Split | None:
    if isinstance(net, LiteFPNSegmenter):
        def seg(feats: Features):
            mask = net.seg_head(net.fpn(feats))
            return (net.encoder.head(feats[-1]), mask) if isinstance(net, LiteMultiTask) else (mask,)
        return Split(lambda x: net._pyramid(x)[0], seg)  # the last pyramid level is the trunk's output
    if isinstance(net, EfficientNetLite) and net.has_head:
        return Split(lambda x: [net.features(x)], lambda f: (net.head(f[0]),))
    return None


@dataclass(frozen=True)
class FeatureCache:
    """Trunk features (float16) of N images in each variant, and the masks moved with them."""

    feats: tuple[Features, ...]  # per variant: per level (N, C, h, w)
    masks: tuple[torch.Tensor | None, ...]  # per variant: (N, H, W) uint8 mask classes
    variants: tuple[Variant, ...]

    @property
    def nbytes(self) -> int:
        return sum(f.numel() * f.element_size() for fs in self.feats for f in fs)

    def batch(self, idx: np.ndarray, which: np.ndarray) -> tuple[Features, torch.Tensor | None]:
        """Features of images ``idx``, each in variant ``which[i]``, as float32."""
        levels = len(self.feats[0])
        feats = [torch.stack([self.feats[w][j][i] for i, w in zip(idx, which)]).float() for j in range(levels)]
        if self.masks[0] is None:
            return feats, None
        return feats, torch.stack([self.masks[w][i] for i, w in zip(idx, which)]).long()


def build_cache(split: Split, x: np.ndarray, mask: np.ndarray | None, variants: list[Variant],
                progress: Callable[[int], None] | None = None) -> FeatureCache:
    """Run the frozen trunk once per image and variant (eval mode, no gradients)."""
    feats, masks = [], []
    with torch.no_grad():
        probe = split.trunk(torch.from_numpy(x[:1]))
        need = len(x) * len(variants) * sum(f[0].numel() * 2 for f in probe)
        if need > MAX_CACHE_BYTES:
            raise TrainingError(f"the heads-only phase would keep {need / 1024**3:.1f} GB of trunk features "
                                f"({len(x)} images x {len(variants)} augmentation variants)",
                                hint="use --head-epochs 0 (train the whole network from the start), "
                                     "fewer variants (--augment none or flips) or a smaller --size")
        for v in variants:
            levels: list[list[torch.Tensor]] = []
            for i in range(0, len(x), CACHE_BATCH):
                out = split.trunk(apply_variant(torch.from_numpy(x[i:i + CACHE_BATCH]), v))
                if not levels:
                    levels = [[] for _ in out]
                for j, f in enumerate(out):
                    levels[j].append(f.half())
                if progress:
                    progress(1)
            feats.append([torch.cat(lv) for lv in levels])
            masks.append(None if mask is None else apply_variant(torch.from_numpy(mask), v).contiguous())
    return FeatureCache(tuple(feats), tuple(masks), tuple(variants))


def cache_steps(n: int, n_variants: int) -> int:
    """Trunk batches :func:`build_cache` runs (for the progress bar)."""
    return n_variants * -(-n // CACHE_BATCH)


def tta_variants() -> list[Variant]:
    """The cache variants of export/tta.py's flips, in its order."""
    return [(lr, ud, 0) for lr, ud in FLIPS]


def head_outputs(split: Split, cache: FeatureCache, tta: bool = False, batch: int = 16
                 ) -> list[tuple[torch.Tensor, ...]]:
    """The heads' outputs on the images as they are (the cache's first variant), or with ``tta``
    the mean over the flips (a cache of :func:`tta_variants`), as the exported model answers."""
    n = len(cache.feats[0][0])
    if tta and cache.variants != tuple(tta_variants()):
        raise TrainingError("internal: test-time flips need a cache of the four flips")
    outs = []
    with torch.no_grad():
        for i in range(0, n, batch):
            idx = np.arange(i, min(i + batch, n))
            per = [split.heads(cache.batch(idx, np.full(len(idx), k, np.int64))[0])
                   for k in range(len(FLIPS) if tta else 1)]
            outs.append(mean_unflipped(per) if tta else per[0])
    return outs
