#!/usr/bin/env bash
# Installs the Debian packages vidrd links against (idempotent).
#   bash scripts/install-deps.sh          # build dependencies
#   bash scripts/install-deps.sh --test   # also chromium and ffmpeg, for the viewer and Y4M tests
set -euo pipefail
packages=(libuv1-dev libopenblas-dev libwebp-dev pkg-config)
if [ "${1:-}" = "--test" ]; then packages+=(chromium ffmpeg); fi
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  $sudo apt-get install -y --no-install-recommends "${missing[@]}"
fi
