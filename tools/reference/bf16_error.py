"""PyTorch's own bf16 error on the parity fixtures: the yardstick for vidrd's bf16 fast mode.

    /work/venv/bin/python tools/reference/bf16_error.py

For each fixture (Tests/Fixtures/<name>), runs the U-Net forward and the VAE decode under
torch.autocast("cpu", dtype=torch.bfloat16) on the fixture's recorded inputs and prints the error
against the recorded fp32 outputs, as the Swift parity tests measure it: max |difference| / std
of the reference (and the RMS too). Tests/RuntimeTests/PackedWeightTests.swift quotes these
figures; rerun this after regenerating the fixtures and update them there.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from diffusers import UNet3DConditionModel  # noqa: E402
from temporal_vae import TemporalAutoencoderKL  # noqa: E402

ROOT = os.path.join(HERE, "..", "..", "Tests", "Fixtures")


def errors(actual, expected):
    d = (actual.float() - expected.float())
    s = expected.float().std()
    return {"max_over_std": round((d.abs().max() / s).item(), 4), "rms_over_std": round((d.pow(2).mean().sqrt() / s).item(), 4)}


def main():
    torch.manual_seed(0)
    for name in ["tiny-lpb2", "tiny-nonsquare", "tiny-fp16"]:
        d = os.path.join(ROOT, name)
        ref = load_file(os.path.join(d, "reference.safetensors"))
        unet = UNet3DConditionModel.from_pretrained(os.path.join(d, "model", "unet")).float().eval()
        vae = TemporalAutoencoderKL.from_pretrained(os.path.join(d, "model", "vae")).float().eval()
        temporal = "vae.decoded_temporal" in ref
        z = ref["vae.z"]
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            u = unet(ref["unet.sample"], ref["unet.timesteps"], encoder_hidden_states=ref["unet.encoder_hidden_states"]).sample
            v = vae.decode(z, num_frames=z.shape[0], temporal=temporal).sample
        print(json.dumps({"fixture": name, "unet": errors(u, ref["unet.out"]),
                          "vae_decode": errors(v, ref["vae.decoded_temporal" if temporal else "vae.decoded_framewise"])}))


if __name__ == "__main__":
    main()
