"""`--backend auto`: pick the fastest runtime this machine has, and say why.

Order of preference:
  1. a Jetson / NVIDIA box whose onnxruntime has TensorRT or CUDA → onnxruntime tensorrt (or cuda);
  2. x86 with OpenVINO installed → openvino CPU (Lite0's depthwise convolutions run ~1.4x faster
     there than in onnxruntime on the same Intel CPU);
  3. otherwise → onnxruntime cpu, which every install has.
A choice that fails to open (a missing driver, a broken install) falls through to the next one,
and the reason says so. The probe only looks: it imports no runtime but onnxruntime.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass
from pathlib import Path

X86 = ("x86_64", "amd64", "i386", "i686", "x86")
OPENVINO_DEVICES = ("GPU", "NPU", "AUTO")  # device names only OpenVINO knows
ORT_DEVICES = ("cuda", "tensorrt")  # ... and only onnxruntime


@dataclass(frozen=True)
class Platform:
    """What `auto` looks at. ``probe()`` reads this machine; tests build their own."""

    machine: str
    jetson: bool
    openvino: bool
    ort_providers: tuple[str, ...]

    @classmethod
    def probe(cls) -> "Platform":
        try:
            import onnxruntime as ort

            providers = tuple(ort.get_available_providers())
        except ImportError:
            providers = ()
        return cls(platform.machine().lower(), _is_jetson(), importlib.util.find_spec("openvino") is not None,
                   providers)


def _is_jetson() -> bool:
    if Path("/etc/nv_tegra_release").exists():
        return True
    try:
        return "jetson" in Path("/proc/device-tree/model").read_text(errors="replace").lower()
    except OSError:
        return False


@dataclass(frozen=True)
class Choice:
    backend: str
    device: str
    reason: str


def candidates(plat: Platform, device: str | None = None) -> list[Choice]:
    """The runtimes to try, best first. ``device`` (if given) keeps only runtimes that know it."""
    out: list[Choice] = []
    gpu = plat.jetson or any(p in plat.ort_providers for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider"))
    where = "Jetson" if plat.jetson else "NVIDIA GPU"
    if gpu and "TensorrtExecutionProvider" in plat.ort_providers:
        out.append(Choice("onnxruntime", "tensorrt", f"{where} with onnxruntime's TensorRT provider"))
    if gpu and "CUDAExecutionProvider" in plat.ort_providers:
        out.append(Choice("onnxruntime", "cuda", f"{where} with onnxruntime's CUDA provider"))
    if plat.machine in X86 and plat.openvino:
        out.append(Choice("openvino", "CPU", "x86 CPU with OpenVINO installed (the fastest CPU runtime here)"))
    why = ("onnxruntime has no TensorRT/CUDA provider" if plat.jetson
           else "OpenVINO is not installed" if plat.machine in X86 else f"{plat.machine} CPU without a GPU runtime")
    out.append(Choice("onnxruntime", "cpu", f"CPU ({why})"))
    if device:  # one entry per runtime that knows the device, in the same order
        kept: dict[str, Choice] = {}
        for c in out:
            if _knows(c.backend, device) and (c.backend not in kept or c.device.lower() == device.lower()):
                reason = c.reason if c.device.lower() == device.lower() else f"device {device} as asked"
                kept[c.backend] = Choice(c.backend, device, reason)
        out = list(kept.values())
    return out


def _knows(backend: str, device: str) -> bool:
    base = device.split(":")[0].split(".")[0]
    if base.upper() in OPENVINO_DEVICES:
        return backend == "openvino"
    if base.lower() in ORT_DEVICES:
        return backend == "onnxruntime"
    return base.lower() == "cpu"


def choose(device: str | None = None, plat: Platform | None = None) -> Choice:
    """The first candidate (what `info` reports; opening may still fall through, see open_backend)."""
    cands = candidates(plat or Platform.probe(), device)
    if not cands:
        return Choice("onnxruntime", device or "cpu", "no runtime knows this device")
    return cands[0]
