#!/usr/bin/env bash
# Install (once) and run the test suite. Extra arguments go to pytest, e.g. scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
# the suite covers OpenVINO INT8 export too, so it installs the int8 extra (NNCF) unless told otherwise
EXTRAS=${EXTRAS:-export,openvino,int8,test}
. scripts/setup-env.sh
python -m pytest -q "$@"
