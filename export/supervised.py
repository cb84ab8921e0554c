"""Classifiers, segmenters and classifier+segmenter models, exported with their output semantics."""

from __future__ import annotations

from pathlib import Path

from .exporter import DEFAULT_OPSET, ExportResult, export_bundle
from .models import OUTPUT_NAMES, build_model
from .outputs import class_output, mask_output


def supervised_recipe(kind: str, arch: str, num_classes: int | None = None, mask_classes: int | None = None,
                      fpn_channels: int = 64, width_scale: float = 1.0, factory_kwargs: dict | None = None,
                      mean=None, std=None) -> dict:
    r = {"kind": kind, "arch": arch, "width_scale": width_scale}
    if kind in ("classifier", "multitask"):
        r["num_classes"] = num_classes
    if kind in ("segmenter", "multitask"):
        r["mask_classes"] = mask_classes
        r["fpn_channels"] = fpn_channels
    if factory_kwargs:
        r["factory_kwargs"] = factory_kwargs
    if mean:
        r["mean"] = list(mean)
    if std:
        r["std"] = list(std)
    return r


def output_specs(kind: str, num_classes: int | None, mask_classes: int | None, labels=None, mask_labels=None,
                 activation: str = "softmax", mask_activation: str = "sigmoid", ok_label: str | None = None
                 ) -> list[dict]:
    names = OUTPUT_NAMES[kind]
    specs = []
    if kind in ("classifier", "multitask"):
        specs.append(class_output(names[0], num_classes, labels, activation, ok_label))
    if kind in ("segmenter", "multitask"):
        specs.append(mask_output(names[-1], mask_classes, mask_labels, mask_activation))
    return specs


def export_supervised(kind: str, arch: str, out: str | Path, size: tuple[int, int], weights: str,
                      num_classes: int | None = None, mask_classes: int | None = None, labels=None,
                      mask_labels=None, activation: str = "softmax", mask_activation: str = "sigmoid",
                      ok_label: str | None = None, fpn_channels: int = 64, width_scale: float = 1.0,
                      factory_kwargs: dict | None = None, mean=None, std=None, formats=("onnx",),
                      precisions=("fp32",), opset: int = DEFAULT_OPSET, dynamic_spatial: bool = False,
                      calib_dir=None, calib_count: int = 32, force: bool = True) -> ExportResult:
    heads = output_specs(kind, num_classes, mask_classes, labels, mask_labels, activation, mask_activation, ok_label)
    recipe = supervised_recipe(kind, arch, num_classes, mask_classes, fpn_channels, width_scale, factory_kwargs,
                               mean, std)
    model = build_model(recipe, weights)
    return export_bundle(model, out, size, formats, precisions, opset, dynamic_spatial, calib_dir, calib_count,
                         heads=heads, force=force)
