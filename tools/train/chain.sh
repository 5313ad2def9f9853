#!/usr/bin/env bash
# Background chain used in the 2026-11-25 session: waits for stage 1 (VAE) to be exported, then
# U-Net + text encoder until UNET_UNTIL, temporal decoder until TDEC_UNTIL, then export + sample.
#   nohup tools/train/chain.sh 17:08 17:22 > /work/train-runs/chain.log 2>&1 &
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-/work/venv/bin/python}
RUNS=${VIDRD_RUNS:-/work/train-runs}
UNET_UNTIL=${1:-17:08}
TDEC_UNTIL=${2:-17:22}
N="nice -n 19"
export OMP_WAIT_POLICY=PASSIVE  # niced threads that spin-wait waste the little CPU they get
while [ ! -f "$RUNS/vae/vae/config.json" ]; do sleep 10; done
echo "$(date +%T) VAE ready; U-Net until $UNET_UNTIL"
$N $PY tools/train/train_unet.py --steps ${UNET_STEPS:-4000} --resume --until "$UNET_UNTIL" >> "$RUNS/unet.log" 2>&1
echo "$(date +%T) U-Net stopped (rc $?); temporal decoder until $TDEC_UNTIL"
$N $PY tools/train/train_temporal_decoder.py --steps ${TDEC_STEPS:-800} --resume --until "$TDEC_UNTIL" >> "$RUNS/tdec.log" 2>&1
echo "$(date +%T) temporal decoder stopped (rc $?); export"
$PY tools/train/export.py --out Models/vidrd-tiny >> "$RUNS/export.log" 2>&1
echo "$(date +%T) export rc $?"
$N $PY tools/train/sample.py --model Models/vidrd-tiny --out docs/vidrd_tiny_samples.png >> "$RUNS/sample.log" 2>&1
echo "$(date +%T) sample rc $?"
