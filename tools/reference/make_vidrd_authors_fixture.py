"""Parity fixture against the VidRD authors' own code (anonymous0x233/ReuseAndDiffuse).

Their code is never committed: fetch it and point VIDRD_AUTHORS_CODE at the checkout, e.g.

    git clone https://github.com/anonymous0x233/ReuseAndDiffuse /work/runs/reuse-and-diffuse
    VIDRD_AUTHORS_CODE=/work/runs/reuse-and-diffuse nice -n 5 /work/venv/bin/python \
        tools/reference/make_vidrd_authors_fixture.py [--verify]

What it does:
1. builds a small random-weight instance of THEIR UNet3DConditionModel (model/modules/unet.py, the
   SD-2.1 layout, three blocks instead of four, per-block head counts, use_linear_projection, add_temp_embed,
   add_temp_conv) and a tiny CLIP text encoder, weights rounded to fp16 so conversion is lossless;
2. writes what a user downloads: a fake ModelT2V.pth (Lightning layout: state_dict with unet.* and
   text_encoder.*, hyper_parameters as Lightning's AttributeDict), a stable-diffusion-2-1-base-style
   folder (PNDM scheduler config, tokenizer padding with "!", text_encoder, unet/config.json) and a
   vae_finetuned/ folder (.bin with diffusers-0.14 attention names), under /work/runs/vidrd-authors-src;
3. converts them with tools/convert/vidrd_checkpoint.py into Tests/Fixtures/vidrd-authors/model;
4. records (a) their U-Net forward with per-batch timesteps, and a one-frame forward, (b) a 3-clip
   run of their SDVideoPipeline with extend_* settings and noise_alpha, seeded through a
   torch.Generator, into Tests/Fixtures/vidrd-authors/reference.safetensors + reference.json.

Their code targets diffusers 0.14; the few module paths that moved since are aliased below
(CrossAttention = Attention, pipeline_utils). Their VAE package imports diffusers-0.14 internals,
so the pipeline decodes with tools/reference/temporal_vae.py's TemporalAutoencoderKL, called as
their decode_latents calls theirs: vae.decode(z) with num_frames = 1, i.e. Temp-Conv skipped.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import types

import torch

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)

from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

import clip_tokenizer  # noqa: E402
from make_fixtures import randomize_  # noqa: E402
from temporal_vae import TemporalAutoencoderKL  # noqa: E402

OUT = os.path.join(REPO, "Tests", "Fixtures", "vidrd-authors")
SRC = "/work/runs/vidrd-authors-src"
SEED = 14
PROMPT = "a red circle moving left on a blue background"
NEGATIVE = "watermark"  # their evaluator's negative prompt

UNET = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=[32, 32, 32], layers_per_block=1,
            norm_num_groups=8, cross_attention_dim=32, attention_head_dim=[2, 4, 8], use_linear_projection=True,
            down_block_types=["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
            up_block_types=["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
            flip_sin_to_cos=True, freq_shift=0, upcast_attention=False)
FLAGS = dict(add_temp_embed=True, add_temp_conv=True)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, hidden_act="gelu",
            max_position_embeddings=77)
# One VAE block (no downsampling) keeps the fixture under 2 MB; frames are then 8x8 like the latents.
VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[32], layers_per_block=1,
           norm_num_groups=8, down_block_types=["DownEncoderBlock2D"], up_block_types=["UpDecoderBlock2D"],
           sample_size=8, scaling_factor=0.18215, add_temp_conv=True)
SCHEDULER = {"_class_name": "PNDMScheduler", "_diffusers_version": "0.10.0.dev0", "beta_end": 0.012,
             "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
             "prediction_type": "epsilon", "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1,
             "trained_betas": None}
PIPE = dict(num_frames=4, height=8, width=8, num_inference_steps=5, guidance_scale=10.0, num_generated_clips=3,
            extend_overlap_frames=2, extend_noise_recycle=3.0, extend_denoise_guidance=0.5, noise_alpha=0.5, eta=0.0)
UNET_TIMESTEPS = [901, 21]


def import_authors():
    root = os.environ.get("VIDRD_AUTHORS_CODE")
    if not root or not os.path.isfile(os.path.join(root, "model", "modules", "unet.py")):
        sys.exit("set VIDRD_AUTHORS_CODE to a checkout of github.com/anonymous0x233/ReuseAndDiffuse")
    import diffusers
    import diffusers.models.attention as attention
    from diffusers.models.attention_processor import Attention

    shim = types.ModuleType("diffusers.models.cross_attention")
    shim.CrossAttention = Attention
    sys.modules["diffusers.models.cross_attention"] = shim
    pu = types.ModuleType("diffusers.pipeline_utils")
    pu.DiffusionPipeline = diffusers.DiffusionPipeline
    sys.modules["diffusers.pipeline_utils"] = pu
    if not hasattr(attention, "AdaLayerNorm"):
        from diffusers.models.normalization import AdaLayerNorm
        attention.AdaLayerNorm = AdaLayerNorm
    for name in ("imageio", "torchvision"):  # model/utils.py imports them for saving GIFs only
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    # model/__init__.py imports the Lightning training module; load the package without it.
    for pkg, sub in (("model", "model"), ("model.modules", os.path.join("model", "modules"))):
        m = types.ModuleType(pkg)
        m.__path__ = [os.path.join(root, sub)]
        sys.modules[pkg] = m
    from model.modules.unet import UNet3DConditionModel
    from model.pipeline import SDVideoPipeline
    from model.utils import randn_progressive
    rev = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    return UNet3DConditionModel, SDVideoPipeline, randn_progressive, rev or "unknown"


def lightning_attribute_dict():
    """Lightning's AttributeDict under its own import path, so the fake checkpoint pickles as theirs."""
    names = ["pytorch_lightning", "pytorch_lightning.utilities", "pytorch_lightning.utilities.parsing"]
    for n in names:
        sys.modules.setdefault(n, types.ModuleType(n))
    cls = type("AttributeDict", (dict,), {"__module__": names[-1]})
    sys.modules[names[-1]].AttributeDict = cls
    return cls


@torch.no_grad()
def fp16_exact_(model):
    for p in model.parameters():
        p.copy_(p.half().float())


class AuthorsDecodeVAE(TemporalAutoencoderKL):
    """Decodes as their pipeline's vae.decode(latents) does: num_frames = 1, Temp-Conv skipped."""

    def decode(self, z, num_frames: int = 1, return_dict: bool = True, **_):
        return super().decode(z, num_frames=num_frames, temporal=num_frames > 1, return_dict=return_dict)


def build_sources(UNet):
    gen = torch.Generator().manual_seed(SEED)
    torch.manual_seed(SEED)
    if os.path.isdir(SRC):
        shutil.rmtree(SRC)
    sd = os.path.join(SRC, "stable-diffusion-2-1-base")
    os.makedirs(sd)

    tok = os.path.join(sd, "tokenizer")
    vocab = clip_tokenizer.write_tokenizer(tok, num_merges=600)
    for f in ("tokenizer_config.json", "special_tokens_map.json"):  # SD-2's tokenizer pads with "!"
        p = os.path.join(tok, f)
        with open(p) as fh:
            cfg = json.load(fh)
        cfg["pad_token"] = "!"
        with open(p, "w") as fh:
            json.dump(cfg, fh, indent=2)

    tcfg = CLIPTextConfig(vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=0,
                          projection_dim=32, **TEXT)
    te_sd = CLIPTextModel(tcfg).eval()
    randomize_(te_sd, gen)
    te_sd.save_pretrained(os.path.join(sd, "text_encoder"))
    te = CLIPTextModel(tcfg).eval()  # the checkpoint's fine-tuned text encoder differs from SD's
    randomize_(te, gen)
    fp16_exact_(te)

    os.makedirs(os.path.join(sd, "unet"))
    with open(os.path.join(sd, "unet", "config.json"), "w") as fh:
        json.dump({"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.10.0.dev0", "act_fn": "silu",
                   "center_input_sample": False, "downsample_padding": 1,
                   "dual_cross_attention": False, "mid_block_scale_factor": 1, "norm_eps": 1e-05,
                   "only_cross_attention": False, "num_class_embeds": None, "class_embed_type": None,
                   "resnet_time_scale_shift": "default", **{k: v for k, v in UNET.items() if not k.endswith("block_types")},
                   # SD's 2-D names of UNET's blocks (three instead of SD's four keep the fixture under 2 MB)
                   "down_block_types": [t.replace("3D", "2D") for t in UNET["down_block_types"]],
                   "up_block_types": [t.replace("3D", "2D") for t in UNET["up_block_types"]]}, fh, indent=2)
    os.makedirs(os.path.join(sd, "scheduler"))
    with open(os.path.join(sd, "scheduler", "scheduler_config.json"), "w") as fh:
        json.dump(SCHEDULER, fh, indent=2)
    with open(os.path.join(sd, "model_index.json"), "w") as fh:
        json.dump({"_class_name": "StableDiffusionPipeline"}, fh)

    unet = UNet(**UNET, **FLAGS).eval()
    randomize_(unet, gen, gain=1.0)
    fp16_exact_(unet)

    vae = AuthorsDecodeVAE(**VAE).eval()
    randomize_(vae, gen)
    fp16_exact_(vae)
    vdir = os.path.join(SRC, "vae_finetuned")
    os.makedirs(vdir)
    old = {}
    for k, v in vae.state_dict().items():  # as diffusers 0.14 saved the mid-block attention
        if ".attentions." in k:
            k = k.replace(".to_q.", ".query.").replace(".to_k.", ".key.").replace(".to_v.", ".value.")
            k = k.replace(".to_out.0.", ".proj_attn.")
        old[k] = v
    torch.save(old, os.path.join(vdir, "diffusion_pytorch_model.bin"))
    with open(os.path.join(vdir, "config.json"), "w") as fh:
        json.dump({"_class_name": "TemporalAutoencoderKL", "_diffusers_version": "0.14.0", "act_fn": "silu", **VAE},
                  fh, indent=2)

    AttributeDict = lightning_attribute_dict()
    state = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    state.update({f"text_encoder.{k}": v for k, v in te.state_dict().items()})
    ckpt = {"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.9.5", "state_dict": state,
            "hyper_parameters": AttributeDict(ckpt_path=None, add_temp_embed=True, add_temp_conv=True, resolution=256)}
    torch.save(ckpt, os.path.join(SRC, "ModelT2V.pth"))
    return unet, te, vae


def convert():
    out = os.path.join(OUT, "model")
    subprocess.run([sys.executable, os.path.join(REPO, "tools", "convert", "vidrd_checkpoint.py"),
                    "--checkpoint", os.path.join(SRC, "ModelT2V.pth"), "--sd", os.path.join(SRC, "stable-diffusion-2-1-base"),
                    "--vae", os.path.join(SRC, "vae_finetuned"), "--out", out, "--dtype", "fp16"], check=True)
    return out


def std_ok(name, t, lo=0.05, hi=20.0):
    s = t.float().std().item()
    if not (lo <= s <= hi) or not math.isfinite(t.abs().max().item()):
        raise RuntimeError(f"{name}: std {s:.4g} outside [{lo}, {hi}]")
    return round(s, 5)


@torch.no_grad()
def references(unet, te, vae, SDVideoPipeline, randn_progressive):
    from diffusers import DDIMScheduler
    gen = torch.Generator().manual_seed(SEED + 1)
    ref, stats = {}, {}
    tokenizer = CLIPTokenizer.from_pretrained(os.path.join(SRC, "stable-diffusion-2-1-base", "tokenizer"))
    ids = tokenizer([NEGATIVE, PROMPT], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    ref["text.input_ids"] = ids.to(torch.int64)
    ref["text.hidden_states"] = te(ids)[0]
    stats["text.hidden_states"] = std_ok("text", ref["text.hidden_states"])

    sample = torch.randn(2, 4, 4, 8, 8, generator=gen)
    enc = torch.randn(2, 77, 32, generator=gen)
    ts = torch.tensor(UNET_TIMESTEPS, dtype=torch.int64)
    ref["unet.sample"], ref["unet.timesteps"], ref["unet.encoder_hidden_states"] = sample, ts, enc
    ref["unet.out"] = unet(sample, ts, encoder_hidden_states=enc).sample
    stats["unet.out"] = std_ok("unet.out", ref["unet.out"])
    per = torch.cat([unet(sample[i:i + 1], ts[i:i + 1], encoder_hidden_states=enc[i:i + 1]).sample for i in range(2)])
    assert (per - ref["unet.out"]).abs().max().item() < 1e-4, "timesteps are not per batch entry"
    # 16x16: at 8x8 the bottom block is 1x1 and their one-frame Temp-Conv GroupNorm sees a single value
    one = torch.randn(1, 4, 1, 16, 16, generator=gen)
    ref["unet.one_frame_sample"] = one
    ref["unet.one_frame_out"] = unet(one, torch.tensor([500]), encoder_hidden_states=enc[:1]).sample
    stats["unet.one_frame_out"] = std_ok("unet.one_frame_out", ref["unet.one_frame_out"])
    # float64 distance: how well-conditioned the fixture is for an fp32 comparison
    u64 = unet.double()
    d64 = (u64(sample.double(), ts, encoder_hidden_states=enc.double()).sample.float() - ref["unet.out"]).abs().max().item()
    stats["unet.out_fp32_vs_fp64_rel"] = d64 / ref["unet.out"].std().item()
    unet.float()

    scheduler = DDIMScheduler.from_pretrained(os.path.join(SRC, "stable-diffusion-2-1-base", "scheduler"))
    pipe = SDVideoPipeline(vae=vae, text_encoder=te, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
    clips = []
    decode = pipe.decode_latents

    def recording_decode(latents):
        clips.append(latents.clone())
        return decode(latents)

    pipe.decode_latents = recording_decode
    seed = SEED + 2
    video = pipe(PROMPT, negative_prompt=NEGATIVE, generator=torch.Generator().manual_seed(seed), **PIPE).videos
    shape = (1, 4, PIPE["num_frames"], PIPE["height"], PIPE["width"])
    ref["pipe.initial_noise_0"] = randn_progressive(shape, dim=2, alpha=PIPE["noise_alpha"],
                                                    generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    for i, z in enumerate(clips):
        ref[f"pipe.latents_{i}"] = z
        stats[f"pipe.latents_{i}"] = std_ok(f"pipe.latents_{i}", z)
    ref["pipe.video"] = video  # [1, 3, clips*N, H, W] in [0, 1]
    stats["pipe.video"] = std_ok("pipe.video", video, lo=0.01)
    scheduler.set_timesteps(PIPE["num_inference_steps"])
    info = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "unet_timesteps": UNET_TIMESTEPS, "pipeline": PIPE,
            "pipeline_seed": seed, "pipeline_timesteps": scheduler.timesteps.tolist(), "stats": stats,
            "torch": torch.__version__}
    return ref, info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--verify", action="store_true", help="rebuild and check the stored reference reproduces")
    args = ap.parse_args()
    UNet, SDVideoPipeline, randn_progressive, rev = import_authors()
    unet, te, vae = build_sources(UNet)
    convert()
    ref, info = references(unet, te, vae, SDVideoPipeline, randn_progressive)
    info["authors_code"] = {"repository": "anonymous0x233/ReuseAndDiffuse", "commit": rev}
    path = os.path.join(OUT, "reference.safetensors")
    if args.verify and os.path.exists(path):
        old = load_file(path)
        bad = [k for k in ref if k not in old or not torch.equal(old[k], ref[k].contiguous())]
        print("verify:", "OK" if not bad else f"DIFFERS {bad}")
    save_file({k: v.contiguous() for k, v in ref.items()}, path, metadata={"format": "pt"})
    with open(os.path.join(OUT, "reference.json"), "w") as fh:
        json.dump(info, fh, indent=1)
        fh.write("\n")
    sizes = {d: sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(os.path.join(OUT)) for f in fs)
             for d in [OUT]}
    print(json.dumps(info["stats"], indent=1), sizes)


if __name__ == "__main__":
    main()
