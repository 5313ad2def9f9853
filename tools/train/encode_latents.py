#!/usr/bin/env python3
"""Pre-encode every clip (all 16 frames) with the stage-1 VAE encoder (frozen from here on, as in
the paper) and tokenize every caption. Writes RUN/latents/{split}.npy (N,16,4,8,8 float16, already
multiplied by scaling_factor; posterior mean) and RUN/latents/{split}_ids.npy (N,3,77 int32,
missing captions = -1 rows) + {split}_ncap.npy.

  nice -n 19 python tools/train/encode_latents.py [--split train]
"""
import argparse
import os

import numpy as np
import torch
from diffusers import AutoencoderKL
from transformers import CLIPTokenizer

from common import RUNS, ClipData, log


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(RUNS, "data"))
    ap.add_argument("--vae", default=os.path.join(RUNS, "vae", "vae"))
    ap.add_argument("--tokenizer", default=os.path.join(RUNS, "tokenizer"))
    ap.add_argument("--out", default=os.path.join(RUNS, "latents"))
    ap.add_argument("--split", nargs="+", default=["train", "test"])
    ap.add_argument("--batch", type=int, default=16, help="clips per encoder batch")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    vae = AutoencoderKL.from_pretrained(a.vae).eval()
    sf = vae.config.scaling_factor
    tok = CLIPTokenizer.from_pretrained(a.tokenizer)
    for split in a.split:
        data = ClipData(os.path.join(a.data, split))
        n = len(data)
        ids = np.full((n, 3, 77), -1, np.int32)
        ncap = np.zeros(n, np.int32)
        for i, m in enumerate(data.meta):
            caps = m["captions"][:3]
            enc = tok(caps, padding="max_length", max_length=77, truncation=True).input_ids
            ids[i, :len(caps)] = np.array(enc, np.int32)
            ncap[i] = len(caps)
        np.save(os.path.join(a.out, f"{split}_ids.npy"), ids)
        np.save(os.path.join(a.out, f"{split}_ncap.npy"), ncap)
        path = os.path.join(a.out, f"{split}.npy")
        tmp = np.lib.format.open_memmap(path + ".part.npy", mode="w+", dtype=np.float16, shape=(n, 16, 4, 8, 8))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            for s in range(0, n, a.batch):
                e = min(n, s + a.batch)
                x = np.stack([data.clip(i) for i in range(s, e)])  # (b,16,64,64,3)
                x = torch.from_numpy(x).reshape(-1, 64, 64, 3).permute(0, 3, 1, 2).float() / 127.5 - 1
                z = vae.encode(x).latent_dist.mean.float() * sf
                tmp[s:e] = z.reshape(e - s, 16, 4, 8, 8).numpy().astype(np.float16)
                if (s // a.batch) % 50 == 0:
                    log(f"{split} {e}/{n}")
        tmp.flush()
        del tmp
        os.replace(path + ".part.npy", path)
        log(f"wrote {path}")


if __name__ == "__main__":
    main()
