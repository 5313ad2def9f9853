#!/usr/bin/env python3
"""Reference output of the shipped model (Models/vidrd-tiny) for the Swift parity test
(Tests/RuntimeTests/EmbeddedModelTests.swift): diffusers' TextToVideoSDPipeline denoising loop +
the temporal-aware decode, in float32 from the fp16 weights, with recorded noise.

  python tools/reference/make_embedded_fixture.py [--model Models/vidrd-tiny]
  -> Tests/Fixtures/vidrd-tiny-pipeline/{reference.json, reference.safetensors}
Rerun whenever the shipped weights change.
"""
import argparse
import json
import os

import diffusers
import torch
from safetensors.torch import save_file

from refpipe import decode_video, load_pipeline, run_latents

PROMPT = "a red circle moving left on a blue background"
NEGATIVE = ""


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="Models/vidrd-tiny")
    ap.add_argument("--out", default="Tests/Fixtures/vidrd-tiny-pipeline")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--guidance", type=float, default=7.5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    pipe = load_pipeline(a.model, torch.float32)
    h = w = pipe.unet.config.sample_size
    s = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    noise = torch.randn(1, pipe.unet.config.in_channels, a.frames, h, w, generator=torch.Generator().manual_seed(5))
    latents = run_latents(pipe, noise, PROMPT, NEGATIVE, a.steps, a.guidance, a.frames, h * s, w * s)
    video = decode_video(pipe.vae, latents)
    # float64 run of the same loop: the yardstick for what float32 rounding alone does here
    # (guidance 7.5 multiplies the difference of two U-Net outputs, so rounding is amplified ~8x)
    pipe64 = load_pipeline(a.model, torch.float64)
    latents64 = run_latents(pipe64, noise.double(), PROMPT, NEGATIVE, a.steps, a.guidance, a.frames, h * s, w * s)
    video64 = decode_video(pipe64.vae, latents64)

    def rel(x, ref):
        return float((x.double() - ref).abs().max() / ref.std())

    torch_fp32_error = {"latents": rel(latents, latents64), "video": rel(video, video64)}
    os.makedirs(a.out, exist_ok=True)
    save_file({"pipe.noise": noise.contiguous(), "pipe.latents": latents.float().contiguous(),
               "pipe.video": video.float().contiguous(), "pipe.latents64": latents64.float().contiguous(),
               "pipe.video64": video64.float().contiguous()},
              os.path.join(a.out, "reference.safetensors"), metadata={"format": "pt"})
    info = dict(model=a.model, prompt=PROMPT, negative_prompt=NEGATIVE, steps=a.steps, guidance_scale=a.guidance,
                num_frames=a.frames, height=h * s, width=w * s,
                computed_in="float32 (fp16 weights upcast), CPU, torch.set_num_threads(1); *64 tensors in float64",
                torch_fp32_error_vs_float64=torch_fp32_error,
                versions={"torch": torch.__version__, "diffusers": diffusers.__version__},
                tensors={"pipe.noise": "[1,C,F,h,w] randn (seed 5), passed as latents=",
                         "pipe.latents": "[1,C,F,h,w] final latents of the diffusers denoising loop",
                         "pipe.video": "[1,3,F,H,W] temporal-aware decode of pipe.latents, in [0,1]",
                         "pipe.latents64": "pipe.latents computed in float64 (stored as float32)",
                         "pipe.video64": "pipe.video computed in float64 (stored as float32)"})
    with open(os.path.join(a.out, "reference.json"), "w") as fh:
        json.dump(info, fh, indent=1)
        fh.write("\n")
    print(f"wrote {a.out}: latents std {latents.std():.3f}; PyTorch float32 vs float64: {torch_fp32_error}")


if __name__ == "__main__":
    main()
