#!/usr/bin/env bash
# Quality and speed of the embedded model's stream per scheduler and step count (release build):
# DDIM 25 / 50 against DPM-Solver++ 8 / 10 / 15 (and Euler 25), the paper's chain fnr,pns,dsg
# with all frames emitted.
#
#   PYTHON=<venv>/bin/python bash tools/bench/scheduler_bench.sh [OUT]
#
# Quality, two measures that fail differently:
#   adherence  `vidrd longeval`'s scene scorer (docs/LONG_VIDEO.md): the fraction of streams whose
#              clip 0 and clip 3 show the prompt's colour, background and motion, over PROMPTS
#              (8 prompts of the dataset's vocabulary) × seeds 1,2, 4 clips each; plus its
#              novelty and seam ratio, so that a sampler that freezes or loops is seen.
#   distance   PSNR (dB) of each setting's clip 0 (16 frames, `vidrd clip`, lossless WebP) to DDIM
#              100 from the same noise: how close the few-step solver gets to the trajectory both
#              approximate (the probability-flow ODE). A blurry or wrong clip loses here even when
#              its colours pass the scorer.
# Speed: one vidrd-daemon session (vidrd-client --timings, tools/bench/stream_stats.py), CLIPS
# clips (default 8), per setting, RUNS times (default 2) interleaved; frames/s from the first frame
# to the last. Run it on an idle machine (the load average is printed and checked).
# PYTHON needs Pillow (WebP decoding) for the distance; tools/reference's venv has it.
# PRECISION=bf16 runs the settings in the bf16 fast mode (docs/RUNTIME.md); the DDIM 100 reference
# of the distance stays fp32. PARTS="quality speed" (default both) narrows the run.
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-$(mktemp -d /tmp/vidrd-sched.XXXXXX)}"
mkdir -p "$out"
py="${PYTHON:-python3}"
runs="${RUNS:-2}"
clips="${CLIPS:-8}"
port="${VIDRD_PORT:-17931}"
settings="${SETTINGS:-ddim:25 ddim:50 dpm++:8 dpm++:10 dpm++:15 euler:25}"
precision="${PRECISION:-fp32}"
parts="${PARTS:-quality speed}"
# Results of another precision go to their own files, so one OUT can hold both.
tag=""; [ "$precision" = fp32 ] || tag="-$precision"
prompts="${PROMPTS:-a red circle moving left on a blue background|a green square moving up on a white background|a yellow star moving right on a black background|a white circle moving down on a purple background|a blue triangle growing on a yellow background|an orange diamond shrinking on a gray background|a purple ring moving left on a green background|a pink cross moving right on a blue background}"
swift build -c release --product vidrd >/dev/null
swift build -c release --product vidrd-daemon >/dev/null
swift build -c release --product vidrd-client >/dev/null
bin=.build/release
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%Y-%m-%d %H:%M UTC'); output in $out"

IFS='|' read -r -a prompt_list <<< "$prompts"
if [[ " $parts " == *" quality "* ]]; then
echo
echo "== adherence (vidrd longeval, fnr,pns,dsg@all, clips 0 and 3), $precision"
for s in $settings; do
  kind=${s%%:*} steps=${s##*:}
  [ -f "$out/longeval-$kind-$steps$tag.json" ] ||
    "$bin/vidrd" longeval --chains "fnr,pns,dsg@all" --clips 4 --at 3 --seeds 1,2 --prompts "$prompts" --precision "$precision" \
      --scheduler "$kind" --steps "$steps" --json "$out/longeval-$kind-$steps$tag.json" > "$out/longeval-$kind-$steps$tag.md" 2>/dev/null
  echo "$kind $steps: $(grep '^| fnr' "$out/longeval-$kind-$steps$tag.md")"
done

echo
echo "== distance to DDIM 100 (clip 0, 16 frames, seeds 1,2)"
clip() {  # KIND STEPS PROMPT_INDEX SEED PRECISION
  local suffix=""; [ "$5" = fp32 ] || suffix="-$5"
  local dir="$out/clips/$1-$2$suffix/p$3-s$4"
  [ -f "$dir/frame_000015.webp" ] ||
    "$bin/vidrd" clip --prompt "${prompt_list[$3]}" --seed "$4" --frames 16 --scheduler "$1" --steps "$2" \
      --precision "$5" --lossless --out "$dir" >/dev/null 2>&1
}
for i in "${!prompt_list[@]}"; do
  for seed in 1 2; do
    clip ddim 100 "$i" "$seed" fp32
    for s in $settings; do clip "${s%%:*}" "${s##*:}" "$i" "$seed" "$precision"; done
  done
done
"$py" - "$out/clips" "$tag" $settings <<'EOF'
import math, os, sys
from PIL import Image
root, tag, settings = sys.argv[1], sys.argv[2], sys.argv[3:]
def frames(d):
    return [list(Image.open(os.path.join(d, f)).convert("RGB").getdata()) for f in sorted(os.listdir(d)) if f.startswith("frame_")]
ref_root = os.path.join(root, "ddim-100")
for s in settings:
    kind, steps = s.split(":")
    psnrs = []
    for clip in sorted(os.listdir(ref_root)):
        a, b = frames(os.path.join(ref_root, clip)), frames(os.path.join(root, f"{kind}-{steps}{tag}", clip))
        se = n = 0
        for fa, fb in zip(a, b):
            for pa, pb in zip(fa, fb):
                se += sum((x - y) ** 2 for x, y in zip(pa, pb)); n += 3
        psnrs.append(10 * math.log10(255 ** 2 / max(se / n, 1e-12)))
    psnrs.sort()
    print(f"{kind} {steps}{tag}: PSNR to DDIM 100 median {psnrs[len(psnrs) // 2]:.1f} dB, min {psnrs[0]:.1f} dB over {len(psnrs)} clips")
EOF

fi

[[ " $parts " == *" speed "* ]] || exit 0
echo
echo "== speed: one daemon session per setting, $clips clips, $runs runs interleaved, $precision"
"$bin/vidrd-daemon" --listen "127.0.0.1:$port" --precision "$precision" --log-level warning 2>>"$out/daemon.log" &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do "$bin/vidrd-client" info --server "127.0.0.1:$port" >/dev/null 2>&1 && break; sleep 0.5; done
for r in $(seq 1 "$runs"); do
  for s in $settings; do
    kind=${s%%:*} steps=${s##*:}
    echo "load average $(cut -d' ' -f1 /proc/loadavg)" > "$out/speed-$kind-$steps$tag-r$r.load"
    "$bin/vidrd-client" stream --server "127.0.0.1:$port" --prompt "${prompt_list[0]}" --seed 1 --clips "$clips" \
      --strategy fnr,pns,dsg --emission all --scheduler "$kind" --steps "$steps" \
      --timings "$out/speed-$kind-$steps$tag-r$r.csv" >/dev/null 2>"$out/speed-$kind-$steps$tag-r$r.log"
    echo "run $r $kind $steps ($(cat "$out/speed-$kind-$steps$tag-r$r.load")): $(python3 tools/bench/stream_stats.py --label "$kind $steps" "$out/speed-$kind-$steps$tag-r$r.csv" | grep '^speed-' | awk '{print $4 " frames/s (first to last frame), TTFF " $5 " s, max gap " $8 " s"}')"
  done
done
