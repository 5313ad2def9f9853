"""Write a noise file for compare_pipeline.py: tensor `noise`, float32 [1, C, F, h, w].

    python tools/reference/make_noise.py --model DIR --frames 4 --height 16 --width 16 --seed 0 --out noise.safetensors

C comes from unet/config.json (in_channels); h, w = height, width / VAE scale factor
(2 ** (len(vae block_out_channels) - 1)). The tensor is torch.randn with a seeded CPU generator.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from safetensors.torch import save_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="diffusers-layout model folder")
    ap.add_argument("--frames", type=int, required=True)
    ap.add_argument("--height", type=int, required=True, help="pixels")
    ap.add_argument("--width", type=int, required=True, help="pixels")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(os.path.join(args.model, "unet", "config.json")) as fh:
        channels = json.load(fh)["in_channels"]
    with open(os.path.join(args.model, "vae", "config.json")) as fh:
        scale = 2 ** (len(json.load(fh)["block_out_channels"]) - 1)
    if args.height % scale or args.width % scale:
        raise SystemExit(f"height and width must be multiples of the VAE scale factor {scale}")
    gen = torch.Generator().manual_seed(args.seed)
    noise = torch.randn(1, channels, args.frames, args.height // scale, args.width // scale, generator=gen)
    save_file({"noise": noise.contiguous()}, args.out,
              metadata={"seed": str(args.seed), "frames": str(args.frames), "height": str(args.height),
                        "width": str(args.width)})
    print(f"wrote {args.out}: noise {list(noise.shape)} (seed {args.seed})")


if __name__ == "__main__":
    main()
