"""Supervised models on the device: classifier, segmenter and multitask bundles as model stages."""

from __future__ import annotations

from pathlib import Path

from ..errors import BundleError


def open_supervised(path: str | Path, backend: str = "onnxruntime", device: str | None = None,
                    precision: str | None = None, threads: int | None = None, open_runtime: bool = True):
    from ..bundle import load_bundle

    b = load_bundle(path)
    raise BundleError(f"{path} is a {b.kind} bundle; running {b.kind} bundles on the device is not available "
                      "in this version", hint="fit a PaDiM inspector with `edge-inspect fit --good DIR`")
