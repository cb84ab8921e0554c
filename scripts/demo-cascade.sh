#!/usr/bin/env bash
# Cascade demo: a cheap PaDiM gate passes clean parts, a trained segmenter judges the rest.
#   install → export the backbone → make two labelled folders of the same part (one to train the
#   segmenter on, one the models have never seen) → fit PaDiM on good images → train a segmenter
#   (torch, CPU, a few minutes) → evaluate the segmenter alone → evaluate PaDiM → segmenter on a
#   mix of 90% good parts: Dice, detection, how often the segmenter ran and the time saved.
# Outputs go to ./demo-cascade-out (override with DEMO_OUT=...). TEXTURE=metal|fabric|casting,
# EPOCHS (segmenter training passes), GATE (PaDiM score from which the segmenter runs; eval prints
# a table of gates against how often the segmenter would run and what it would never see).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/setup-env.sh
OUT=${DEMO_OUT:-demo-cascade-out}
TEXTURE=${TEXTURE:-metal}
EPOCHS=${EPOCHS:-4}
GATE=${GATE:-0.95}
mkdir -p "$OUT"

echo "== 1/6 export a small, cheap backbone for the gate: Lite0 at 128 px (torch, workstation side)"
edge-export backbone efficientnet-lite0 --size 128 --weights pretrained --out "$OUT/gate-backbone"
echo "== 2/6 two labelled folders of the same part: one to train on, one never seen (180 good, 20 defective)"
edge-inspect demo-data "$OUT/train-data" --texture "$TEXTURE" --train 60 --test-good 30 --per-defect 12 --seed 1
edge-inspect demo-data "$OUT/line-data" --texture "$TEXTURE" --train 60 --test-good 180 --per-defect 5 --seed 2
TRAIN="$OUT/train-data/$TEXTURE"
LINE="$OUT/line-data/$TEXTURE"
echo "== 3/6 fit the PaDiM gate on the line's good images (no torch)"
edge-inspect fit --good "$LINE/train/good" --backbone "$OUT/gate-backbone" --out "$OUT/gate"
echo "== 4/6 train a segmenter on the other folder (torch, CPU)"
edge-export train segmenter "$TRAIN" --out "$OUT/segmenter" --epochs "$EPOCHS"
cat > "$OUT/cascade.toml" <<EOF
[[stage]]
name = "gate"
inspector = "gate"       # the PaDiM inspector next to this file
[[stage]]
name = "seg"
model = "segmenter"
when = "suspicious"      # run only when the gate's score >= gate
gate = $GATE             # on the gate's normalised score (1.0 = its threshold)
EOF
echo "== 5/6 the segmenter alone on the unseen folder"
edge-inspect eval "$LINE" --model "$OUT/segmenter" --out "$OUT/eval-segmenter"
echo "== 6/6 PaDiM → segmenter on the unseen folder, 90% good parts"
edge-inspect eval "$LINE" --cascade "$OUT/cascade.toml" --good-share 0.9 --out "$OUT/eval-cascade"
echo "== the issue's targets, judged from that run"
python -m benchmarks.cascade_targets "$OUT/eval-cascade" || true
echo
echo "Done. Look at:"
echo "  $OUT/cascade.toml                     the cascade (edit the gate and run again)"
echo "  $OUT/eval-cascade/report.html         per-stage blocks, ROC, scores"
echo "  $OUT/eval-cascade/metrics.json        stages, gate_pass_share, alone, time_ms_per_image"
echo "  $OUT/eval-cascade/test-results/       one record per image, with its stages"
