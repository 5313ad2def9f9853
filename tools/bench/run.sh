#!/usr/bin/env bash
# Paired benchmark: the Swift runtime against PyTorch eager on the same model, same machine, one run.
#   bash tools/bench/run.sh            (MODEL=small THREADS=2 REPEATS=5 PYTHON=/work/venv/bin/python)
# Needs the reference venv (tools/reference/requirements.txt). Prints the BENCHMARKS.md table.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-small}
THREADS=${THREADS:-2}
REPEATS=${REPEATS:-5}
PYTHON=${PYTHON:-/work/venv/bin/python}
MODELS_ROOT=${VIDRD_BENCH_MODELS:-/work/bench-models}
out=$(mktemp -d)
swift build -c release --product vidrd-bench >/dev/null
# PyTorch first: it also builds and caches the seeded random model folder.
"$PYTHON" tools/bench/bench_torch.py --model "$MODEL" --threads "$THREADS" --repeats "$REPEATS" \
  --only unet_b2f16_8x8 unet_b2f16_16x16 pipeline_25steps_64px | tee "$out/torch.jsonl"
.build/release/vidrd-bench --model "$MODELS_ROOT/$MODEL" --repeats "$REPEATS" --clip-size 64 | tee "$out/swift.jsonl"
"$PYTHON" tools/bench/flops.py --model "$MODELS_ROOT/$MODEL" > "$out/flops.jsonl"
# This machine's GEMM ceiling, measured now: the best single-threaded 1024-cube sgemm.
bash tools/bench/gemm_bench.sh 5 square | tee "$out/gemm.jsonl"
echo
THREADS="$THREADS" "$PYTHON" tools/bench/report.py "$out/torch.jsonl" "$out/swift.jsonl" "$out/flops.jsonl" "$out/gemm.jsonl"
