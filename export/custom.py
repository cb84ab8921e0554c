"""Custom models given as ``module:factory``: a Python callable returning an ``nn.Module``.

    edge-export backbone mypkg.models:make_backbone --taps s4=stage1,s8=stage2 --weights w.pth
    edge-export segmenter mypkg.models:make_unet --factory-arg classes=4

The module is imported from the current directory or the installed packages. Factory keyword
arguments (``--factory-arg key=value``, values parsed as JSON where possible) are recorded in the
manifest so ``edge-export verify`` can rebuild the same model.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from torch import nn

from .errors import ExportError, UnknownArchitectureError


def is_factory_spec(arch: str) -> bool:
    return ":" in arch


def parse_factory_args(items: tuple[str, ...] | list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ExportError(f"--factory-arg {item!r} is not KEY=VALUE with a Python identifier as KEY")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def build_from_factory(spec: str, kwargs: dict | None = None) -> nn.Module:
    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name:
        raise UnknownArchitectureError(f"{spec!r} is not of the form module:factory")
    cwd = str(Path.cwd())
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(module_name)
    except ImportError as e:
        raise UnknownArchitectureError(f"cannot import module {module_name!r} for {spec}: {e}",
                                       hint="run edge-export from the folder holding it, or pip install it") from None
    factory = getattr(mod, func_name, None)
    if not callable(factory):
        raise UnknownArchitectureError(f"{module_name} has no callable {func_name!r}")
    try:
        net = factory(**(kwargs or {}))
    except TypeError as e:
        raise ExportError(f"{spec}({', '.join(f'{k}=' for k in kwargs or {})}) failed: {e}",
                          hint="check --factory-arg names against the factory's signature") from None
    if not isinstance(net, nn.Module):
        raise ExportError(f"{spec} returned {type(net).__name__}, not a torch.nn.Module")
    return net
