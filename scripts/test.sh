#!/usr/bin/env bash
# Install (once) and run the test suite. Extra arguments go to pytest, e.g. scripts/test.sh -m slow
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-env.sh
python -m pytest -q "$@"
