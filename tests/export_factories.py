"""module:factory targets for the export tests (imported by name, as a user's own module would be)."""

import torch
from torch import nn


class SmallNet(nn.Module):
    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU())
        self.stage1 = nn.Sequential(nn.Conv2d(width, width, 3, 2, 1), nn.ReLU())
        self.stage2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU())
        self.head = nn.Linear(2 * width, 3)

    def forward(self, x):
        x = self.stage2(self.stage1(self.stem(x)))
        return self.head(x.mean((2, 3)))


def small_net(width: int = 8) -> nn.Module:
    torch.manual_seed(1)
    return SmallNet(width)


class TwoHeads(nn.Module):
    """A user's multitask model: returns (class logits, mask logits at stride 4)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU())
        self.cls = nn.Linear(8, 2)
        self.seg = nn.Conv2d(8, 1, 1)

    def forward(self, x):
        f = self.body(x)
        return self.cls(f.mean((2, 3))), self.seg(f)


def two_heads() -> nn.Module:
    torch.manual_seed(2)
    return TwoHeads()


class Eigen(nn.Module):
    """Uses an op (eigendecomposition) that ONNX cannot express."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, 4, 1)

    def forward(self, x):
        f = self.conv(x)
        g = f.flatten(2) @ f.flatten(2).transpose(1, 2)
        return torch.linalg.eigh(g)[0][:, :, None, None] * f


def eigen() -> nn.Module:
    return Eigen()
