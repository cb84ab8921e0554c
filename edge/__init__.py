"""edge-inspect line-device runtime.

Nothing in this package imports torch: it reads bundles (ONNX / OpenVINO IR plus a
JSON manifest) and PaDiM statistics (.npz), and runs them with onnxruntime or OpenVINO.
"""

__version__ = "0.1.0"
