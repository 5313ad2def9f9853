#!/usr/bin/env python3
"""Export the trained components as a diffusers TextToVideoSDPipeline folder in fp16 safetensors.

  python tools/train/export.py --out Models/vidrd-tiny
      [--unet-ckpt /work/train-runs/unet/unet_ckpt.pt] [--vae /work/train-runs/tdec/vae_temporal]
      [--tokenizer /work/train-runs/tokenizer] [--no-ema] [--guidance 3]

Layout: model_index.json (TextToVideoSDPipeline), unet/ (UNet3DConditionModel), vae/ (AutoencoderKL
config + add_temp_conv, Temp-Conv tensors included), text_encoder/ (CLIPTextModel), tokenizer/ (CLIP
BPE, 49408 tokens), scheduler/ (DDIMScheduler, scaled_linear betas as in training), and with
--guidance generation_config.json (the model's recommended guidance; diffusers ignores the file).
"""
import argparse
import json
import os
import shutil

import diffusers
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from common import RUNS, log
from temporal_vae import TemporalAutoencoderKL

DDIM = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
            clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon",
            timestep_spacing="leading")


def load_vae(path):
    cfg = json.load(open(os.path.join(path, "config.json")))
    if cfg.get("add_temp_conv"):
        return TemporalAutoencoderKL.from_pretrained(path)
    return TemporalAutoencoderKL.from_autoencoder_kl(AutoencoderKL.from_pretrained(path), add_temp_conv=True)


def load_unet_te(ckpt_path, ema=True):
    st = torch.load(ckpt_path, weights_only=False, map_location="cpu")
    unet = UNet3DConditionModel(**st["unet_config"])
    te = CLIPTextModel(CLIPTextConfig(**st["text_config"]))
    unet.load_state_dict(st["ema_unet" if ema else "unet"])
    te.load_state_dict(st["ema_te" if ema else "te"])
    return unet.eval(), te.eval(), st["step"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Models/vidrd-tiny")
    ap.add_argument("--unet-ckpt", default=os.path.join(RUNS, "unet", "unet_ckpt.pt"))
    ap.add_argument("--vae", default=None, help="default: tdec/vae_temporal if present, else vae/vae")
    ap.add_argument("--tokenizer", default=os.path.join(RUNS, "tokenizer"))
    ap.add_argument("--no-ema", action="store_true")
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--random-weights", type=int, default=None, metavar="SEED",
                    help="export the same architecture with freshly initialised weights (the evaluator's baseline)")
    ap.add_argument("--guidance", type=float, default=None,
                    help="write generation_config.json with this recommended guidance scale: vidrd-daemon, `vidrd clip` "
                         "and `vidrd generate` use it when neither the request nor the daemon's config names one "
                         "(the embedded model: 3, docs/MODEL_CARD.md)")
    a = ap.parse_args()
    dtype = getattr(torch, a.dtype)
    if a.random_weights is not None:
        from common import TEXT_CONFIG, UNET_CONFIG, VAE_CONFIG
        torch.manual_seed(a.random_weights)
        vae = TemporalAutoencoderKL.from_autoencoder_kl(AutoencoderKL(**VAE_CONFIG), add_temp_conv=True)
        unet, te, step = UNet3DConditionModel(**UNET_CONFIG), CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG)), "random"
        vae_path = "random"
    else:
        vae_path = a.vae or next((p for p in (os.path.join(RUNS, "tdec", "vae_temporal"), os.path.join(RUNS, "vae", "vae"))
                                  if os.path.exists(p)), None)
        if vae_path is None:
            raise SystemExit(f"no VAE: pass --vae, or train one under {RUNS} (tdec/vae_temporal or vae/vae)")
        vae = load_vae(vae_path)
        unet, te, step = load_unet_te(a.unet_ckpt, ema=not a.no_ema)
    vae.register_to_config(sample_size=64)  # stage-1 run of 2026-11-25 saved the default 32 (tiling hint only)
    tok = CLIPTokenizer.from_pretrained(a.tokenizer)
    # written beside the destination and swapped in at the end, so an interrupted export never
    # leaves a half-written model folder where the daemon looks for one
    staging = a.out.rstrip("/") + ".export-tmp"
    if os.path.exists(staging):
        shutil.rmtree(staging)
    os.makedirs(staging)
    unet.to(dtype).save_pretrained(os.path.join(staging, "unet"), safe_serialization=True)
    vae.to(dtype).save_pretrained(os.path.join(staging, "vae"), safe_serialization=True)
    te.to(dtype).save_pretrained(os.path.join(staging, "text_encoder"), safe_serialization=True)
    tok.save_pretrained(os.path.join(staging, "tokenizer"))
    DDIMScheduler(**DDIM).save_pretrained(os.path.join(staging, "scheduler"))
    if a.guidance is not None:
        with open(os.path.join(staging, "generation_config.json"), "w") as fh:
            json.dump({"guidance_scale": a.guidance}, fh, indent=2)
            fh.write("\n")
    index = {
        "_class_name": "TextToVideoSDPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    with open(os.path.join(staging, "model_index.json"), "w") as fh:
        json.dump(index, fh, indent=2)
        fh.write("\n")
    # keep only the files the layout needs (transformers may add generation/chat files)
    total = 0
    for root, _, files in os.walk(staging):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    log(f"exported {a.out}: unet step {step}, ema={not a.no_ema}, vae from {vae_path}, {total / 1e6:.1f} MB")
    if total > 60e6:
        raise SystemExit(f"model folder is {total / 1e6:.1f} MB > 60 MB budget (left in {staging})")
    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.replace(staging, a.out)


if __name__ == "__main__":
    main()
