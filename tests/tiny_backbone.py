"""A tiny three-tap ONNX backbone built with onnx.helper: no torch, builds in milliseconds.

Strided random convolutions with ReLU: real (if crude) features at strides 4, 8 and 16,
enough for PaDiM to find planted defects in the synthetic textures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.bundle import write_backbone_manifest

TAPS = (("s4", 4, 8), ("s8", 8, 12), ("s16", 16, 16))


def make_tiny_onnx(path: Path, seed: int = 0, opset: int = 17) -> None:
    rng = np.random.default_rng(seed)
    inits, nodes = [], []
    prev, cin = "image", 3
    for i, (name, stride, cout) in enumerate(TAPS):
        k = 4 if i == 0 else 2
        w = (rng.normal(0, 1, (cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        b = rng.normal(0, 0.1, cout).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], strides=[k, k]))
        nodes.append(helper.make_node("Relu", [f"c{i}"], [name]))
        prev, cin = name, cout
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", c, None, None]) for n, _, c in TAPS],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def make_tiny_bundle(root: Path, size: tuple[int, int] = (64, 64), seed: int = 0) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    make_tiny_onnx(root / "model.onnx", seed)
    write_backbone_manifest(
        root, name="tiny-test", opset=17,
        input_spec={"name": "image", "layout": "NCHW", "height": size[0], "width": size[1], "color": "RGB",
                    "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        taps=[{"name": n, "stride": s, "channels": c} for n, s, c in TAPS],
        models=[{"format": "onnx", "precision": "fp32", "path": "model.onnx"}],
        weights={"kind": "none", "pretrained": False, "source": "random (test fixture)"})
    return root
