"""A random-weight VidRD authors' model of the real size, for measuring memory and speed.

The paper's model is Stable Diffusion 2.1-base inflated to video (their UNet3DConditionModel:
block_out_channels 320/640/1280/1280, 2 layers per block, heads 5/10/20/20, cross-attention 1024,
temporal convolutions and attention), OpenCLIP-H's text encoder (1024 wide, 23 layers) and SD's
VAE with the temporal-aware decoder. This builds the same fake download as
make_vidrd_authors_fixture.py (a Lightning ModelT2V.pth, an SD-2.1-base-style folder, a
vae_finetuned/ folder) at that size with random weights, and converts it with
tools/convert/vidrd_checkpoint.py into a folder `vidrd-bench` and `vidrd generate` load:

    VIDRD_AUTHORS_CODE=/work/runs/reuse-and-diffuse /work/venv/bin/python \\
        tools/reference/make_vidrd_fullsize.py --out /work/bench-models/vidrd-paper-size

Needs about 12 GB of memory and 10 GB of disk while it runs; nothing it writes is committed.
"""
from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import make_vidrd_authors_fixture as fixture  # noqa: E402

fixture.UNET = dict(sample_size=32, in_channels=4, out_channels=4, block_out_channels=[320, 640, 1280, 1280],
                    layers_per_block=2, norm_num_groups=32, cross_attention_dim=1024,
                    attention_head_dim=[5, 10, 20, 20], use_linear_projection=True,
                    down_block_types=["CrossAttnDownBlock3D"] * 3 + ["DownBlock3D"],
                    up_block_types=["UpBlock3D"] + ["CrossAttnUpBlock3D"] * 3,
                    flip_sin_to_cos=True, freq_shift=0, upcast_attention=False)
fixture.TEXT = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                    hidden_act="gelu", max_position_embeddings=77)
fixture.VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
                   layers_per_block=2, norm_num_groups=32, down_block_types=["DownEncoderBlock2D"] * 4,
                   up_block_types=["UpDecoderBlock2D"] * 4, sample_size=256, scaling_factor=0.18215,
                   add_temp_conv=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="the converted model folder to write")
    ap.add_argument("--src", default="/work/runs/vidrd-fullsize-src", help="where the fake download goes")
    args = ap.parse_args()
    fixture.SRC = args.src
    # convert() writes OUT/model: point OUT at the parent so the folder lands at --out.
    out = os.path.abspath(args.out)
    fixture.OUT = out + ".parent"
    UNet, _, _, rev = fixture.import_authors()
    unet, te, vae = fixture.build_sources(UNet)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in (("unet", unet), ("text_encoder", te), ("vae", vae))}
    del unet, te, vae
    model = fixture.convert()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if os.path.exists(out):
        import shutil
        shutil.rmtree(out)
    os.replace(model, out)
    os.rmdir(fixture.OUT)
    print({"out": out, "parameters_m": {k: round(v / 1e6, 1) for k, v in params.items()}, "authors_code": rev})


if __name__ == "__main__":
    main()
