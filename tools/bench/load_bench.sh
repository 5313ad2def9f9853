#!/usr/bin/env bash
# Load time and peak RSS on a full-size folder (tools/reference/make_modelscope_size.py: ModelScope's
# 1.7 B-parameter model, fp16 weights), PyTorch (tools/bench/load_bench_torch.py: from_pretrained
# in fp32) and Swift (vidrd-bench's "load" line, then one U-Net forward, batch 2 x 8 frames x 8x8
# latents) alternated round by round, each in a fresh process (peak RSS is per process), so that
# this VM's drifting speed hits both sides alike; compare within a round. The issue's targets:
# RSS ratio <= 0.7, load ratio <= 1. The forward seconds are not like for like: vidrd-bench times
# a call after a warm-up one, the PyTorch script its first call; the RSS after it is the point.
#   bash tools/bench/load_bench.sh [ROUNDS]
#   (MODEL=/work/bench-models/modelscope-size PYTHON=/work/venv/bin/python VIDRD_BENCH=.build/release/vidrd-bench)
# Does not build: swift build -c release --product vidrd-bench first (or point VIDRD_BENCH at one).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-2}
MODEL=${MODEL:-/work/bench-models/modelscope-size}
PYTHON=${PYTHON:-/work/venv/bin/python}
BENCH=${VIDRD_BENCH:-.build/release/vidrd-bench}
[ -f "$MODEL/model_index.json" ] || { echo "no model folder at $MODEL: $PYTHON tools/reference/make_modelscope_size.py --out $MODEL" >&2; exit 1; }
[ -x "$BENCH" ] || { echo "no $BENCH: swift build -c release --product vidrd-bench, or set VIDRD_BENCH" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Runs "$@" with stdout to $1.out-file; on failure shows its stderr and stops.
run() {
  local out=$1; shift
  if ! "$@" >"$out" 2>"$out.err"; then echo "failed: $*" >&2; cat "$out.err" >&2; exit 1; fi
  grep '^{.*"name"' "$out" || true
}
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: $(uptime)"
  cut -d' ' -f1 /proc/loadavg >"$tmp/load.$r"
  run "$tmp/torch.$r" "$PYTHON" tools/bench/load_bench_torch.py --model "$MODEL" --frames 8 --latent 8
  run "$tmp/swift.$r" "$BENCH" --model "$MODEL" --frames 8 --latents 8 --clip-size 0 --repeats 1
done
echo
python3 - "$tmp" "$ROUNDS" <<'EOF'
import json, sys
tmp, rounds = sys.argv[1], int(sys.argv[2])
FORWARD = "unet_b2f8_8x8"

def lines(path):
    out = {}
    for l in open(path):
        if l.startswith("{"):
            d = json.loads(l)
            if "name" in d:
                out[d["name"]] = d
    return out

def f(v, spec):
    return format(v, spec) if isinstance(v, (int, float)) else "n/a"

def ratio(a, b):
    return f"{a / b:.2f}x" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "n/a"

print("| round | load average | PyTorch load s | Swift load s | load Swift ÷ PyTorch | PyTorch peak RSS MB after load "
      "| Swift peak RSS MB after load | RSS Swift ÷ PyTorch | PyTorch forward s | Swift forward s | forward Swift ÷ PyTorch "
      "| PyTorch peak RSS MB after forward | Swift peak RSS MB after forward | RSS Swift ÷ PyTorch |")
print("|" + " --- |" * 14)
for r in range(1, rounds + 1):
    t, s = lines(f"{tmp}/torch.{r}"), lines(f"{tmp}/swift.{r}")
    load = open(f"{tmp}/load.{r}").read().strip()
    cells = [str(r), load]
    for name in ("load", FORWARD):
        a, b = t.get(name, {}), s.get(name, {})
        ts, ss, tr, sr = a.get("median_s"), b.get("median_s"), a.get("peak_rss_mb"), b.get("peak_rss_mb")
        cells += [f(ts, ".2f"), f(ss, ".2f"), ratio(ss, ts), f(tr, ".0f"), f(sr, ".0f"), ratio(sr, tr)]
    print("| " + " | ".join(cells) + " |")
EOF
