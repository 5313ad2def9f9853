"""Record the temporal-aware VAE decoder on one-frame clips (F = 1) for the Swift parity tests.

    /work/venv/bin/python tools/reference/make_vae_f1_fixture.py

For every committed fixture whose vae/config.json has `add_temp_conv` (tiny-lpb2, tiny-nonsquare)
it writes Tests/Fixtures/NAME/vae_f1.safetensors:
    vae.z_f1                  [1,C,h,w] decoder input (already divided by scaling_factor), seeded
    vae.decoded_temporal_f1   [1,3,H,W] decode(z, num_frames=1, temporal=True): the reference skips
                              Temp-Conv for one frame (as the VidRD authors' code does), so this is
                              also the frame-wise decode
A separate file so that make_fixtures.py's models and references stay untouched. Deterministic on
the CPU (torch.set_num_threads(1)); --verify recomputes and compares bit for bit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

torch.set_num_threads(1)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

from safetensors.torch import load_file, save_file  # noqa: E402

from temporal_vae import TemporalAutoencoderKL  # noqa: E402

FIXTURES = ["tiny-lpb2", "tiny-nonsquare"]
SEED = 1212


def compute(name: str) -> dict:
    root = os.path.join(REPO_ROOT, "Tests", "Fixtures", name)
    with open(os.path.join(root, "model", "vae", "config.json")) as f:
        if not json.load(f).get("add_temp_conv", False):
            raise SystemExit(f"{name}: the VAE has no temporal convs; nothing to record")
    vae = TemporalAutoencoderKL.from_pretrained(os.path.join(root, "model", "vae")).float().eval()
    # The latent size of the fixture's own F > 1 reference, so both exercise the same geometry.
    _, c, h, w = load_file(os.path.join(root, "reference.safetensors"))["vae.z"].shape
    gen = torch.Generator().manual_seed(SEED)
    z = torch.randn(1, c, h, w, generator=gen)
    with torch.no_grad():
        temporal = vae.decode(z, num_frames=1, temporal=True).sample
        framewise = vae.decode(z, num_frames=1, temporal=False).sample
    if not torch.equal(temporal, framewise):
        raise SystemExit(f"{name}: the reference applied Temp-Conv to a one-frame clip")
    return {"vae.z_f1": z.contiguous(), "vae.decoded_temporal_f1": temporal.contiguous()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--verify", action="store_true", help="recompute and compare with the stored files")
    args = ap.parse_args()
    for name in FIXTURES:
        out = os.path.join(REPO_ROOT, "Tests", "Fixtures", name, "vae_f1.safetensors")
        ref = compute(name)
        if args.verify:
            stored = load_file(out)
            bad = [k for k in ref if not torch.equal(ref[k], stored[k])]
            print(f"{name}: {'OK' if not bad else 'MISMATCH ' + ', '.join(bad)}")
            if bad:
                raise SystemExit(1)
        else:
            save_file(ref, out, metadata={"tool": "tools/reference/make_vae_f1_fixture.py", "seed": str(SEED)})
            print(f"wrote {out}: z {list(ref['vae.z_f1'].shape)} -> {list(ref['vae.decoded_temporal_f1'].shape)}")


if __name__ == "__main__":
    main()
