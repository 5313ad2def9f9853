#!/usr/bin/env bash
# The U-Net forward of tools/bench/run.sh, PyTorch and Swift alternated round by round, so that this
# VM's drifting speed (it changes by up to 2x within minutes) hits both sides alike; compare within
# a round. torch.compile is left out (minutes of compiling per process).
#   bash tools/bench/unet_interleaved.sh [ROUNDS]     (MODEL=small THREADS=2 REPEATS=5 PYTHON=/work/venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
MODEL=${MODEL:-small}
THREADS=${THREADS:-2}
REPEATS=${REPEATS:-5}
PYTHON=${PYTHON:-/work/venv/bin/python}
MODELS_ROOT=${VIDRD_BENCH_MODELS:-/work/bench-models}
swift build -c release --product vidrd-bench >/dev/null
median() { grep -o "\"name\": \"$1\"[^}]*\"median_s\": [0-9.]*" | grep -o '[0-9.]*$'; }
echo "| round | load average | size | PyTorch eager s | PyTorch bf16 s | Swift fp32 s | Swift bf16 s | fp32 ÷ eager | bf16 ÷ fastest PyTorch |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for r in $(seq 1 "$ROUNDS"); do
  load=$(cut -d' ' -f1 /proc/loadavg)
  te=$("$PYTHON" tools/bench/bench_torch.py --mode eager --model "$MODEL" --threads "$THREADS" --repeats "$REPEATS" --only unet_b2f16_8x8 unet_b2f16_16x16 2>/dev/null)
  sf=$(.build/release/vidrd-bench --model "$MODELS_ROOT/$MODEL" --repeats "$REPEATS" --clip-size 0)
  tb=$("$PYTHON" tools/bench/bench_torch.py --mode bf16 --model "$MODEL" --threads "$THREADS" --repeats "$REPEATS" --only unet_b2f16_8x8 unet_b2f16_16x16 2>/dev/null)
  sb=$(.build/release/vidrd-bench --model "$MODELS_ROOT/$MODEL" --repeats "$REPEATS" --clip-size 0 --precision bf16)
  for size in 8x8 16x16; do
    n="unet_b2f16_$size"
    a=$(median "$n" <<<"$te"); b=$(median "$n" <<<"$tb"); c=$(median "$n" <<<"$sf"); d=$(median "$n" <<<"$sb")
    python3 -c "import sys; a,b,c,d=map(float,sys.argv[4:]); print(f'| {sys.argv[1]} | {sys.argv[2]} | {sys.argv[3]} | {a:.3f} | {b:.3f} | {c:.3f} | {d:.3f} | {a/c:.2f}x | {min(a,b)/d:.2f}x |')" \
      "$r" "$load" "$size" "$a" "$b" "$c" "$d"
  done
done
