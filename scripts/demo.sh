#!/usr/bin/env bash
# The main job, end to end on the built-in default:
#   install → export the pretrained EfficientNet-Lite0 backbone → make a demo dataset with
#   planted defects → fit PaDiM on its good images (no torch) → score its test images → evaluate.
# Outputs go to ./demo-out (override with DEMO_OUT=...). TEXTURE=metal|fabric|casting.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-env.sh
OUT=${DEMO_OUT:-demo-out}
TEXTURE=${TEXTURE:-metal}
mkdir -p "$OUT"

echo "== 1/5 export the default backbone (torch, workstation side)"
edge-export backbone efficientnet-lite0
echo "== 2/5 make a demo dataset ($TEXTURE, MVTec layout, with ground-truth masks)"
edge-inspect demo-data "$OUT/data" --texture "$TEXTURE" --train 60 --test-good 20 --per-defect 8
CAT="$OUT/data/$TEXTURE"
echo "== 3/5 fit on good images (line-device side: no torch)"
edge-inspect fit --good "$CAT/train/good" --out "$OUT/inspector"
echo "== 4/5 score the test images"
edge-inspect score "$CAT/test" --inspector "$OUT/inspector" --out "$OUT/results" --save-maps
echo "== 5/5 evaluate against the ground truth"
edge-inspect eval "$CAT" --inspector "$OUT/inspector" --out "$OUT/eval"
echo
echo "Done. Look at:"
echo "  $OUT/results/results.jsonl   one decision per image (score 1.0 = threshold)"
echo "  $OUT/results/overlays/       heat maps of the NG images"
echo "  $OUT/eval/report.html        the evaluation to read: curves, histograms, worst cases (open in a browser)"
echo "  $OUT/eval/metrics.json       every number of it"
