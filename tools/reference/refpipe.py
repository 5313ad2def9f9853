"""Shared helpers: load a diffusers-layout text-to-video folder (with the temporal VAE) and
run the real diffusers TextToVideoSDPipeline on it, in float32 on the CPU."""

from __future__ import annotations

import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from diffusers import DDIMScheduler, UNet3DConditionModel  # noqa: E402
from diffusers.pipelines.deprecated.text_to_video_synthesis.pipeline_text_to_video_synth import (  # noqa: E402
    TextToVideoSDPipeline,
)
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402

from temporal_vae import TemporalAutoencoderKL  # noqa: E402

import diffusers.utils.logging as _dlog  # noqa: E402
import transformers.utils.logging as _tlog  # noqa: E402

_dlog.set_verbosity_error()
_dlog.disable_progress_bar()
_tlog.set_verbosity_error()
_tlog.disable_progress_bar()


class RelaxedTextToVideoSDPipeline(TextToVideoSDPipeline):
    """TextToVideoSDPipeline whose size check asks for multiples of the VAE scale factor
    instead of 8 (the tiny test VAEs downsample by 2 or 4). Nothing else differs."""

    def check_inputs(self, prompt, height, width, *args, **kwargs):
        f = self.vae_scale_factor
        if height % f != 0 or width % f != 0:
            raise ValueError(f"height and width must be multiples of {f}, got {height}x{width}")
        return super().check_inputs(prompt, 8, 8, *args, **kwargs)


def load_components(model_dir: str, dtype=torch.float32):
    """Load every component from disk and cast to `dtype` (fp16/bf16 weights are upcast)."""
    unet = UNet3DConditionModel.from_pretrained(os.path.join(model_dir, "unet")).to(dtype).eval()
    vae = TemporalAutoencoderKL.from_pretrained(os.path.join(model_dir, "vae")).to(dtype).eval()
    text_encoder = CLIPTextModel.from_pretrained(os.path.join(model_dir, "text_encoder")).to(dtype).eval()
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(model_dir, "tokenizer"))
    scheduler = DDIMScheduler.from_pretrained(os.path.join(model_dir, "scheduler"))
    return dict(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler)


def load_pipeline(model_dir: str, dtype=torch.float32) -> RelaxedTextToVideoSDPipeline:
    pipe = RelaxedTextToVideoSDPipeline(**load_components(model_dir, dtype))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def run_latents(pipe, noise: torch.Tensor, prompt: str, negative_prompt: str, steps: int, guidance: float,
                num_frames: int | None = None, height: int | None = None, width: int | None = None) -> torch.Tensor:
    """Final latents [1, C, F, h, w] of the real pipeline started from `noise` (DDIM, eta 0)."""
    _, _, f, h, w = noise.shape
    s = pipe.vae_scale_factor
    out = pipe(
        prompt=prompt,
        negative_prompt=negative_prompt,
        num_inference_steps=steps,
        guidance_scale=guidance,
        num_frames=num_frames or f,
        height=height or h * s,
        width=width or w * s,
        latents=noise,
        output_type="latent",
        eta=0.0,
    )
    return out.frames


@torch.no_grad()
def decode_video(vae: TemporalAutoencoderKL, latents: torch.Tensor) -> torch.Tensor:
    """latents [B, C, F, h, w] (pipeline scale) -> video [B, 3, F, H, W] in [0, 1]."""
    x = vae.decode_video(latents / vae.config.scaling_factor, temporal=True)
    return (x / 2 + 0.5).clamp(0, 1)
