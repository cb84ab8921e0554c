"""What to export, as two frozen values the CLI fills: the network (:class:`ModelRequest`) and how
to write it (:class:`ExportRequest`).

``ModelRequest.recipe()`` is the ``build`` dict kept in the manifest (``verify`` rebuilds the model
from it); ``ModelRequest.heads()`` describes a supervised model's outputs (label maps, activations).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import ExportError

KINDS = ("backbone", "classifier", "segmenter", "multitask")
CLASS_KINDS = ("classifier", "multitask")
MASK_KINDS = ("segmenter", "multitask")
DEFAULT_OPSET = 17


@dataclass(frozen=True)
class ModelRequest:
    """The network: kind, architecture, weights, and what shapes its outputs."""

    kind: str
    arch: str
    weights: str = "pretrained"  # "pretrained" | "none" | "factory" | a state-dict file
    width_scale: float = 1.0
    factory_kwargs: dict | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    taps: dict[str, str] | None = None  # backbones
    num_classes: int | None = None  # classifier, multitask
    labels: dict[int, str] | None = None
    activation: str = "softmax"
    ok_label: str | None = None
    mask_classes: int | None = None  # segmenter, multitask
    mask_labels: dict[int, str] | None = None
    mask_activation: str = "sigmoid"
    fpn_channels: int = 64
    tta: str = "none"  # supervised models: "flips" = the mean over four flips of each image (export/tta.py)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ExportError(f"unknown model kind {self.kind!r}; one of {', '.join(KINDS)}")
        if self.tta != "none" and self.kind == "backbone":
            raise ExportError("test-time flips are for classifiers, segmenters and multitask models, not backbones")

    def with_weights(self, weights: str) -> ModelRequest:
        return replace(self, weights=weights)

    def recipe(self) -> dict:
        """The manifest's ``build`` block: everything that shapes the network, no weights."""
        r: dict = {"kind": self.kind, "arch": self.arch, "width_scale": self.width_scale}
        if self.kind == "backbone":
            r["taps"] = self.taps
        if self.kind in CLASS_KINDS:
            r["num_classes"] = self.num_classes
        if self.kind in MASK_KINDS:
            r["mask_classes"] = self.mask_classes
            r["fpn_channels"] = self.fpn_channels
        if self.tta != "none":
            r["tta"] = self.tta
        if self.factory_kwargs:
            r["factory_kwargs"] = self.factory_kwargs
        if self.mean:
            r["mean"] = list(self.mean)
        if self.std:
            r["std"] = list(self.std)
        return r

    def heads(self) -> list[dict]:
        """Output specs for the manifest's ``outputs`` (empty for backbones)."""
        from .models import OUTPUT_NAMES
        from .outputs import class_output, mask_output

        if self.kind == "backbone":
            return []
        names = OUTPUT_NAMES[self.kind]
        specs = []
        if self.kind in CLASS_KINDS:
            specs.append(class_output(names[0], self.num_classes, self.labels, self.activation, self.ok_label))
        if self.kind in MASK_KINDS:
            specs.append(mask_output(names[-1], self.mask_classes, self.mask_labels, self.mask_activation))
        return specs


@dataclass(frozen=True)
class ExportRequest:
    """Where and how to write the bundle."""

    out: Path
    size: tuple[int, int] = (256, 256)
    formats: tuple[str, ...] = ("onnx",)
    precisions: tuple[str, ...] = ("fp32",)
    opset: int = DEFAULT_OPSET
    dynamic_spatial: bool = False
    calib_dir: Path | None = None
    calib_count: int = 32
    force: bool = True  # replace an existing bundle at ``out``
    manifest_extra: dict = field(default_factory=dict)  # extra top-level manifest blocks (e.g. training)

    def __post_init__(self):
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "formats", tuple(self.formats))
        object.__setattr__(self, "precisions", tuple(self.precisions))
        if self.calib_dir is not None:
            object.__setattr__(self, "calib_dir", Path(self.calib_dir))
