#!/usr/bin/env bash
# Create ./.venv (once) and install edge-inspect with the export (torch), OpenVINO and test extras.
# Sourced by demo.sh and test.sh. torch==2.13.0 is pinned: it resolves to the CPU build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.edge-inspect-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing edge-inspect and its extras (a few minutes the first time)"
  python -m pip install -q --upgrade pip
  python -m pip install -q -e '.[export,openvino,test]' 'torch==2.13.0'
  touch "$stamp"
fi
