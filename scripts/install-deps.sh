#!/usr/bin/env bash
# Installs the Debian packages vidrd links against (idempotent).
#   bash scripts/install-deps.sh          # build dependencies
#   bash scripts/install-deps.sh --test   # also chromium, ffmpeg and haproxy, for the viewer, Y4M and HAProxy tests
set -euo pipefail
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
updated=""

# Installs the missing ones of "$@"; returns apt-get's status.
install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ -z "$updated" ]; then $sudo apt-get update && updated=1; fi
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
}

install libuv1-dev libopenblas-dev libwebp-dev pkg-config
# The test tools are optional: without them those tests are skipped (and say so), the rest run.
if [ "${1:-}" = "--test" ]; then
  install chromium ffmpeg || echo "install-deps: cannot install chromium/ffmpeg; the browser and Y4M tests will be skipped" >&2
  install haproxy || echo "install-deps: cannot install haproxy; the HAProxy tests will be skipped" >&2
fi
