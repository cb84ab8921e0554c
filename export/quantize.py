"""INT8 post-training quantisation from good images: onnxruntime for ONNX, NNCF for OpenVINO.

Only the network is quantised. PaDiM's Gaussian part stays in float on the device, so the
calibration data is nothing but preprocessed image tensors (anomalib #2592 failed because its
calibration loader yielded batch objects the quantiser could not read).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import numpy as np

from .errors import ExportError


def quantize_onnx_int8(fp32_path: Path, path: Path, calib: np.ndarray) -> None:
    """Static QDQ quantisation: per-channel int8 weights, uint8 activations with MinMax ranges."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"image": x}

    with tempfile.TemporaryDirectory(prefix="edge-export-q-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as e:
            raise ExportError(f"onnxruntime INT8 quantisation failed: {type(e).__name__}: {e}",
                              hint="export the fp32/fp16 variants, or quantise for OpenVINO instead") from None


def quantize_openvino_int8(fp32_onnx: Path, xml_path: Path, calib: np.ndarray, description: dict) -> None:
    """NNCF post-training quantisation (mixed preset: symmetric weights, asymmetric activations)."""
    try:
        import nncf
    except ImportError:
        raise ExportError("OpenVINO INT8 needs NNCF, which is not installed",
                          hint="pip install 'edge-inspect[int8]' (or pick --precision fp32,fp16)") from None
    from .openvino_format import read_onnx_as_openvino, save_ir

    model = read_onnx_as_openvino(fp32_onnx)
    data = nncf.Dataset([calib[i:i + 1] for i in range(len(calib))])
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws progress bars on stdout
            q = nncf.quantize(model, data, preset=nncf.QuantizationPreset.MIXED, subset_size=len(calib))
    except Exception as e:
        raise ExportError(f"NNCF INT8 quantisation failed: {type(e).__name__}: {e}") from None
    save_ir(q, xml_path, description, fp16=False)
