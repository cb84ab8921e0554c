#!/usr/bin/env bash
# Create a virtual environment (once) and install edge-inspect into it. Sourced by demo.sh and test.sh.
#   VENV    where (default .venv)
#   PYTHON  interpreter to create it with (default python3)
#   EXTRAS  pip extras (default export,openvino,test; without "export" no torch is installed)
# torch==2.13.0 is pinned: it resolves to the CPU build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
EXTRAS=${EXTRAS:-export,openvino,test}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PY --version 2>&1)"
  "$PY" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
stamp="$VENV/.edge-inspect-installed-${EXTRAS//,/_}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] || [ edge/padim/_mahal.c -nt "$stamp" ]; then
  echo "[setup] installing edge-inspect[$EXTRAS] into $VENV (a few minutes the first time)"
  python -m pip install -q --upgrade pip
  extra_pkgs=()
  case ",$EXTRAS," in *,export,*) extra_pkgs+=("torch==2.13.0") ;; esac
  case ",$EXTRAS," in *,test,*) extra_pkgs+=("onnx") ;; esac  # test fixtures build tiny ONNX models
  python -m pip install -q -e ".[$EXTRAS]" "${extra_pkgs[@]}"
  touch "$stamp"
fi
