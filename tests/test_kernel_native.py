"""The C kernel checked at the C level (tests/native/kernel_check.c): natively, and for ARM64
(the Jetson's CPU) under qemu when a cross compiler and qemu-aarch64 are installed
(Debian: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [str(ROOT / "tests" / "native" / "kernel_check.c"), str(ROOT / "edge" / "padim" / "_mahal.c")]


def _build_and_run(cc: str, out: Path, runner: list[str], extra: list[str]) -> str:
    subprocess.run([cc, "-O3", "-std=gnu99", "-Wall", *extra, "-o", str(out), *SOURCES, "-lm"], check=True,
                   capture_output=True, text=True)
    r = subprocess.run([*runner, str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.strip()


def test_kernel_native(tmp_path):
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    assert _build_and_run(cc, tmp_path / "check", [], []).startswith("ok isa=")


def test_kernel_on_arm64_under_qemu(tmp_path):
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    if cc is None or qemu is None:
        pytest.skip("no aarch64 cross compiler and qemu-aarch64 here")
    # isa=1: the portable path with the CPU's own fp16 conversion, as on a Jetson
    assert _build_and_run(cc, tmp_path / "check-arm64", [qemu], ["-static"]) == "ok isa=1"
