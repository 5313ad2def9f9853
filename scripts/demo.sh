#!/usr/bin/env bash
# The main job on a fresh machine: install the system libraries, build release, start
# vidrd-daemon in the background, stream 3 clips with vidrd-client into out/stream/, stop the
# daemon (SIGTERM: graceful drain).
#
#   bash scripts/demo.sh ["prompt"]
#
# Model: $VIDRD_MODEL when set, else the daemon's default, the embedded Models/vidrd-tiny.
# Port: $VIDRD_PORT (default 7878). Build folder: $VIDRD_SCRATCH (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
prompt="${1:-a red circle moving left on a blue background}"
port="${VIDRD_PORT:-7878}"

bash scripts/install-deps.sh
scratch="${VIDRD_SCRATCH:-.build}"
swift build -c release --scratch-path "$scratch" --product vidrd-daemon
swift build -c release --scratch-path "$scratch" --product vidrd-client
bin="$scratch/release"

model_args=()
if [ -n "${VIDRD_MODEL:-}" ]; then
  model_args=(--model "$VIDRD_MODEL")
fi

mkdir -p out
"$bin/vidrd-daemon" --listen "127.0.0.1:$port" "${model_args[@]}" 2> out/daemon.log &
daemon=$!
trap 'kill -TERM $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true' EXIT

# Wait (bounded) until the daemon answers.
for _ in $(seq 1 120); do
  if "$bin/vidrd-client" info --server "127.0.0.1:$port" > /dev/null 2>&1; then break; fi
  if ! kill -0 $daemon 2>/dev/null; then echo "demo: the daemon exited; see out/daemon.log" >&2; cat out/daemon.log >&2; exit 1; fi
  sleep 0.5
done

rm -rf out/stream
"$bin/vidrd-client" stream --server "127.0.0.1:$port" --prompt "$prompt" --clips 3 --out out/stream \
  --webp out/stream/stream.webp

kill -TERM $daemon
wait $daemon
trap - EXIT
echo "frames: out/stream/frame_*.webp; animation: out/stream/stream.webp; daemon log: out/daemon.log"
