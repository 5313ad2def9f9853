"""Build tiny random-weight text-to-video models (diffusers layout) and record PyTorch
reference outputs for the Swift parity tests.

    python tools/reference/make_fixtures.py            # everything (fixtures + holdout + tokenizer)
    python tools/reference/make_fixtures.py --only tiny-lpb2 --verify

Outputs per config NAME (see CONFIGS):
    Tests/Fixtures/NAME/model/          model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/
    Tests/Fixtures/NAME/reference.safetensors
    Tests/Fixtures/NAME/reference.json
The `holdout` config goes to /work/holdout-model/ (same layout, never committed).

Every weight is random (seeded), including layers diffusers zero-initialises (temporal conv
last layers, proj_out, conv_out...). All references are computed from the folders as re-read
from disk, in float32 (fp16/bf16 weights upcast). --verify re-reads everything once more and
checks that the stored references are reproduced.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

import torch

torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

import diffusers  # noqa: E402
import transformers  # noqa: E402
from diffusers import DDIMScheduler, UNet3DConditionModel  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: E402

import clip_tokenizer  # noqa: E402
from refpipe import decode_video, load_components, load_pipeline, run_latents  # noqa: E402
from temporal_vae import TemporalAutoencoderKL  # noqa: E402

PROMPT = "a cat rides a bike on the moon, 4k photo"
NEGATIVE_PROMPT = ""
UNET_TIMESTEPS = [901, 21]

CONFIGS = {
    "tiny-lpb2": dict(
        seed=1234,
        dtype="float32",
        frames=4, latent_h=8, latent_w=8,
        unet=dict(
            block_out_channels=(16, 24), layers_per_block=2,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            attention_head_dim=4, cross_attention_dim=16, norm_num_groups=8,
            in_channels=4, out_channels=4, sample_size=8,
        ),
        vae=dict(
            block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            sample_size=16, scaling_factor=0.18215, add_temp_conv=True,
        ),
        text=dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
                  hidden_act="quick_gelu", max_position_embeddings=77),
        num_merges=1000,
        scheduler=dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                       timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False,
                       prediction_type="epsilon"),
    ),
    "tiny-nonsquare": dict(
        seed=2024,
        dtype="float32",
        frames=3, latent_h=6, latent_w=10,
        unet=dict(
            block_out_channels=(16, 16, 16), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
            attention_head_dim=4, cross_attention_dim=24, norm_num_groups=4,
            in_channels=4, out_channels=4, sample_size=8,
        ),
        vae=dict(
            block_out_channels=(16, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            sample_size=16, scaling_factor=0.5, add_temp_conv=True,
        ),
        text=dict(hidden_size=24, num_hidden_layers=1, num_attention_heads=3, intermediate_size=48,
                  hidden_act="gelu", max_position_embeddings=77),
        num_merges=700,
        scheduler=dict(beta_schedule="linear", beta_start=0.0001, beta_end=0.02,
                       timestep_spacing="trailing", steps_offset=0, set_alpha_to_one=True,
                       prediction_type="v_prediction"),
    ),
    "tiny-fp16": dict(
        seed=777,
        dtype="float16",
        frames=4, latent_h=8, latent_w=8,
        unet=dict(
            block_out_channels=(16, 32), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
            attention_head_dim=8, cross_attention_dim=32, norm_num_groups=8, norm_eps=1e-6,
            in_channels=4, out_channels=4, sample_size=8,
        ),
        vae=dict(
            block_out_channels=(16, 32), layers_per_block=1, latent_channels=4, norm_num_groups=8,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            sample_size=16, scaling_factor=0.13025, add_temp_conv=False,
        ),
        text=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                  hidden_act="quick_gelu", max_position_embeddings=77),
        num_merges=1000,
        # an old-style checkpoint carries text_model.embeddings.position_ids; loaders must skip it
        text_position_ids_tensor=True,
        # linspace always starts at t=999, where the cosine schedule's alpha_bar is ~1e-8: without
        # clip_sample the first x0 estimate is amplified ~1e4x, so this config clips x0 to [-1, 1]
        scheduler=dict(beta_schedule="squaredcos_cap_v2", beta_start=0.0001, beta_end=0.02,
                       timestep_spacing="linspace", steps_offset=0, set_alpha_to_one=False,
                       prediction_type="epsilon", clip_sample=True, clip_sample_range=1.0),
    ),
    "holdout": dict(
        seed=99,
        dtype="bfloat16",
        frames=5, latent_h=8, latent_w=6,
        out_dir="/work/holdout-model",
        unet=dict(
            block_out_channels=(24, 48, 48), layers_per_block=2,
            down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
            attention_head_dim=6, cross_attention_dim=48, norm_num_groups=6,
            in_channels=4, out_channels=4, sample_size=8,
        ),
        vae=dict(
            block_out_channels=(24, 48, 48), layers_per_block=1, latent_channels=4, norm_num_groups=6,
            down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
            sample_size=32, scaling_factor=0.18215, add_temp_conv=True,
        ),
        text=dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
                  hidden_act="quick_gelu", max_position_embeddings=77),
        num_merges=1500,
        scheduler=dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                       timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False,
                       prediction_type="epsilon"),
    ),
}

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


# --------------------------------------------------------------------------- random weights
@torch.no_grad()
def randomize_(model: torch.nn.Module, gen: torch.Generator, gain: float = 1.0) -> None:
    """Give every parameter a random value of moderate scale (zero-initialised ones too)."""
    done = set()

    def normal_(t, std, mean=0.0):
        t.copy_(torch.randn(t.shape, generator=gen) * std + mean)
        done.add(id(t))

    for _, m in model.named_modules():
        if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear)):
            fan_in = m.weight[0].numel()
            normal_(m.weight, gain / math.sqrt(fan_in))
            if m.bias is not None:
                normal_(m.bias, 0.05)
        elif isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            if m.weight is not None:
                normal_(m.weight, 0.1, 1.0)
            if m.bias is not None:
                normal_(m.bias, 0.1)
        elif isinstance(m, torch.nn.Embedding):
            normal_(m.weight, 0.5)
    for name, p in model.named_parameters():
        if id(p) not in done:
            raise RuntimeError(f"parameter not randomised: {name}")


def _std_ok(name: str, t: torch.Tensor, lo=0.1, hi=10.0) -> dict:
    s = t.float().std().item()
    amax = t.float().abs().max().item()
    if not (lo <= s <= hi) or not math.isfinite(amax):
        raise RuntimeError(f"{name}: std {s:.4g} outside [{lo}, {hi}] (max |x| {amax:.4g})")
    return {"std": round(s, 5), "max_abs": round(amax, 5)}


# --------------------------------------------------------------------------- build + save
def build_and_save(name: str, cfg: dict, model_dir: str) -> None:
    gen = torch.Generator().manual_seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    dtype = DTYPES[cfg["dtype"]]
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    os.makedirs(model_dir)

    # tokenizer
    tok_dir = os.path.join(model_dir, "tokenizer")
    vocab_size = clip_tokenizer.write_tokenizer(tok_dir, num_merges=cfg["num_merges"])
    bos_id, eos_id = vocab_size - 2, vocab_size - 1

    # text encoder
    tcfg = CLIPTextConfig(vocab_size=vocab_size, bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=eos_id,
                          projection_dim=cfg["text"]["hidden_size"], **cfg["text"])
    text_encoder = CLIPTextModel(tcfg).eval()
    randomize_(text_encoder, gen)
    te_dir = os.path.join(model_dir, "text_encoder")
    text_encoder.to(dtype).save_pretrained(te_dir)
    if cfg.get("text_position_ids_tensor"):
        path = os.path.join(te_dir, "model.safetensors")
        sd = load_file(path)
        sd["text_model.embeddings.position_ids"] = torch.arange(cfg["text"]["max_position_embeddings"])[None]
        save_file(sd, path, metadata={"format": "pt"})

    # unet
    unet = UNet3DConditionModel(**cfg["unet"]).eval()
    randomize_(unet, gen)
    unet.to(dtype).save_pretrained(os.path.join(model_dir, "unet"))

    # vae
    vae = TemporalAutoencoderKL(**cfg["vae"]).eval()
    randomize_(vae, gen)
    vae.to(dtype).save_pretrained(os.path.join(model_dir, "vae"))

    # scheduler
    sched = DDIMScheduler(**{"num_train_timesteps": 1000, "clip_sample": False, **cfg["scheduler"]})
    sched.save_pretrained(os.path.join(model_dir, "scheduler"))

    model_index = {
        "_class_name": "TextToVideoSDPipeline",
        "_diffusers_version": diffusers.__version__,
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    with open(os.path.join(model_dir, "model_index.json"), "w") as fh:
        json.dump(model_index, fh, indent=2)
        fh.write("\n")


# --------------------------------------------------------------------------- references
@torch.no_grad()
def compute_references(name: str, cfg: dict, model_dir: str) -> tuple[dict, dict]:
    c = load_components(model_dir, torch.float32)
    unet, vae, text_encoder, tokenizer, sched = c["unet"], c["vae"], c["text_encoder"], c["tokenizer"], c["scheduler"]
    gen = torch.Generator().manual_seed(cfg["seed"] + 1)
    F, h, w = cfg["frames"], cfg["latent_h"], cfg["latent_w"]
    C = unet.config.in_channels
    D = text_encoder.config.hidden_size
    s = 2 ** (len(vae.config.block_out_channels) - 1)
    H, W = h * s, w * s
    ref: dict[str, torch.Tensor] = {}
    stats: dict[str, dict] = {}

    # text
    ids = tokenizer([NEGATIVE_PROMPT, PROMPT], padding="max_length", max_length=77, truncation=True,
                    return_tensors="pt").input_ids
    ref["text.input_ids"] = ids.to(torch.int64)
    ref["text.hidden_states"] = text_encoder(ids)[0]
    stats["text.hidden_states"] = _std_ok("text.hidden_states", ref["text.hidden_states"])

    # unet
    sample = torch.randn(2, C, F, h, w, generator=gen)
    enc = torch.randn(2, 77, D, generator=gen)
    ts = torch.tensor(UNET_TIMESTEPS, dtype=torch.int64)
    ref["unet.sample"], ref["unet.timesteps"], ref["unet.encoder_hidden_states"] = sample, ts, enc
    ref["unet.out"] = unet(sample, ts, encoder_hidden_states=enc).sample
    stats["unet.out"] = _std_ok("unet.out", ref["unet.out"])
    # the same through per-entry calls: checks that the timestep really is per batch entry
    per = torch.cat([unet(sample[i:i + 1], ts[i:i + 1], encoder_hidden_states=enc[i:i + 1]).sample for i in range(2)])
    assert (per - ref["unet.out"]).abs().max().item() < 1e-4

    # vae
    z = torch.randn(F, vae.config.latent_channels, h, w, generator=gen)
    ref["vae.z"] = z
    ref["vae.decoded_framewise"] = vae.decode(z, num_frames=F, temporal=False).sample
    stats["vae.decoded_framewise"] = _std_ok("vae.decoded_framewise", ref["vae.decoded_framewise"])
    if vae.has_temp_convs:
        ref["vae.decoded_temporal"] = vae.decode(z, num_frames=F, temporal=True).sample
        stats["vae.decoded_temporal"] = _std_ok("vae.decoded_temporal", ref["vae.decoded_temporal"])
        diff = (ref["vae.decoded_temporal"] - ref["vae.decoded_framewise"]).abs().max().item()
        stats["vae.temporal_minus_framewise_max_abs"] = round(diff, 5)
        assert diff > 1e-2, "temporal convs have no effect"
    x = torch.rand(F, 3, H, W, generator=gen) * 2 - 1
    ref["vae.encode_input"] = x
    ref["vae.encode_mean"] = vae.encode(x).latent_dist.mean
    stats["vae.encode_mean"] = _std_ok("vae.encode_mean", ref["vae.encode_mean"])

    # scheduler
    for n in (2, 7, 25, 50):
        sched.set_timesteps(n)
        ref[f"scheduler.timesteps_{n}"] = sched.timesteps.clone().to(torch.int64)
    step_info = {}

    def one_step(prefix, n, index):
        sched.set_timesteps(n)
        t = int(sched.timesteps[index])
        mo = torch.randn(F, C, h, w, generator=gen)
        sa = torch.randn(F, C, h, w, generator=gen)
        ref[f"{prefix}.model_output"], ref[f"{prefix}.sample"] = mo, sa
        ref[f"{prefix}.prev_sample"] = sched.step(mo, t, sa, eta=0.0).prev_sample
        prev_t = t - sched.config.num_train_timesteps // n
        step_info[prefix] = {
            "num_inference_steps": n, "index": index, "timestep": t, "prev_timestep": prev_t,
            "uses_final_alpha_cumprod": prev_t < 0,
        }

    one_step("scheduler.step", 7, 2)
    one_step("scheduler.last_step", 50, -1)
    one_step("scheduler.last_step_7", 7, -1)

    # pipeline (the real diffusers denoising loop)
    noise = torch.randn(1, C, F, h, w, generator=gen)
    pipe = load_pipeline(model_dir, torch.float32)
    latents = run_latents(pipe, noise, PROMPT, NEGATIVE_PROMPT, 2, 7.5, F, H, W)
    ref["pipe.noise"], ref["pipe.latents"] = noise, latents
    stats["pipe.latents"] = _std_ok("pipe.latents", latents)
    ref["pipe.video"] = decode_video(pipe.vae, latents)
    stats["pipe.video"] = _std_ok("pipe.video", ref["pipe.video"], lo=0.02, hi=1.0)

    ref = {k: (v.contiguous() if v.dtype == torch.int64 else v.float().contiguous()) for k, v in ref.items()}
    info = {
        "config": name,
        "seed": cfg["seed"],
        "weights_dtype": cfg["dtype"],
        "computed_in": "float32 (weights upcast from the stored dtype), CPU, torch.set_num_threads(1)",
        "versions": {"torch": torch.__version__, "diffusers": diffusers.__version__,
                     "transformers": transformers.__version__},
        "prompt": PROMPT,
        "negative_prompt": NEGATIVE_PROMPT,
        "steps": 2,
        "guidance_scale": 7.5,
        "eta": 0.0,
        "num_frames": F,
        "height": H,
        "width": W,
        "latent_height": h,
        "latent_width": w,
        "vae_scale_factor": s,
        "scaling_factor": vae.config.scaling_factor,
        "vae_add_temp_conv": vae.has_temp_convs,
        "unet_timesteps": UNET_TIMESTEPS,
        "pipe_timesteps": [int(t) for t in ref["scheduler.timesteps_2"]],
        "scheduler_steps": step_info,
        "stats": stats,
        "tensors": {
            "text.input_ids": "int64 [2,77]: row 0 = tokenizer(negative_prompt), row 1 = tokenizer(prompt); "
                              "padding=max_length 77, truncation",
            "text.hidden_states": "[2,77,D] text_encoder(input_ids)[0] (last_hidden_state, after final_layer_norm)",
            "unet.sample": "[2,C,F,h,w] randn",
            "unet.timesteps": "int64 [2], one timestep per batch entry",
            "unet.encoder_hidden_states": "[2,77,D] randn",
            "unet.out": "[2,C,F,h,w] unet(sample, timesteps, encoder_hidden_states).sample",
            "vae.z": "[F,C,h,w] decoder input, already divided by scaling_factor (post_quant_conv not yet applied)",
            "vae.decoded_framewise": "[F,3,H,W] post_quant_conv + decoder, temporal convs skipped",
            "vae.decoded_temporal": "[F,3,H,W] same with temporal convs, the F frames as one clip "
                                    "(only when vae/config.json has add_temp_conv true)",
            "vae.encode_input": "[F,3,H,W] uniform in [-1,1]",
            "vae.encode_mean": "[F,C,h,w] encode(x).latent_dist.mean (encoder + quant_conv, first C channels)",
            "scheduler.timesteps_N": "int64 [N] DDIMScheduler.timesteps after set_timesteps(N)",
            "scheduler.step.*": "model_output, sample, prev_sample [F,C,h,w]: step(model_output, t, sample, eta=0) "
                                "with t from scheduler_steps['scheduler.step']",
            "scheduler.last_step.*": "same at the last timestep of set_timesteps(50) (prev timestep < 0: "
                                     "final_alpha_cumprod)",
            "scheduler.last_step_7.*": "same at the last timestep of set_timesteps(7) (see uses_final_alpha_cumprod)",
            "pipe.noise": "[1,C,F,h,w] randn, passed as latents= (DDIM init_noise_sigma is 1)",
            "pipe.latents": "[1,C,F,h,w] final latents of TextToVideoSDPipeline(prompt, negative_prompt, steps, "
                            "guidance_scale, num_frames, height, width, latents=pipe.noise, output_type='latent'); "
                            "CFG as one batch of 2, negative first",
            "pipe.video": "[1,3,F,H,W] decode(pipe.latents / scaling_factor) (temporal convs if present), "
                          "then (x/2+0.5).clamp(0,1)",
        },
    }
    return ref, info


def write_references(out_dir: str, ref: dict, info: dict) -> None:
    save_file(ref, os.path.join(out_dir, "reference.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "reference.json"), "w") as fh:
        json.dump(info, fh, indent=1)
        fh.write("\n")


@torch.no_grad()
def verify(name: str, cfg: dict, out_dir: str) -> None:
    """Reload from disk, recompute everything, compare with the stored files; also load the
    folder with the stock diffusers DiffusionPipeline loader."""
    from diffusers import DiffusionPipeline

    model_dir = os.path.join(out_dir, "model")
    stored = load_file(os.path.join(out_dir, "reference.safetensors"))
    ref, _ = compute_references(name, cfg, model_dir)
    assert set(ref) == set(stored), set(ref) ^ set(stored)
    worst = 0.0
    for k in ref:
        d = (ref[k].double() - stored[k].double()).abs().max().item()
        worst = max(worst, d)
        if d > 1e-6:
            raise RuntimeError(f"{name}: {k} not reproduced (max abs diff {d})")
    # stock loader: the folder must load as a plain TextToVideoSDPipeline
    stock = DiffusionPipeline.from_pretrained(model_dir, dtype=torch.float32)
    assert type(stock).__name__ == "TextToVideoSDPipeline", type(stock)
    stock.set_progress_bar_config(disable=True)
    s = stock.vae_scale_factor
    if (cfg["latent_h"] * s) % 8 == 0 and (cfg["latent_w"] * s) % 8 == 0:
        out = stock(prompt=PROMPT, negative_prompt=NEGATIVE_PROMPT, num_inference_steps=2, guidance_scale=7.5,
                    num_frames=cfg["frames"], height=cfg["latent_h"] * s, width=cfg["latent_w"] * s,
                    latents=stored["pipe.noise"], output_type="latent").frames
        d = (out.float() - stored["pipe.latents"]).abs().max().item()
        if d > 1e-5:
            raise RuntimeError(f"{name}: stock DiffusionPipeline latents differ by {d}")
        stock_note = f"stock DiffusionPipeline latents max diff {d:.2e}"
    else:
        stock_note = "stock DiffusionPipeline loads (size check needs multiples of 8 px, run skipped)"
    print(f"verify {name}: OK (max diff {worst:.2e}; {stock_note})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=sorted(CONFIGS), help="configs to build (default: all)")
    ap.add_argument("--verify", action="store_true", help="after building, re-read and check")
    ap.add_argument("--verify-only", action="store_true", help="only check the existing folders")
    ap.add_argument("--no-tokenizer", action="store_true", help="skip Tests/Fixtures/clip-tokenizer")
    args = ap.parse_args()
    names = args.only or list(CONFIGS)
    if not args.no_tokenizer and not args.verify_only and not args.only:
        clip_tokenizer.write_fixture_cases(os.path.join(REPO_ROOT, "Tests", "Fixtures", "clip-tokenizer"))
    for name in names:
        cfg = CONFIGS[name]
        out_dir = cfg.get("out_dir") or os.path.join(REPO_ROOT, "Tests", "Fixtures", name)
        if not args.verify_only:
            os.makedirs(out_dir, exist_ok=True)
            model_dir = os.path.join(out_dir, "model")
            build_and_save(name, cfg, model_dir)
            ref, info = compute_references(name, cfg, model_dir)
            write_references(out_dir, ref, info)
            print(f"{name}: wrote {out_dir}  stats {json.dumps(info['stats'])}")
        if args.verify or args.verify_only:
            verify(name, cfg, out_dir)


if __name__ == "__main__":
    main()
