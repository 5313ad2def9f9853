#!/usr/bin/env bash
# Watch it live: builds release, starts vidrd-daemon and the web viewer's gateway, and serves
# the page until Ctrl-C (both processes are then stopped).
#
#   bash scripts/viewer.sh            # then open http://127.0.0.1:8080/
#
# Model: $VIDRD_MODEL when set, else the embedded Models/vidrd-tiny. Ports: $VIDRD_PORT (daemon,
# default 7878), $VIDRD_HTTP (page, default 127.0.0.1:8080). Build folder: $VIDRD_SCRATCH (default .build).
set -euo pipefail
cd "$(dirname "$0")/.."
port="${VIDRD_PORT:-7878}"
http="${VIDRD_HTTP:-127.0.0.1:8080}"

# shellcheck source=lib/daemon.sh
source scripts/lib/daemon.sh
bash scripts/install-deps.sh
scratch="${VIDRD_SCRATCH:-.build}"
build_release vidrd-daemon vidrd-client vidrd-viewer
launch_daemon
viewer=""
trap 'kill -TERM $viewer $daemon 2>/dev/null || true; wait $viewer $daemon 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
wait_for_daemon viewer

"$bin/vidrd-viewer" --http "$http" --server "127.0.0.1:$port" &
viewer=$!
echo "viewer: open http://$http/ (Ctrl-C stops the viewer and the daemon; daemon log: out/daemon.log)"
if command -v xdg-open > /dev/null 2>&1 && [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then xdg-open "http://$http/" > /dev/null 2>&1 || true; fi
wait $viewer
