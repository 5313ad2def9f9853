"""FLOPs (matmul + conv, torch FlopCounterMode) of one U-Net forward at batch 2 x F frames."""
import argparse, json, sys, os
import torch
from torch.utils.flop_counter import FlopCounterMode
from diffusers import UNet3DConditionModel

ap = argparse.ArgumentParser()
ap.add_argument("--model", required=True)
ap.add_argument("--frames", type=int, default=16)
ap.add_argument("--latents", type=int, nargs="+", default=[8, 16])
a = ap.parse_args()
unet = UNet3DConditionModel.from_pretrained(os.path.join(a.model, "unet")).eval()
for s in a.latents:
    x = torch.randn(2, unet.config.in_channels, a.frames, s, s)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim)
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        unet(x, torch.tensor([500, 500]), encoder_hidden_states=ctx)
    print(json.dumps({"name": f"unet_b2f{a.frames}_{s}x{s}", "gflop": fc.get_total_flops() / 1e9}))
