"""What PyTorch needs to load a model folder and run one U-Net forward: seconds and peak RSS.

    /work/venv/bin/python tools/bench/load_bench_torch.py --model DIR [--latent 8 --frames 8]

In this one process (run it fresh each time: ru_maxrss never goes down), after importing torch,
diffusers and transformers (untimed), with torch.set_num_threads(os.cpu_count()):
  load           UNet3DConditionModel, CLIPTextModel and AutoencoderKL .from_pretrained(DIR,
                 subfolder=...) in float32 (PyTorch's CPU inference dtype; an fp16 folder is upcast).
                 The dtype is passed explicitly: transformers 5 would otherwise keep the folder's
                 fp16 (dtype="auto"). Without `accelerate` installed, diffusers builds the U-Net with
                 random weights first (low_cpu_mem_usage=False); the line says which path ran.
  unet_b<2>f<F>_<L>x<L>   one U-Net forward under torch.no_grad(): batch 2 x F frames x L x L latents,
                 random encoder_hidden_states [2, 77, 1024-or-cross_attention_dim], timestep 500.
                 One call, no warm-up (vidrd-bench times a call after a warm-up one).
Prints one JSON line each, in vidrd-bench's shape ("median_s" = "min_s" = the one measurement,
"peak_rss_mb" = ru_maxrss after that step, so it includes the interpreter and the imports, whose
RSS is "import_rss_mb" on the load line; "component_s" splits the load by component).
tools/bench/load_bench.sh pairs it with vidrd-bench.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import time

import torch
from diffusers import AutoencoderKL, UNet3DConditionModel
from diffusers.utils import is_accelerate_available
from transformers import CLIPTextModel


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # Linux: KiB


def line(name, seconds, **extra):
    print(json.dumps({"name": name, "impl": "pytorch", "median_s": round(seconds, 4), "min_s": round(seconds, 4),
                      "peak_rss_mb": peak_rss_mb(), **extra}), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a diffusers model folder (unet/, text_encoder/, vae/)")
    ap.add_argument("--latent", type=int, default=8, help="latent height = width of the U-Net forward")
    ap.add_argument("--frames", type=int, default=8)
    args = ap.parse_args()
    threads = os.cpu_count()
    torch.set_num_threads(threads)
    import_rss = peak_rss_mb()

    marks = [time.perf_counter()]
    unet = UNet3DConditionModel.from_pretrained(args.model, subfolder="unet", torch_dtype=torch.float32)
    marks.append(time.perf_counter())
    text_encoder = CLIPTextModel.from_pretrained(args.model, subfolder="text_encoder", dtype=torch.float32)
    marks.append(time.perf_counter())
    vae = AutoencoderKL.from_pretrained(args.model, subfolder="vae", torch_dtype=torch.float32)
    marks.append(time.perf_counter())
    load_s = marks[-1] - marks[0]
    seconds = {k: round(b - a, 3) for k, a, b in zip(("unet", "text_encoder", "vae"), marks, marks[1:])}
    unet.eval(), text_encoder.eval(), vae.eval()
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in
              (("unet", unet), ("text_encoder", text_encoder), ("vae", vae))}
    line("load", load_s, import_rss_mb=import_rss, threads=threads, accelerate=is_accelerate_available(),
         dtype="float32", component_s=seconds, parameters=params, torch=torch.__version__)

    g = torch.Generator().manual_seed(0)
    c, L = unet.config.in_channels, args.latent
    sample = torch.randn(2, c, args.frames, L, L, generator=g)
    ehs = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        start = time.perf_counter()
        out = unet(sample, 500, encoder_hidden_states=ehs).sample
        forward_s = time.perf_counter() - start
    line(f"unet_b2f{args.frames}_{L}x{L}", forward_s, threads=threads, finite=bool(torch.isfinite(out).all()))


if __name__ == "__main__":
    main()
