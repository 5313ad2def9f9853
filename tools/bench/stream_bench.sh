#!/usr/bin/env bash
# Streaming measurements of vidrd-daemon + vidrd-client (release build): cadence and throughput of
# concurrent sessions, and the daemon's memory while a client that stopped reading holds a session.
#
#   bash tools/bench/stream_bench.sh [--no-stalled] [MODEL_DIR] [WORKERS]
#
# Defaults: the daemon's default model (the embedded Models/vidrd-tiny), the daemon's default workers (one per core). Sessions use
# the daemon's defaults (the model's native size, 16 frames/clip, 25 steps, the model's guidance,
# plugins.conf's chain and emission), one connection each, distinct seeds. Every client writes
# `--timings`; tools/bench/stream_stats.py turns them into per-session frames/s, time to first
# frame (TTFF), p50 / p99 / max gap between consecutive frames, aggregate frames/s (all frames /
# earliest start to last frame) and the spread of the per-session rates.
#
# Scenarios, in this order:
#   warm-up        one session, 2 clips: the time per clip T1 that sizes the runs below
#   1 session      CLIPS_1 clips (default: enough for BENCH_SECONDS from first to last frame)
#   4 sessions     4 at once, CLIPS_MULTI clips each (default: enough for BENCH_SECONDS even if
#   8 sessions     the daemon made 4 sessions twice as fast as one); the same count for 4 and 8 so
#                  their per-session numbers compare (frames/s over K clips reads about K/(K-1)
#                  high: frames come in bursts of a clip)
#   light alone    one default session, LIGHT_CLIPS clips (8): the light stream's own baseline
#   light + heavy  the light stream again, endless; once its second clip arrives a second client
#                  asks for one 30-step 128×128×64-frame clip; the light stream goes on until the
#                  heavy clip is complete and two more light clips have arrived (cap: HEAVY_CAP_S,
#                  600 s); reports the light stream's max gap alone and with the neighbour
#   stalled client the earlier memory measurements (skipped with --no-stalled)
# The end is a Markdown table for BENCHMARKS.md and the issue's targets checked on these numbers.
#
# Environment: DAEMON_ARGS (extra vidrd-daemon arguments, e.g. "--max-batch 8"; they come last and
# win), DAEMON_CONF (extra lines for the daemon's configuration file, e.g. "max_session_weight = 4"),
# LIGHT_ARGS (extra vidrd-client arguments of the light stream, alone and next to the heavy one,
# e.g. "--weight 3"), ONLY_LIGHT=1 (skip the 1/4/8-session runs), BENCH_SECONDS (20), CLIPS_1, CLIPS_MULTI, LIGHT_CLIPS, HEAVY_CAP_S (set the clip counts to
# compare two daemons on equal work), BENCH_OUT (folder for the timings and logs; default a new
# /tmp/vidrd-bench.*), VIDRD_SCRATCH (build folder, .build), VIDRD_PORT (17901).
# Takes about 10 minutes on 2 cores (9 min 12 s under load average 4.5, today's clip-level
# scheduler, 1 worker); the clip counts follow the machine's speed, so a faster one saves little.
set -euo pipefail
cd "$(dirname "$0")/../.."
stalled=1
positional=()
for a in "$@"; do
  case "$a" in
    --no-stalled) stalled=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) positional+=("$a") ;;
  esac
done
model="${positional[0]:-}"
workers="${positional[1]:-}"
worker_args=()
[ -n "$workers" ] && worker_args=(--workers "$workers")
scratch="${VIDRD_SCRATCH:-.build}"
port="${VIDRD_PORT:-17901}"
bench_seconds="${BENCH_SECONDS:-20}"
light_clips="${LIGHT_CLIPS:-8}"
heavy_cap="${HEAVY_CAP_S:-600}"
read -r -a daemon_args <<< "${DAEMON_ARGS:-}"
read -r -a light_args <<< "${LIGHT_ARGS:-}"
only_light="${ONLY_LIGHT:-0}"
out="${BENCH_OUT:-$(mktemp -d /tmp/vidrd-bench.XXXXXX)}"
mkdir -p "$out"
stats="python3 tools/bench/stream_stats.py"
nice -n 10 swift build -c release --scratch-path "$scratch" --product vidrd-daemon >/dev/null
nice -n 10 swift build -c release --scratch-path "$scratch" --product vidrd-client >/dev/null
bin="$scratch/release"
server="127.0.0.1:$port"
prompt="a red circle moving left on a blue background"
model_args=()
[ -n "$model" ] && model_args=(--model "$model")
bench_start=$(date +%s)

load=$(cut -d' ' -f1 /proc/loadavg)
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); model ${model:-default (Models/vidrd-tiny)}; workers ${workers:-the daemon default}; DAEMON_ARGS '${DAEMON_ARGS:-}'; $(date -u '+%Y-%m-%d %H:%M UTC'); timings in $out"
if awk -v l="$load" 'BEGIN { exit !(l > 0.5) }'; then
  echo "WARNING: load average $load > 0.5: other work shares the CPUs; take the numbers for their shape, not their speed"
fi

# Limits that admit the heavy 128×128×64-frame clip whatever the model's native size (the bench
# itself sends nothing bigger); DAEMON_ARGS still override them.
conf="$out/daemon.conf"
printf 'max_size_factor = 0\nmax_frames_per_clip = 64\nmax_steps = 200\n' > "$conf"
[ -n "${DAEMON_CONF:-}" ] && printf '%s\n' "$DAEMON_CONF" >> "$conf"
daemon=
clients=()
cleanup() {
  for p in "${clients[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [ -n "$daemon" ] && kill -TERM "$daemon" 2>/dev/null || true
}
trap cleanup EXIT
start_daemon() {  # extra vidrd-daemon arguments
  "$bin/vidrd-daemon" "${model_args[@]}" --listen "$server" "${worker_args[@]}" --log-level warning "$@" "${daemon_args[@]}" \
    2>>"$out/daemon.log" &
  daemon=$!
  for _ in $(seq 1 240); do "$bin/vidrd-client" info --server "$server" >/dev/null 2>&1 && return; sleep 0.5; done
  echo "the daemon did not answer within 120 s; $out/daemon.log:"; tail -5 "$out/daemon.log"; exit 1
}
rss() { grep -E "^$1" /proc/$daemon/status | awk '{print $2 " kB"}'; }
stream() {  # NAME SEED [client arguments...]: one client in the background, its pid in $!
  local name=$1 seed=$2
  shift 2
  "$bin/vidrd-client" stream --server "$server" --prompt "$prompt" --seed "$seed" --timings "$out/$name.csv" "$@" \
    >/dev/null 2>"$out/$name.log" &
}
rows() { grep -c '^[0-9]' "$1" 2>/dev/null || true; }              # frames recorded so far
last_clip() { tail -n 1 "$1" 2>/dev/null | awk -F, '/^[0-9]/ { c = $2 } END { print c + 0 }'; }  # 0 before any frame
clip_time() {  # CSV: seconds from the first frame of clip 0 to the first frame of clip 1
  awk -F, '/^[0-9]/ { if (!t0) t0 = $3; if ($2 == 1) { printf "%.3f", $3 - t0; exit } }' "$1"
}
# Runs N sessions of K clips at once and prints their table. Arguments: SCENARIO N K SEED0.
run_sessions() {
  local label=$1 n=$2 clips=$3 seed0=$4 i
  local name=${label// /-}
  local pids=()
  echo
  echo "== $label: $n concurrent session(s) (one connection each), $clips clips each"
  for i in $(seq 1 "$n"); do
    stream "$name-s$i" $((seed0 + i)) --clips "$clips"
    pids+=($!)
  done
  clients=("${pids[@]}")
  for i in $(seq 1 "$n"); do
    wait "${pids[$((i - 1))]}" || echo "session $i FAILED: $(tail -1 "$out/$name-s$i.log")"
  done
  clients=()
  for i in $(seq 1 "$n"); do echo "  client $i: $(tail -1 "$out/$name-s$i.log")"; done
  local files=()
  for i in $(seq 1 "$n"); do files+=("$out/$name-s$i.csv"); done
  $stats --label "$label" --min-span "$bench_seconds" "${files[@]}"
  $stats --label "$label" --json "${files[@]}" > "$out/$name.json"
  summaries+=("$out/$name.json")
}
summaries=()

start_daemon --config "$conf"
echo "daemon RSS after loading the model: $(rss VmRSS)"

echo
echo "== warm-up: 1 session, 2 clips"
stream warm-up 100 --clips 2
wait $!
echo "  client: $(tail -1 "$out/warm-up.log")"
t1=$(clip_time "$out/warm-up.csv")
[ -n "$t1" ] || { echo "the warm-up session received no second clip"; exit 1; }
# Frames/s is measured from the first frame to the last, so K clips stream for about K-1 clips.
clips_1="${CLIPS_1:-$(awk -v s="$bench_seconds" -v t="$t1" 'BEGIN { k = int(s / t + 0.999) + 1; print (k < 4 ? 4 : k) }')}"
# 4 sessions sharing the daemon get a clip each about every 4 T1 / speedup; sized for a speedup of 2.
clips_multi="${CLIPS_MULTI:-$(awk -v s="$bench_seconds" -v t="$t1" 'BEGIN { k = int(s * 2 / (4 * t) + 0.999) + 1; print (k < 4 ? 4 : k) }')}"
echo "  one clip every $t1 s: $clips_1 clips for 1 session, $clips_multi clips per session for 4 and 8 (CLIPS_1, CLIPS_MULTI override)"

if [ "$only_light" != 1 ]; then
  run_sessions "1 session" 1 "$clips_1" 0
  run_sessions "4 sessions" 4 "$clips_multi" 10
  run_sessions "8 sessions" 8 "$clips_multi" 20
fi
echo "daemon peak RSS so far: $(rss VmHWM)"

echo
echo "== light + heavy: the light stream alone ($light_clips clips), then again while another client runs one 30-step 128×128×64-frame clip (light stream arguments: ${LIGHT_ARGS:-none})"
stream light-alone 31 --clips "$light_clips" "${light_args[@]}"
wait $!
echo "  light alone: $(tail -1 "$out/light-alone.log")"
$stats --label "light alone" "$out/light-alone.csv"
$stats --label "light alone" --json "$out/light-alone.csv" > "$out/light-alone.json"
stream light-with-heavy 31 "${light_args[@]}"
light=$!
clients=($light)
until [ "$(last_clip "$out/light-with-heavy.csv.tmp")" -ge 1 ]; do
  kill -0 $light 2>/dev/null || { echo "the light stream ended early: $(tail -1 "$out/light-with-heavy.log")"; exit 1; }
  sleep 0.2
done
heavy_started=$(date +%s.%N)
stream heavy 32 --clips 1 --width 128 --height 128 --frames 64 --steps 30
heavy=$!
clients=($light $heavy)
heavy_status=running
while [ "$heavy_status" = running ]; do
  if ! kill -0 $heavy 2>/dev/null; then
    if wait $heavy; then heavy_status=completed; else heavy_status="FAILED (exit $?)"; fi
  elif awk -v s="$heavy_started" -v e="$(date +%s.%N)" -v c="$heavy_cap" 'BEGIN { exit !(e - s > c) }'; then
    kill -INT $heavy; wait $heavy || true; heavy_status="NOT COMPLETE after the ${heavy_cap} s cap (cancelled)"
  else
    sleep 0.2
  fi
done
heavy_seconds=$(awk -v s="$heavy_started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
# The light stream's longest gap is closed only by its first frame after the heavy clip; two more
# clips make sure it is in the file (cap 120 s: a light stream that never recovers is a result too).
target=$(( $(last_clip "$out/light-with-heavy.csv.tmp") + 2 ))
for _ in $(seq 1 600); do
  [ "$(last_clip "$out/light-with-heavy.csv.tmp")" -ge "$target" ] && break
  sleep 0.2
done
kill -INT $light
wait $light || echo "the light stream FAILED: $(tail -1 "$out/light-with-heavy.log")"
clients=()
echo "  light with the neighbour: $(tail -1 "$out/light-with-heavy.log")"
echo "  heavy: $(tail -1 "$out/heavy.log")"
$stats --label "light + heavy neighbour" "$out/light-with-heavy.csv"
$stats --label "light + heavy neighbour" --json "$out/light-with-heavy.csv" > "$out/light-with-heavy.json"
$stats --label "heavy neighbour (1 clip 128×128×64, 30 steps)" --json "$out/heavy.csv" > "$out/heavy.json"
summaries+=("$out/light-alone.json" "$out/light-with-heavy.json" "$out/heavy.json")
echo "heavy clip: $heavy_status, $heavy_seconds s from its request to its end, $(rows "$out/heavy.csv") of 64 frames"
echo "daemon RSS: $(rss VmRSS), peak: $(rss VmHWM)"

if [ $stalled = 1 ]; then
  echo
  echo "== a client that stops reading (32×32 lossless frames, 16/clip, 2 steps, 64 credits) for 60 s, while another streams 3 clips"
  python3 tools/bench/stalled_client.py "$port" 60 32 32 16 2 &
  stalled_pid=$!
  sleep 2
  "$bin/vidrd-client" stream --server "$server" --prompt "$prompt" --seed 9 --clips 3 2>&1 | tail -1
  sleep 5
  "$bin/vidrd-client" info --server "$server" | grep -E "^(sessions|clips|queued):"
  echo "daemon RSS: $(rss VmRSS), peak: $(rss VmHWM)"
  wait $stalled_pid
  sleep 1
  "$bin/vidrd-client" info --server "$server" | grep -E "^(sessions|queued):"
  echo "daemon RSS after the stalled client left: $(rss VmRSS)"
fi
kill -TERM $daemon
wait $daemon || true
daemon=

if [ $stalled = 1 ]; then
  echo
  echo "== the same stalled client against a daemon with max_queued_bytes = 262144 and socket_send_buffer = 65536"
  stalled_conf="$out/stalled.conf"
  printf 'max_queued_bytes = 262144\nsocket_send_buffer = 65536\n' > "$stalled_conf"
  start_daemon --config "$stalled_conf"
  python3 tools/bench/stalled_client.py "$port" 30 32 32 16 2 &
  stalled_pid=$!
  sleep 25
  "$bin/vidrd-client" info --server "$server" | grep -E "^(sessions|clips|queued):"
  echo "daemon RSS: $(rss VmRSS), peak: $(rss VmHWM)"
  wait $stalled_pid
  kill -TERM $daemon
  wait $daemon || true
  daemon=
fi

echo
echo "== summary ($(date -u '+%Y-%m-%d %H:%M UTC'), load average at the start $load, workers ${workers:-the daemon default}, DAEMON_ARGS '${DAEMON_ARGS:-}', $(( $(date +%s) - bench_start )) s in all)"
$stats --summary "${summaries[@]}"
echo
python3 - "$out" "$heavy_status" <<'EOF'
import json, os, sys
out, heavy_status = sys.argv[1], sys.argv[2]
def load(name):
    with open(os.path.join(out, name + ".json")) as f:
        return json.load(f)
def agg(name):
    path = os.path.join(out, name + ".json")
    return load(name)["aggregate"] if os.path.exists(path) else {"frames_per_s": None, "spread_pct": None}
one, four, eight = agg("1-session"), agg("4-sessions"), agg("8-sessions")
alone = load("light-alone")["sessions"][0]
shared = load("light-with-heavy")["sessions"][0]
heavy = load("heavy")["sessions"][0]
def ratio(a, b):
    return a / b if a is not None and b else None
def text(value, unit=""):
    return "-" if value is None else f"{value:.2f}{unit}"
def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "NOT met")
r4 = ratio(four["frames_per_s"], one["frames_per_s"])
r8 = ratio(eight["frames_per_s"], four["frames_per_s"])
rg = ratio(shared["gap_max_s"], alone["gap_max_s"])
print("Targets (issue 18):")
print(f"- light stream max gap: alone {text(alone['gap_max_s'], ' s')}, with the heavy neighbour {text(shared['gap_max_s'], ' s')}: "
      f"{text(rg, '×')} (target ≤ 2×: {verdict(None if rg is None else rg <= 2)}); heavy clip {heavy_status}, "
      f"{heavy['frames']} frames, first after {text(heavy['ttff_s'], ' s')}, last after {text(heavy['last_frame_s'], ' s')}")
print(f"- 4 sessions aggregate / 1 session: {text(r4, '×')} (target ≥ 1.25×: {verdict(None if r4 is None else r4 >= 1.25)}); "
      f"per-session spread {text(four['spread_pct'], ' %')} (max/min - 1; target within ±15 %: "
      f"{verdict(None if four['spread_pct'] is None else four['spread_pct'] <= 15)})")
print(f"- 8 sessions aggregate / 4 sessions: {text(r8, '×')} (target ≥ 1×: {verdict(None if r8 is None else r8 >= 1)}); "
      f"8-session spread {text(eight['spread_pct'], ' %')}")
EOF
trap - EXIT
