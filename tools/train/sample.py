#!/usr/bin/env python3
"""Generate clips with diffusers' TextToVideoSDPipeline (+ temporal-aware decode) and write a PNG
strip (one row per prompt, frames left to right).

From an exported folder:
  python tools/train/sample.py --model Models/vidrd-tiny --out docs/samples.png
Straight from a training checkpoint (while training runs, to eyeball progress):
  nice -n 19 python tools/train/sample.py --ckpt /work/train-runs/unet/unet_ckpt.pt --out /tmp/s.png
"""
import argparse
import os

import numpy as np
import torch
from diffusers import DDIMScheduler, TextToVideoSDPipeline
from PIL import Image, ImageDraw
from transformers import CLIPTokenizer

from common import RUNS, log
from temporal_vae import TemporalAutoencoderKL

PROMPTS = [
    "a red circle moving left on a blue background",
    "a yellow star rotating on a black background",
    "a green square moving up on a white background",
    "a large blue triangle bouncing on a yellow background",
    "a white ring growing on a purple background",
    "a pink cross orbiting on a green striped background",
]


def load_pipe(a):
    if a.model:
        pipe = TextToVideoSDPipeline.from_pretrained(a.model, torch_dtype=torch.float32)
        pipe.vae = TemporalAutoencoderKL.from_pretrained(os.path.join(a.model, "vae"), torch_dtype=torch.float32)
        return pipe, "model " + a.model
    from export import DDIM, load_unet_te, load_vae
    vae_path = a.vae or next(p for p in (os.path.join(RUNS, "tdec", "vae_temporal"), os.path.join(RUNS, "vae", "vae"))
                             if os.path.exists(p))
    unet, te, step = load_unet_te(a.ckpt, ema=not a.no_ema)
    pipe = TextToVideoSDPipeline(vae=load_vae(vae_path), text_encoder=te,
                                 tokenizer=CLIPTokenizer.from_pretrained(a.tokenizer), unet=unet,
                                 scheduler=DDIMScheduler(**DDIM))
    return pipe, f"ckpt step {step}{'' if a.no_ema else ' (EMA)'}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--ckpt", default=os.path.join(RUNS, "unet", "unet_ckpt.pt"))
    ap.add_argument("--vae", default=None)
    ap.add_argument("--tokenizer", default=os.path.join(RUNS, "tokenizer"))
    ap.add_argument("--no-ema", action="store_true")
    ap.add_argument("--prompt", action="append", default=None)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--same-seed", action="store_true", help="same noise for every prompt (isolates the text's effect)")
    ap.add_argument("--frame-wise", action="store_true", help="decode without the Temp-Conv layers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="/tmp/vidrd_samples.png")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    pipe, desc = load_pipe(a)
    pipe.set_progress_bar_config(disable=True)
    if a.frame_wise:
        pipe.vae.register_to_config(add_temp_conv=False)
    prompts = a.prompt or PROMPTS
    rows = []
    for i, p in enumerate(prompts):
        g = torch.Generator().manual_seed(a.seed + (0 if a.same_seed else i))
        out = pipe(p, num_frames=a.frames, height=64, width=64, num_inference_steps=a.steps,
                   guidance_scale=a.guidance, generator=g, output_type="np")
        fr = np.asarray(out.frames)
        fr = fr[0] if fr.ndim == 5 else fr  # (F,H,W,3) in [0,1]
        rows.append((p, (np.clip(fr, 0, 1) * 255).astype(np.uint8)))
        log(f"{p}: done")
    F_, H, W = rows[0][1].shape[:3]
    cap = 14
    sheet = Image.new("RGB", (F_ * (W + 2), 14 + len(rows) * (H + cap + 4)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    d.text((2, 0), f"{desc}, {a.steps} DDIM steps, cfg {a.guidance}, {'frame-wise' if a.frame_wise else 'temporal'} decode",
           fill=(120, 0, 0))
    for r, (p, fr) in enumerate(rows):
        y = 14 + r * (H + cap + 4)
        d.text((2, y), p, fill=(0, 0, 0))
        for f in range(F_):
            sheet.paste(Image.fromarray(fr[f]), (f * (W + 2), y + cap))
    sheet.save(a.out)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
