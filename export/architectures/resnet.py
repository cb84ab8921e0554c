"""ResNet-18 and Wide-ResNet-50-2, the PaDiM paper's backbones, without torchvision.

Module and parameter names follow torchvision's ``resnet.py`` exactly (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer2.0.downsample.0``, ``fc`` …), so a state dict saved from
torchvision (e.g. ``resnet18-f37072fd.pth``) loads strictly. ``width_scale`` < 1 shrinks every
width for tiny random-init test models; it is not meant for real weights.
"""

from __future__ import annotations

from torch import nn

# name: (block, blocks per stage, width per group)
RESNET_PARAMS = {
    "resnet18": ("basic", (2, 2, 2, 2), 64),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), 128),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 width: int | None = None):
        super().__init__()
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 width: int | None = None):
        super().__init__()
        width = width or planes
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision-compatible ResNet; ``stage_specs`` lists (module name, stride, channels) per stage."""

    def __init__(self, name: str = "resnet18", num_classes: int = 1000, width_scale: float = 1.0):
        super().__init__()
        if name not in RESNET_PARAMS:
            raise ValueError(f"unknown ResNet variant {name!r}; known: {', '.join(RESNET_PARAMS)}")
        kind, layers, width_per_group = RESNET_PARAMS[name]
        block = BasicBlock if kind == "basic" else Bottleneck

        def scaled(c: int) -> int:
            return c if width_scale == 1.0 else max(4, int(round(c * width_scale)))

        self.inplanes = scaled(64)
        self.conv1 = nn.Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.stage_specs = []
        stride = 4
        for i, n in enumerate(layers):
            planes = scaled(64 * 2 ** i)
            width = scaled(int(64 * 2 ** i * width_per_group / 64))
            s = 1 if i == 0 else 2
            stride *= s
            setattr(self, f"layer{i + 1}", self._make_layer(block, planes, n, s, width))
            self.stage_specs.append((f"layer{i + 1}", stride, planes * block.expansion))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.inplanes, num_classes)

    def _make_layer(self, block, planes: int, blocks: int, stride: int, width: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(_conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        mods = [block(self.inplanes, planes, stride, downsample, width)]
        self.inplanes = planes * block.expansion
        mods += [block(self.inplanes, planes, 1, None, width) for _ in range(1, blocks)]
        return nn.Sequential(*mods)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))
