#!/usr/bin/env bash
# Sets up a fresh machine and runs the main job. Until the daemon and the embedded model land,
# that is one clip generated offline by the Swift runtime from a diffusers model folder.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release --product vidrd
model="${VIDRD_MODEL:-Tests/Fixtures/tiny-lpb2/model}"
.build/release/vidrd clip --model "$model" --prompt "${1:-a red ball bouncing on grass}" \
  --steps 25 --frames 16 --out out/demo
echo "open out/demo/clip.webp"
