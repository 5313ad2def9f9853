#!/usr/bin/env python3
"""Convert the VidRD authors' release (anonymous0x233/ReuseAndDiffuse) into one vidrd model folder.

Inputs, as the authors' README lays them out:
  ModelT2V.pth                 PyTorch Lightning checkpoint: state_dict with unet.* (their
                               UNet3DConditionModel) and text_encoder.* (CLIPTextModel) tensors
  stable-diffusion-2-1-base/   unet/config.json (the 2-D config their U-Net inflates), text_encoder/,
                               tokenizer/, scheduler/
  vae_finetuned/               their TemporalAutoencoderKL: config.json + diffusion_pytorch_model.bin

Output: model_index.json, unet/ (config with "_vidrd_family": "ReuseAndDiffuse" and the authors'
flags), text_encoder/, tokenizer/, vae/ (add_temp_conv), scheduler/ (DDIM, as their pipeline
builds it), generation_config.json (their sampling defaults), weights as safetensors in
--dtype (fp16 default, bf16 or fp32).

Every .pth/.bin is read with torch.load(weights_only=True): tensors and plain containers only,
never arbitrary objects. Lightning's hyper-parameter dict (AttributeDict) is admitted as a dict.

  python tools/convert/vidrd_checkpoint.py --checkpoint assets/ModelT2V.pth \
      --sd assets/stable-diffusion-2-1-base --vae assets/vae_finetuned --out models/vidrd-paper
"""
import argparse
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}

# The authors' sampling (configs/example.yaml, model/model.py, model/pipeline.py).
AUTHORS_GENERATION = {
    "guidance_scale": 10.0,
    "num_inference_steps": 50,
    "height": 256,
    "width": 256,
    "num_frames": 16,
    "negative_prompt": "watermark",
    "extend_overlap_frames": 4,
    "extend_noise_recycle": 4,
    "extend_denoise_guidance": 0.4,
    "noise_alpha": 0.0,
    "seed": 42,
    "chain": "vidrd-paper",
}

# Flags their SDVideoModel passes to UNet3DConditionModel.from_pretrained_2d (configs/example.yaml).
AUTHORS_UNET_FLAGS = {
    "add_temp_embed": True,
    "add_temp_conv": True,
    "add_temp_transformer": False,
    "add_temp_attn_only_on_upblocks": False,
    "prepend_first_frame": False,
}


def _lightning_dict_standins():
    """Lightning pickles save_hyperparameters() as an AttributeDict; admit it as a plain dict."""
    made = []
    for module in ("pytorch_lightning.utilities.parsing", "lightning_fabric.utilities.data", "lightning.fabric.utilities.data"):
        # The unpickler fills it with SETITEMS, which it allows on plain dicts only: build one.
        cls = type("AttributeDict", (dict,), {"__module__": module, "__new__": lambda c, *a, **k: dict()})
        cls.__qualname__ = "AttributeDict"
        made.append(cls)
    return made


def safe_load(path):
    try:
        with torch.serialization.safe_globals(_lightning_dict_standins()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - report which file and why, then stop
        sys.exit(f"{path}: cannot be read as tensors only (torch.load weights_only=True): {e}")


def read_json(path):
    with open(path) as fh:
        return json.load(fh)


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True)
        fh.write("\n")


def save_tensors(tensors, path, dtype):
    out = {}
    for k, v in tensors.items():
        if not torch.is_tensor(v):
            continue
        v = v.detach().contiguous()
        out[k] = v.to(dtype) if v.is_floating_point() else v
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(out, path, metadata={"format": "pt"})


def split_checkpoint(ckpt):
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        sys.exit("checkpoint: no state_dict")
    parts = {"unet": {}, "text_encoder": {}}
    other = []
    for k, v in state.items():
        prefix, _, rest = k.partition(".")
        if prefix in parts:
            parts[prefix][rest] = v
        else:
            other.append(k)
    if not parts["unet"]:
        sys.exit("checkpoint: no unet.* tensors (is this ModelT2V.pth?)")
    return parts, other


def convert_unet(sd_dir, unet_state, out, dtype):
    cfg = read_json(os.path.join(sd_dir, "unet", "config.json"))
    # from_pretrained_2d: the 2-D config with 3-D block names and the temporal flags.
    cfg["_class_name"] = "UNet3DConditionModel"
    cfg["_vidrd_family"] = "ReuseAndDiffuse"
    cfg["down_block_types"] = ["CrossAttnDownBlock3D"] * (len(cfg["block_out_channels"]) - 1) + ["DownBlock3D"]
    cfg["up_block_types"] = ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * (len(cfg["block_out_channels"]) - 1)
    cfg.update(AUTHORS_UNET_FLAGS)
    write_json(os.path.join(out, "unet", "config.json"), cfg)
    save_tensors(unet_state, os.path.join(out, "unet", "diffusion_pytorch_model.safetensors"), dtype)


def load_component_weights(folder, names):
    for name in names:
        p = os.path.join(folder, name)
        if os.path.exists(p):
            return load_file(p) if p.endswith(".safetensors") else safe_load(p)
    sys.exit(f"{folder}: none of {', '.join(names)}")


def convert_text_encoder(sd_dir, ckpt_state, out, dtype):
    src = os.path.join(sd_dir, "text_encoder")
    os.makedirs(os.path.join(out, "text_encoder"), exist_ok=True)
    shutil.copyfile(os.path.join(src, "config.json"), os.path.join(out, "text_encoder", "config.json"))
    # Their SDVideoModel.setup loads text_encoder.* from the checkpoint over SD's weights.
    state = ckpt_state or load_component_weights(src, ["model.safetensors", "pytorch_model.bin"])
    save_tensors(state, os.path.join(out, "text_encoder", "model.safetensors"), dtype)
    return "ModelT2V.pth" if ckpt_state else "stable-diffusion-2-1-base"


# diffusers <= 0.14 named the VAE mid-block attention query/key/value/proj_attn.
_OLD_VAE_ATTENTION = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}


def convert_vae(vae_dir, out, dtype):
    cfg = read_json(os.path.join(vae_dir, "config.json"))
    cfg["_class_name"] = "AutoencoderKL"  # stock diffusers still loads it, ignoring the temp convs
    cfg.setdefault("add_temp_conv", True)
    write_json(os.path.join(out, "vae", "config.json"), cfg)
    state = load_component_weights(vae_dir, ["diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"])
    renamed = {}
    for k, v in state.items():
        for old, new in _OLD_VAE_ATTENTION.items():
            if ".attentions." in k and old in k:
                k = k.replace(old, new)
        renamed[k] = v
    # Old checkpoints store those projections as 1x1 convs in some exporters; diffusers wants linear.
    for k, v in list(renamed.items()):
        if ".attentions." in k and k.endswith(".weight") and v.dim() == 4:
            renamed[k] = v[:, :, 0, 0]
    save_tensors(renamed, os.path.join(out, "vae", "diffusion_pytorch_model.safetensors"), dtype)


def convert_scheduler(sd_dir, out):
    cfg = read_json(os.path.join(sd_dir, "scheduler", "scheduler_config.json"))
    # Their pipeline builds DDIMScheduler.from_pretrained(scheduler/) from SD's PNDM config.
    keep = {k: v for k, v in cfg.items() if k in {
        "num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "clip_sample",
        "set_alpha_to_one", "steps_offset", "prediction_type", "timestep_spacing", "rescale_betas_zero_snr"}}
    keep.setdefault("clip_sample", True)          # DDIMScheduler's default when SD's config omits it
    keep.setdefault("set_alpha_to_one", True)
    keep["_class_name"] = "DDIMScheduler"
    write_json(os.path.join(out, "scheduler", "scheduler_config.json"), keep)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, help="ModelT2V.pth")
    ap.add_argument("--sd", required=True, help="stable-diffusion-2-1-base folder")
    ap.add_argument("--vae", required=True, help="vae_finetuned folder")
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    args = ap.parse_args()
    dtype = DTYPES[args.dtype]

    ckpt = safe_load(args.checkpoint)
    parts, other = split_checkpoint(ckpt)
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)

    convert_unet(args.sd, parts["unet"], args.out, dtype)
    text_source = convert_text_encoder(args.sd, parts["text_encoder"], args.out, dtype)
    shutil.copytree(os.path.join(args.sd, "tokenizer"), os.path.join(args.out, "tokenizer"))
    convert_vae(args.vae, args.out, dtype)
    convert_scheduler(args.sd, args.out)
    write_json(os.path.join(args.out, "model_index.json"), {
        "_class_name": "TextToVideoSDPipeline",
        "_vidrd_converted_from": "anonymous0x233/ReuseAndDiffuse ModelT2V.pth",
        "scheduler": ["diffusers", "DDIMScheduler"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["reuse_and_diffuse", "UNet3DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    })
    write_json(os.path.join(args.out, "generation_config.json"), AUTHORS_GENERATION)
    print(f"{args.out}: unet {len(parts['unet'])} tensors, text encoder from {text_source}, "
          f"{args.dtype}; ignored checkpoint keys: {len(other)}")


if __name__ == "__main__":
    main()
