"""A random-weight model folder the size of damo-vilab/text-to-video-ms-1.7b, stored in fp16.

For the memory/load-time benchmark (tools/bench/load_bench.sh, tools/bench/load_bench_torch.py):
a diffusers TextToVideoSDPipeline folder with ModelScope's architecture and random weights,

  unet/          UNet3DConditionModel, block_out_channels 320/640/1280/1280, 2 layers per block,
                 cross-attention 1024, attention_head_dim 64, 32 groups (~1.41 B parameters)
  text_encoder/  CLIPTextModel, 1024 wide, 23 layers, 16 heads, gelu (OpenCLIP-H's text tower)
  vae/           AutoencoderKL with Stable Diffusion's config (128/256/512/512, scaling 0.18215)
  tokenizer/, scheduler/, model_index.json   copied from Models/vidrd-tiny (the same CLIP
                 tokenizer and ModelScope's DDIM config), so the Swift loader reads it as it reads
                 that folder

each weight file a single `diffusion_pytorch_model.safetensors` / `model.safetensors` of F16
tensors, as the Hub download holds them (modules converted to torch.float16, then
save_pretrained; no `variant`, so the names carry no `.fp16`). Diffusers' and transformers' default
initialisation, seeded: finite in fp16; a U-Net, text-encoder and VAE forward in fp32 from the
saved files is checked to be finite and non-degenerate at the end.

    /work/venv/bin/python tools/reference/make_modelscope_size.py --out /work/bench-models/modelscope-size [--seed 0]

Offline (nothing is downloaded). Needs 10 GB of memory (peak RSS, one component at a time) and
3.7 GB of disk; about a minute on two cores. Nothing it writes is committed. Prints one JSON line:
parameters and bytes on disk per component, and the check's output statistics.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import shutil

import torch
from safetensors import safe_open

HERE = os.path.dirname(os.path.abspath(__file__))
EMBEDDED = os.path.join(HERE, "..", "..", "Models", "vidrd-tiny")

UNET = dict(sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("CrossAttnDownBlock3D",) * 3 + ("DownBlock3D",),
            up_block_types=("UpBlock3D",) + ("CrossAttnUpBlock3D",) * 3,
            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, norm_num_groups=32,
            cross_attention_dim=1024, attention_head_dim=64)
# Token ids as in Models/vidrd-tiny (its tokenizer's <|startoftext|> / <|endoftext|>).
TEXT = dict(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
            num_attention_heads=16, hidden_act="gelu", max_position_embeddings=77, projection_dim=512,
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
VAE = dict(in_channels=3, out_channels=3, latent_channels=4,
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
           block_out_channels=(128, 256, 512, 512), layers_per_block=2, norm_num_groups=32,
           sample_size=256, scaling_factor=0.18215)


def save_fp16(model, path, **kwargs):
    """Converts `model` to fp16 (checking every weight stays finite) and saves it; returns its parameter count."""
    n = sum(p.numel() for p in model.parameters())
    model.to(torch.float16)
    for name, t in model.state_dict().items():
        if not torch.isfinite(t).all():
            raise SystemExit(f"{path}: {name} is not finite in fp16")
    model.save_pretrained(path, **kwargs)
    return n


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def weight_dtypes(path):
    """{file: sorted set of the safetensors dtypes it holds} for every .safetensors file in `path`."""
    out = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(path, f), "pt") as st:
                out[f] = sorted({str(st.get_slice(k).get_dtype()) for k in st.keys()})
    return out


def stats(t):
    t = t.float()
    return {"finite": bool(torch.isfinite(t).all()), "std": round(t.std().item(), 4), "mean_abs": round(t.abs().mean().item(), 4)}


def check(out, seed):
    """fp32 forwards from the saved fp16 files: every output finite, none constant."""
    from diffusers import AutoencoderKL, UNet3DConditionModel
    from transformers import CLIPTextModel

    g = torch.Generator().manual_seed(seed)
    result = {}
    with torch.no_grad():
        te = CLIPTextModel.from_pretrained(out, subfolder="text_encoder", dtype=torch.float32)
        ids = torch.tensor([[49406, 320, 736, 1681, 49407] + [49407] * 72])
        result["text_encoder"] = stats(te(ids).last_hidden_state)
        del te
        gc.collect()
        unet = UNet3DConditionModel.from_pretrained(out, subfolder="unet", torch_dtype=torch.float32)
        sample = torch.randn(2, 4, 2, 8, 8, generator=g)
        ehs = torch.randn(2, 77, 1024, generator=g)
        result["unet_b2f2_8x8"] = stats(unet(sample, 500, encoder_hidden_states=ehs).sample)
        del unet
        gc.collect()
        vae = AutoencoderKL.from_pretrained(out, subfolder="vae", torch_dtype=torch.float32)
        result["vae_decode_8x8"] = stats(vae.decode(torch.randn(1, 4, 8, 8, generator=g)).sample)
        del vae
    for k, v in result.items():
        if not v["finite"] or v["std"] == 0:
            raise SystemExit(f"check failed: {k} {v}")
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="the model folder to write (replaced if it exists)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)

    from diffusers import AutoencoderKL, UNet3DConditionModel, __version__ as diffusers_version
    from transformers import CLIPTextConfig, CLIPTextModel

    params = {}
    # One component at a time: the U-Net alone is 5.6 GB in fp32.
    torch.manual_seed(args.seed)
    params["unet"] = save_fp16(UNet3DConditionModel(**UNET), os.path.join(out, "unet"), safe_serialization=True)
    gc.collect()
    torch.manual_seed(args.seed + 1)
    params["text_encoder"] = save_fp16(CLIPTextModel(CLIPTextConfig(**TEXT)), os.path.join(out, "text_encoder"))
    gc.collect()
    torch.manual_seed(args.seed + 2)
    params["vae"] = save_fp16(AutoencoderKL(**VAE), os.path.join(out, "vae"), safe_serialization=True)
    gc.collect()

    shutil.copytree(os.path.join(EMBEDDED, "tokenizer"), os.path.join(out, "tokenizer"))
    shutil.copytree(os.path.join(EMBEDDED, "scheduler"), os.path.join(out, "scheduler"))
    with open(os.path.join(EMBEDDED, "model_index.json")) as f:
        index = json.load(f)
    index["_diffusers_version"] = diffusers_version
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")

    components = ("unet", "text_encoder", "vae", "tokenizer", "scheduler")
    print(json.dumps({
        "out": out, "seed": args.seed,
        "parameters": params, "parameters_m": {k: round(v / 1e6, 1) for k, v in params.items()},
        "bytes": {c: folder_bytes(os.path.join(out, c)) for c in components} | {"total": folder_bytes(out)},
        "weight_dtypes": {c: weight_dtypes(os.path.join(out, c)) for c in ("unet", "text_encoder", "vae")},
        "check": check(out, args.seed),
    }))


if __name__ == "__main__":
    main()
