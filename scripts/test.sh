#!/usr/bin/env bash
# Install (once) and run the test suite. Extra arguments go to pytest, e.g. scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
# the suite covers OpenVINO INT8 export and the benchmarks' real-photo data set too, so it installs the
# int8 (NNCF) and bench (scikit-image) extras unless told otherwise
EXTRAS=${EXTRAS:-export,openvino,int8,bench,test}
. scripts/setup-env.sh
python -m pytest -q "$@"
