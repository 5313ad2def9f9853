#!/usr/bin/env bash
# What a viewer of one stream sees, per strategy chain, through the real daemon and client (release
# build): frames/s, time to first frame, and the longest wait between two frames.
#
#   bash tools/bench/long_stream_bench.sh [CLIPS] [CHAIN ...]
#
# Each CHAIN is `vidrd-client stream` arguments in one quoted word, e.g. "--strategy fifo:window=8"
# or "--strategy fifo:window=16 --frames 4"; default: the paper's chain and the fifo variants of
# docs/PLUGINS.md. Every chain runs twice (seeds 1 and 2); the daemon uses its defaults (embedded
# model, 16 frames/clip, 25 steps). Run it on an idle machine: it prints the load average first.
# Build folder: $VIDRD_SCRATCH (default .build). Port: $VIDRD_PORT (default 17911).
set -euo pipefail
cd "$(dirname "$0")/../.."
clips="${1:-6}"
shift || true
chains=("$@")
if [ ${#chains[@]} -eq 0 ]; then
  chains=("--strategy fnr,pns,dsg --emission all" "--strategy fifo:window=8"
          "--strategy fifo:window=8 --frames 4" "--strategy fifo:window=8 --frames 1")
fi
scratch="${VIDRD_SCRATCH:-.build}"
port="${VIDRD_PORT:-17911}"
swift build -c release --scratch-path "$scratch" --product vidrd-daemon >/dev/null
swift build -c release --scratch-path "$scratch" --product vidrd-client >/dev/null
bin="$scratch/release"
server="127.0.0.1:$port"
prompt="a red circle moving left on a blue background"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $clips clips per stream"
"$bin/vidrd-daemon" --listen "$server" --log-level warning 2>/tmp/vidrd-long-bench-daemon.log &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do "$bin/vidrd-client" info --server "$server" >/dev/null 2>&1 && break; sleep 0.5; done
for chain in "${chains[@]}"; do
  for seed in 1 2; do
    # shellcheck disable=SC2086
    line=$("$bin/vidrd-client" stream --server "$server" --prompt "$prompt" --seed $seed --clips "$clips" $chain 2>&1 | tail -1)
    echo "$chain seed $seed: $line"
  done
done
