"""Tiny hand-made classifier, segmenter and multitask ONNX bundles (onnx.helper, no torch), with
outputs that are known in closed form, and a labelled folder they can judge.

Inputs are normalised with mean 0.5, std 0.25, so a grey pixel (128) reads ≈ 0, white ≈ 2 and
black ≈ −2. With ``b`` the channel mean of the normalised image, averaged over 4×4 cells:

* mask head (stride 4), sigmoid: ``bright`` = 4·(b − 1), ``dark`` = 4·(−b − 1);
  or softmax with channel 0 = background (logit 0) and channel 1 ``bright`` = 4·(b − 1);
* class head: m = max over cells of |b|, and logits [defect, good] = [4·(m − 1), 0]
  (defect = class 0, good = class 1; softmax).

So white squares are the "bright" class, black squares "dark", and grey parts are good.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge.bundle import write_backbone_manifest
from edge.imageio import write_png

SIZE = (64, 64)
STRIDE = 4
INPUT = {"name": "image", "layout": "NCHW", "height": SIZE[0], "width": SIZE[1], "color": "RGB",
         "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def _graph(kind: str, mask_activation: str = "sigmoid") -> onnx.ModelProto:
    inits = [numpy_helper.from_array(np.full((1, 3, 1, 1), 1 / 3, np.float32), "wmean")]
    nodes = [helper.make_node("AveragePool", ["image"], ["cells"], kernel_shape=[STRIDE, STRIDE],
                              strides=[STRIDE, STRIDE]),
             helper.make_node("Conv", ["cells", "wmean"], ["b"])]  # (B, 1, h/4, w/4)
    outputs = []
    if kind in ("classifier", "multitask"):
        name = "logits" if kind == "classifier" else "class_logits"
        inits += [numpy_helper.from_array(np.array([[4.0, 0.0]], np.float32), "wc"),
                  numpy_helper.from_array(np.array([-4.0, 0.0], np.float32), "bc")]
        nodes += [helper.make_node("Abs", ["b"], ["babs"]),
                  helper.make_node("GlobalMaxPool", ["babs"], ["bmax"]),
                  helper.make_node("Flatten", ["bmax"], ["bflat"]),
                  helper.make_node("Gemm", ["bflat", "wc", "bc"], [name])]
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", 2]))
    if kind in ("segmenter", "multitask"):
        if mask_activation == "sigmoid":
            w, bias = np.array([4.0, -4.0], np.float32), np.array([-4.0, -4.0], np.float32)
        else:
            w, bias = np.array([0.0, 4.0], np.float32), np.array([0.0, -4.0], np.float32)
        inits += [numpy_helper.from_array(w.reshape(2, 1, 1, 1), "wm"), numpy_helper.from_array(bias, "bm")]
        nodes.append(helper.make_node("Conv", ["b", "wm", "bm"], ["mask_logits"]))
        outputs.append(helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, ["batch", 2, None, None]))
    graph = helper.make_graph(nodes, f"tiny-{kind}",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, "h", "w"])],
                              outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def output_specs(kind: str, mask_activation: str = "sigmoid") -> list[dict]:
    specs = []
    if kind in ("classifier", "multitask"):
        specs.append({"name": "logits" if kind == "classifier" else "class_logits", "role": "class", "channels": 2,
                      "activation": "softmax", "labels": {"0": "defect", "1": "good"}, "ok_class": 1})
    if kind in ("segmenter", "multitask"):
        labels = {"0": "bright", "1": "dark"} if mask_activation == "sigmoid" else {"0": "background", "1": "bright"}
        specs.append({"name": "mask_logits", "role": "mask", "channels": 2, "activation": mask_activation,
                      "labels": labels, "stride": STRIDE,
                      "background_class": None if mask_activation == "sigmoid" else 0})
    return specs


def make_supervised_bundle(root: Path, kind: str, mask_activation: str = "sigmoid",
                           calibration: dict | None = None) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    onnx.save(_graph(kind, mask_activation), str(root / "model.onnx"))
    extra = {"calibration": calibration} if calibration else {}
    write_backbone_manifest(root, name=f"tiny-{kind}", kind=kind, opset=17, input_spec=INPUT, taps=[],
                            outputs=output_specs(kind, mask_activation),
                            models=[{"format": "onnx", "precision": "fp32", "path": "model.onnx"}],
                            weights={"kind": "none", "pretrained": False, "source": "hand-made (test fixture)"},
                            **extra)
    return root


def grey(rng: np.random.Generator, size=SIZE) -> np.ndarray:
    return np.clip(rng.normal(128, 6, (*size, 3)), 0, 255).astype(np.uint8)


def with_square(img: np.ndarray, value: int, top: int, left: int, side: int = 12) -> tuple[np.ndarray, np.ndarray]:
    img = img.copy()
    img[top:top + side, left:left + side] = value
    mask = np.zeros(img.shape[:2], np.uint8)
    mask[top:top + side, left:left + side] = 255
    return img, mask


def make_square_category(root: Path, n_good: int = 6, n_defect: int = 3, seed: int = 0) -> Path:
    """MVTec layout: grey good parts; ``bright`` (white square) and ``dark`` (black square) defects."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for sub in ("train/good", "test/good", "test/bright", "test/dark", "ground_truth/bright", "ground_truth/dark"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_good):
        write_png(root / "train" / "good" / f"{i:03d}.png", grey(rng))
        write_png(root / "test" / "good" / f"{i:03d}.png", grey(rng))
    for kind, value in (("bright", 255), ("dark", 0)):
        for i in range(n_defect):
            top, left = (int(v) for v in rng.integers(4, SIZE[0] - 16, 2))
            img, mask = with_square(grey(rng), value, top, left)
            write_png(root / "test" / kind / f"{i:03d}.png", img)
            write_png(root / "ground_truth" / kind / f"{i:03d}_mask.png", mask)
    return root
