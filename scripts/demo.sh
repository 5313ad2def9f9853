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

# shellcheck source=lib/daemon.sh
source scripts/lib/daemon.sh
bash scripts/install-deps.sh
scratch="${VIDRD_SCRATCH:-.build}"
build_release vidrd-daemon vidrd-client
launch_daemon
trap 'kill -TERM $daemon 2>/dev/null || true; wait $daemon 2>/dev/null || true' EXIT
wait_for_daemon demo

rm -rf out/stream
"$bin/vidrd-client" stream --server "127.0.0.1:$port" --prompt "$prompt" --clips 3 --out out/stream \
  --webp out/stream/stream.webp

kill -TERM $daemon
wait $daemon
trap - EXIT
echo "frames: out/stream/frame_*.webp; animation: out/stream/stream.webp; daemon log: out/daemon.log"
