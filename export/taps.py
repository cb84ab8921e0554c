"""Feature taps: named outputs taken from named sub-modules of any ``nn.Module``.

``LayerTaps`` records each tapped module's output with a forward hook and returns them as a
tuple. Once every tap has been seen the forward pass is cut short, so neither torch nor the
ONNX trace runs the rest of the network (for instance the classifier head).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import ExportError


def parse_taps(text: str | None) -> dict[str, str] | None:
    """``"s4=layer1,s8=layer2"`` → {"s4": "layer1", "s8": "layer2"}; a bare ``layer1`` names itself."""
    if not text:
        return None
    out: dict[str, str] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, _, layer = item.partition("=")
        name, layer = name.strip(), (layer.strip() or name.strip())
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ExportError(f"--taps: tap name {name!r} must be letters, digits, '_' or '-'")
        if name in out:
            raise ExportError(f"--taps: tap name {name!r} is given twice")
        out[name] = layer
    if not out:
        raise ExportError("--taps is empty", hint="e.g. --taps s4=layer1,s8=layer2,s16=layer3")
    return out


class _AllTapsSeen(Exception):
    """Raised by the last hook to stop the forward pass early; caught in ``LayerTaps.forward``."""


class LayerTaps(nn.Module):
    """Wraps ``net`` so that forward returns the outputs of the tapped sub-modules, in tap order."""

    def __init__(self, net: nn.Module, taps: dict[str, str]):
        super().__init__()
        self.net = net
        self.tap_names = list(taps)
        self.tap_layers = list(taps.values())
        names = dict(net.named_modules())
        unknown = [layer for layer in self.tap_layers if layer not in names or layer == ""]
        if unknown:
            top = [n for n in names if n and "." not in n]
            raise ExportError(f"tap layer(s) not found in the model: {', '.join(unknown)}",
                              hint=f"top-level modules are: {', '.join(top[:20])}; use dotted paths such as "
                                   f"{top[0] + '.0' if top else 'layer1.0'}")
        self._seen: dict[str, torch.Tensor] = {}
        for layer in dict.fromkeys(self.tap_layers):
            names[layer].register_forward_hook(self._hook(layer))

    def _hook(self, layer: str):
        def record(_module, _inputs, output):
            self._seen[layer] = output
            if len(self._seen) == len(set(self.tap_layers)):
                raise _AllTapsSeen
        return record

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self._seen = {}
        try:
            self.net(x)
        except _AllTapsSeen:
            pass
        outs = []
        for name, layer in zip(self.tap_names, self.tap_layers):
            y = self._seen.get(layer)
            if not isinstance(y, torch.Tensor) or y.dim() != 4:
                got = "nothing (the module never ran)" if y is None else type(y).__name__
                raise ExportError(f"tap {name}={layer}: expected a (B, C, h, w) tensor, got {got}")
            outs.append(y)
        self._seen = {}
        return tuple(outs)
