"""Supervised models line engineers train: OK/NG classifier, FPN segmenter, classifier + segmenter.

All three sit on an EfficientNet-Lite trunk (:class:`EfficientNetLite`). State-dict keys:

* ``LiteClassifier``: exactly the trunk's own keys with its ``_fc`` resized to the number of
  classes, i.e. what ``efficientnet_lite_pytorch.EfficientNet.from_pretrained(arch, num_classes=K)``
  saves after fine-tuning.
* ``LiteFPNSegmenter``: ``encoder.*`` (trunk, no head), ``fpn.lateral.{0..3}``, ``fpn.smooth``,
  ``seg_head.{0,1,3}`` (3x3 conv, BN, ReLU, 1x1 conv to the classes).
* ``LiteMultiTask``: as the segmenter, but ``encoder.*`` includes the classifier head
  (``encoder._conv_head``, ``encoder._bn1``, ``encoder._fc``) giving the class logits.

Masks come out at stride 4 (a quarter of the input size); the manifest records that stride.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .efficientnet_lite import EfficientNetLite

MASK_STRIDE = 4


class LiteClassifier(EfficientNetLite):
    """EfficientNet-Lite with a linear head of ``num_classes`` logits."""


class FPN(nn.Module):
    """Top-down feature pyramid over stride 4..32 features, fused at stride 4."""

    def __init__(self, in_channels: list[int], channels: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.smooth = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        p = self.lateral[-1](feats[-1])
        for lat, f in zip(list(self.lateral)[-2::-1], feats[-2::-1]):
            p = lat(f) + F.interpolate(p, size=f.shape[-2:], mode="nearest")
        return self.smooth(p)


def _seg_head(channels: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True), nn.Conv2d(channels, classes, 1))


class LiteFPNSegmenter(nn.Module):
    """EfficientNet-Lite trunk + FPN → ``mask_logits`` (B, classes, H/4, W/4)."""

    with_class_head = False

    def __init__(self, arch: str, mask_classes: int, num_classes: int | None = None, fpn_channels: int = 64,
                 width_scale: float = 1.0):
        super().__init__()
        self.encoder = EfficientNetLite(arch, num_classes if self.with_class_head else None, width_scale)
        self.stage_ends = self.encoder.stage_ends()
        chans = [self.encoder.block_specs[i][1] for i in self.stage_ends]
        self.fpn = FPN(chans, fpn_channels)
        self.seg_head = _seg_head(fpn_channels, mask_classes)

    def _pyramid(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.encoder.stem(x)
        feats = []
        for i, b in enumerate(self.encoder._blocks):
            x = b(x)
            if i in self.stage_ends:
                feats.append(x)
        return feats, x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats, _ = self._pyramid(x)
        return self.seg_head(self.fpn(feats))


class LiteMultiTask(LiteFPNSegmenter):
    """Classifier + segmenter sharing one trunk → (``class_logits``, ``mask_logits``)."""

    with_class_head = True

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, last = self._pyramid(x)
        return self.encoder.head(last), self.seg_head(self.fpn(feats))
