#!/usr/bin/env bash
# Paired benchmark, one run, same model, same machine: PyTorch eager fp32, PyTorch bf16 autocast and
# torch.compile (inductor; it needs a C++ compiler, and a mode that fails becomes an "error" line, not an
# abort) against the Swift runtime in fp32 and in bf16 (vidrd-bench --precision bf16; skipped, with the
# reason, when vidrd-bench rejects it, e.g. on a CPU without avx512_bf16).
#   bash tools/bench/run.sh    (MODEL=small THREADS=2 REPEATS=5 PYTHON=/work/venv/bin/python
#                               MODES="eager bf16 compile": the PyTorch modes to run, e.g. MODES=eager)
# Needs the reference venv (tools/reference/requirements.txt). Prints the BENCHMARKS.md table: medians,
# speed-ups, Swift fp32 GFLOP/s against this machine's sgemm ceiling measured in the same run.
# torch.compile compiles cold for each benchmark (minutes of CPU each on 2 cores; not in the timings).
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")/../.."
MODEL=${MODEL:-small}
THREADS=${THREADS:-2}
REPEATS=${REPEATS:-5}
PYTHON=${PYTHON:-/work/venv/bin/python}
MODES=${MODES:-eager bf16 compile}
MODELS_ROOT=${VIDRD_BENCH_MODELS:-/work/bench-models}
BENCHES="unet_b2f16_8x8 unet_b2f16_16x16 pipeline_25steps_64px"
out=$(mktemp -d)
note() { echo "run.sh: $*" >&2; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
swift build -c release --product vidrd-bench >/dev/null
# PyTorch first: it also builds and caches the seeded random model folder.
for mode in $MODES; do
  # shellcheck disable=SC2086
  "$PYTHON" tools/bench/bench_torch.py --mode "$mode" --model "$MODEL" --threads "$THREADS" --repeats "$REPEATS" \
    --only $BENCHES | tee "$out/torch-$mode.jsonl" || note "bench_torch.py --mode $mode failed for some benchmark (its error lines are in the notes)"
done
bench=(.build/release/vidrd-bench --model "$MODELS_ROOT/$MODEL" --repeats "$REPEATS" --clip-size 64)
"${bench[@]}" | tee "$out/swift-fp32.jsonl"
if ! "${bench[@]}" --precision bf16 2>"$out/swift-bf16.err" | tee "$out/swift-bf16.jsonl"; then
  why="vidrd-bench --precision bf16 failed: $(tail -n 2 "$out/swift-bf16.err" | tr '\n' ' ')"
  note "skipping the Swift bf16 row: $why"
  "$PYTHON" -c 'import json, sys; print(json.dumps({"impl": "swift", "precision": "bf16", "error": sys.argv[1]}))' \
    "$why" >>"$out/swift-bf16.jsonl"
elif grep -q '"impl": *"swift"' "$out/swift-bf16.jsonl" && ! grep -q '"precision": *"bf16"' "$out/swift-bf16.jsonl"; then
  # Lines without "precision": "bf16" would count as fp32 in the report: keep them out of it.
  mv "$out/swift-bf16.jsonl" "$out/swift-bf16.unlabelled"
  note "skipping the Swift bf16 row: vidrd-bench --precision bf16 printed no \"precision\": \"bf16\" lines"
  echo '{"impl": "swift", "precision": "bf16", "error": "vidrd-bench --precision bf16 printed no \"precision\": \"bf16\" lines"}' \
    >"$out/swift-bf16.jsonl"
fi
"$PYTHON" tools/bench/flops.py --model "$MODELS_ROOT/$MODEL" > "$out/flops.jsonl"
# This machine's GEMM ceiling, measured now: the best single-threaded 1024-cube sgemm (OpenBLAS or ours).
bash tools/bench/gemm_bench.sh 5 square | tee "$out/gemm.jsonl"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
THREADS="$THREADS" "$PYTHON" tools/bench/report.py "$out"/torch-*.jsonl "$out"/swift-*.jsonl "$out/flops.jsonl" "$out/gemm.jsonl"
echo "(JSON lines in $out)"
