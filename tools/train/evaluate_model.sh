#!/usr/bin/env bash
# The model card's numbers (docs/MODEL_CARD.md), reproducible: trains the held-out evaluator (the
# 3D video classifier and the 2D object-kind classifier, once), picks 100 held-out prompts,
# generates one 8-frame clip per prompt with the Swift runtime (`vidrd clip`) for the shipped model,
# the same model decoding frame-wise, and a random-weight model of the same architecture, then
# scores all of them against the real held-out clips.
#
#   swift build -c release && PY=/work/venv/bin/python bash tools/train/evaluate_model.sh
#
# Environment: MODEL (default Models/vidrd-tiny), OUT (default $VIDRD_RUNS/eval), STEPS (25),
# GUIDANCE (default: what the daemon uses for MODEL, i.e. its generation_config.json, else 7.5; every
# model of the run is sampled with the same value), N (100 prompts), BASELINE (optional second model
# folder, scored as BASELINE_NAME).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/work/venv/bin/python}
RUNS=${VIDRD_RUNS:-/work/train-runs}
export VIDRD_RUNS=$RUNS OMP_WAIT_POLICY=PASSIVE
MODEL=${MODEL:-Models/vidrd-tiny}
OUT=${OUT:-$RUNS/eval}
STEPS=${STEPS:-25}
N=${N:-100}
VIDRD=${VIDRD:-.build/release/vidrd}
[ -x "$VIDRD" ] || { echo "build first: swift build -c release" >&2; exit 2; }
mkdir -p "$OUT"
GUIDANCE=${GUIDANCE:-$($PY -c 'import json, os, sys
p = os.path.join(sys.argv[1], "generation_config.json")
print(json.load(open(p)).get("guidance_scale", 7.5) if os.path.exists(p) else 7.5)' "$MODEL")}
echo "guidance $GUIDANCE" >&2

# the evaluator: 1,600 steps, then a warm restart of 800 steps at half the rate (object kind, the
# hardest label, was still improving)
if [ ! -f "$RUNS/evaluator/classifier.pt" ]; then
  [ -f "$RUNS/evaluator/classifier_1600.pt" ] ||
    $PY tools/train/evaluator.py --threads 2 train --steps 1600 --out "$RUNS/evaluator/classifier_1600.pt"
  $PY tools/train/evaluator.py --threads 2 train --init "$RUNS/evaluator/classifier_1600.pt" --steps 800 --lr 1e-3 \
    --out "$RUNS/evaluator/classifier.pt"
fi
# object kind: a 2D frame classifier (evaluator.py ObjectClassifier), 2,000 steps of 64 frames
[ -f "$RUNS/evaluator/object.pt" ] ||
  $PY tools/train/evaluator.py --threads 2 train-object --steps 2000 --out "$RUNS/evaluator/object.pt"
$PY tools/train/evaluator.py prompts --n "$N" --out "$OUT/prompts.jsonl"
[ -f "$OUT/random-model/model_index.json" ] || $PY tools/train/export.py --random-weights 0 --tokenizer "$MODEL/tokenizer" --out "$OUT/random-model"

generate() {  # NAME MODEL_DIR [extra vidrd clip flags]
  local name=$1 model=$2; shift 2
  $PY -c 'import json,sys; [print(p["id"], p["prompt"], sep="\t") for p in map(json.loads, open(sys.argv[1]))]' \
      "$OUT/prompts.jsonl" |
  while IFS=$'\t' read -r id prompt; do
    [ -f "$OUT/gen/$name/$id/frame_000007.webp" ] && continue
    "$VIDRD" clip --model "$model" --prompt "$prompt" --frames 8 --steps "$STEPS" --guidance "$GUIDANCE" \
      --seed "$id" --lossless --out "$OUT/gen/$name/$id" "$@" >/dev/null 2>&1
  done
}
generate trained "$MODEL"
generate framewise "$MODEL" --framewise-decoder
generate random "$OUT/random-model"
extra=()
if [ -n "${BASELINE:-}" ]; then  # another model folder to compare, e.g. an earlier training phase
  generate baseline "$BASELINE"
  extra=(--gen "${BASELINE_NAME:-baseline}=$OUT/gen/baseline")
fi

$PY tools/train/evaluator.py score --prompts "$OUT/prompts.jsonl" --vae "$MODEL/vae" \
  --object-classifier "$RUNS/evaluator/object.pt" \
  --gen "vidrd-tiny=$OUT/gen/trained" \
  --gen "vidrd-tiny, frame-wise decoder=$OUT/gen/framewise" \
  --gen "random weights, same architecture=$OUT/gen/random" "${extra[@]}" \
  --out "$OUT/scores.json" | tee "$OUT/scores.md"
