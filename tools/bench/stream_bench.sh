#!/usr/bin/env bash
# Streaming measurements of vidrd-daemon + vidrd-client (release build):
#   frames/s for 1 session and for 4 concurrent sessions (4 connections), time to first frame,
#   and the daemon's peak RSS while a client that stopped reading holds a session.
#
#   bash tools/bench/stream_bench.sh [MODEL_DIR] [WORKERS]
#
# Defaults: the daemon's default model (the embedded Models/vidrd-tiny), 1 worker.
# Sessions use the daemon's defaults (the model's native
# size, 16 frames/clip, 25 steps, guidance 7.5, plugins.conf's chain and emission).
# Build folder: $VIDRD_SCRATCH (default .build). Port: $VIDRD_PORT (default 17901).
set -euo pipefail
cd "$(dirname "$0")/../.."
model="${1:-}"
workers="${2:-1}"
scratch="${VIDRD_SCRATCH:-.build}"
port="${VIDRD_PORT:-17901}"
swift build -c release --scratch-path "$scratch" --product vidrd-daemon >/dev/null
swift build -c release --scratch-path "$scratch" --product vidrd-client >/dev/null
bin="$scratch/release"
server="127.0.0.1:$port"
prompt="a red circle moving left on a blue background"
model_args=()
[ -n "$model" ] && model_args=(--model "$model")

echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); model ${model:-default (Models/vidrd-tiny)}; workers $workers"
"$bin/vidrd-daemon" "${model_args[@]}" --listen "$server" --workers "$workers" --log-level warning 2>/tmp/vidrd-bench-daemon.log &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do "$bin/vidrd-client" info --server "$server" >/dev/null 2>&1 && break; sleep 0.5; done
rss() { grep -E "^$1" /proc/$daemon/status | awk '{print $2 " kB"}'; }
echo "daemon RSS after loading the model: $(rss VmRSS)"

echo "== 1 session, 10 clips"
"$bin/vidrd-client" stream --server "$server" --prompt "$prompt" --seed 1 --clips 10 2>&1 | tail -1

echo "== 4 concurrent sessions (4 connections), 5 clips each"
start=$(date +%s.%N)
pids=()
for i in 1 2 3 4; do
  "$bin/vidrd-client" stream --server "$server" --prompt "$prompt" --seed "$i" --clips 5 > /dev/null 2> "/tmp/vidrd-bench-$i.log" &
  pids+=($!)
done
wait "${pids[@]}"
end=$(date +%s.%N)
frames=0
for i in 1 2 3 4; do
  tail -1 "/tmp/vidrd-bench-$i.log"
  frames=$((frames + $(tail -1 "/tmp/vidrd-bench-$i.log" | awk '{print $3}')))
done
awk -v f="$frames" -v s="$start" -v e="$end" 'BEGIN { printf "aggregate: %d frames in %.2f s = %.2f frames/s\n", f, e - s, f / (e - s) }'
echo "daemon peak RSS so far: $(rss VmHWM)"

echo "== a client that stops reading (32×32 lossless frames, 16/clip, 2 steps, 64 credits) for 60 s, while another streams 3 clips"
python3 tools/bench/stalled_client.py "$port" 60 32 32 16 2 &
stalled=$!
sleep 2
"$bin/vidrd-client" stream --server "$server" --prompt "$prompt" --seed 9 --clips 3 2>&1 | tail -1
sleep 5
"$bin/vidrd-client" info --server "$server" | grep -E "sessions|clips|queued"
echo "daemon RSS: $(rss VmRSS), peak: $(rss VmHWM)"
wait $stalled
sleep 1
"$bin/vidrd-client" info --server "$server" | grep -E "sessions|queued"
echo "daemon RSS after the stalled client left: $(rss VmRSS)"
kill -TERM $daemon
wait $daemon

echo "== the same stalled client against a daemon with max_queued_bytes = 262144 and socket_send_buffer = 65536"
conf=$(mktemp)
printf 'max_queued_bytes = 262144\nsocket_send_buffer = 65536\n' > "$conf"
"$bin/vidrd-daemon" "${model_args[@]}" --listen "$server" --workers "$workers" --config "$conf" --log-level warning 2>>/tmp/vidrd-bench-daemon.log &
daemon=$!
for _ in $(seq 1 240); do "$bin/vidrd-client" info --server "$server" >/dev/null 2>&1 && break; sleep 0.5; done
python3 tools/bench/stalled_client.py "$port" 30 32 32 16 2 &
stalled=$!
sleep 25
"$bin/vidrd-client" info --server "$server" | grep -E "sessions|clips|queued"
echo "daemon RSS: $(rss VmRSS), peak: $(rss VmHWM)"
wait $stalled
kill -TERM $daemon
wait $daemon
rm -f "$conf"
trap - EXIT
