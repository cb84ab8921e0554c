"""Architectures defined here, so torchvision and timm are never needed."""

from __future__ import annotations

import contextlib

# Set while exporting at a fixed input size: layers whose padding depends on the input size
# (TF-SAME in EfficientNet-Lite) then bake it in as constants instead of tracing shape arithmetic.
_FIXED_INPUT_SIZE = [False]


@contextlib.contextmanager
def fixed_input_size(fixed: bool = True):
    old = _FIXED_INPUT_SIZE[0]
    _FIXED_INPUT_SIZE[0] = fixed
    try:
        yield
    finally:
        _FIXED_INPUT_SIZE[0] = old


def input_size_is_fixed() -> bool:
    return _FIXED_INPUT_SIZE[0]
