#!/usr/bin/env python3
"""Temporal-aware vs frame-wise decoding of held-out videos (the paper's Table 2 "w/ vs w/o
fine-tuned VAE", in miniature), for the model card.

Encodes held-out test clips (8 frames, every 2nd frame of a 16-frame clip) with the shipped
encoder and decodes the latents twice with the same decoder weights: through the Temp-Conv layers
and with them bypassed (what a frame-wise decoder does). Reports reconstruction L1 (of [-1, 1]),
PSNR, and flicker = mean |(x[t+1] - x[t]) - (y[t+1] - y[t])| (0 = the reconstruction changes from
frame to frame exactly as the input does). The draws are seeded: `--n 32 --seed 99` is the same
set as `train_temporal_decoder.py`'s own evaluation, whose log recorded the stage-1 (image) decoder.

  PY=/work/venv/bin/python $PY tools/train/eval_decoder.py --vae Models/vidrd-tiny/vae
"""
import argparse
import json
import os

import torch

from common import RUNS, ClipData, log
from temporal_vae import TemporalAutoencoderKL
from train_temporal_decoder import evaluate


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(RUNS, "data"))
    ap.add_argument("--vae", default="Models/vidrd-tiny/vae")
    ap.add_argument("--n", type=int, default=128, help="held-out clips")
    ap.add_argument("--seed", type=int, default=99)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="JSON file for the numbers")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    vae = TemporalAutoencoderKL.from_pretrained(a.vae, torch_dtype=torch.float32).eval()
    if not vae.has_temp_convs:
        raise SystemExit(f"{a.vae}: no Temp-Conv layers (add_temp_conv is not set)")
    test = ClipData(os.path.join(a.data, "test"))
    result = dict(n=a.n, seed=a.seed, vae=a.vae, **evaluate(vae, test, n=a.n, seed=a.seed))
    log(json.dumps(result))
    if a.out:
        with open(a.out + ".tmp", "w") as fh:
            json.dump(result, fh, indent=1)
        os.replace(a.out + ".tmp", a.out)
    for name in ("framewise", "temporal"):
        r = result[name]
        print(f"| {name} | {r['l1']:.4f} | {r['psnr']:.2f} | {r['flicker']:.4f} |")


if __name__ == "__main__":
    main()
