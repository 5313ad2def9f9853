#!/usr/bin/env bash
# Wait for the given training PIDs to exit, then export Models/vidrd-tiny and write a sample sheet.
#   nohup tools/train/finish.sh PID [PID...] > /work/train-runs/finish.log 2>&1 &
cd "$(dirname "$0")/../.."
PY=${PY:-/work/venv/bin/python}
RUNS=${VIDRD_RUNS:-/work/train-runs}
for p in "$@"; do while kill -0 "$p" 2>/dev/null; do sleep 10; done; done
echo "$(date +%T) training stopped; export"
$PY tools/train/export.py --out Models/vidrd-tiny >> "$RUNS/export.log" 2>&1
echo "$(date +%T) export rc $?"
OMP_WAIT_POLICY=PASSIVE nice -n 19 $PY tools/train/sample.py --model Models/vidrd-tiny --out docs/vidrd_tiny_samples.png >> "$RUNS/sample.log" 2>&1
echo "$(date +%T) sample rc $?"
