"""Compare Swift pipeline latents against the real diffusers TextToVideoSDPipeline.

    python tools/reference/compare_pipeline.py --model DIR --noise NOISE.safetensors \
        --latents SWIFT_LATENTS.safetensors --prompt "a cat" --steps 2 --guidance 7.5 \
        [--negative-prompt ""] [--frames F --height H --width W] [--tolerance 1e-4] [--save-reference OUT]

NOISE holds `noise` ([1,C,F,h,w] float32, e.g. from make_noise.py); SWIFT_LATENTS holds `latents`
(the final latents, before VAE decoding, same shape). The reference runs in float32 on the CPU
(fp16/bf16 weights upcast), DDIM with eta 0, CFG as one batch of 2 (negative first). Frames,
height and width default to the noise shape (pixels = latent size x VAE scale factor).
Prints max abs error, max abs error / std(reference) and PASS/FAIL (relative error <= tolerance).
Exit status 0 on PASS, 1 on FAIL, 2 on a shape mismatch.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

torch.set_num_threads(int(os.environ.get("VIDRD_TORCH_THREADS", "1")))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from safetensors.torch import load_file, save_file  # noqa: E402

from refpipe import load_pipeline, run_latents  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--noise", required=True)
    ap.add_argument("--latents", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--negative-prompt", default="")
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--guidance", type=float, required=True)
    ap.add_argument("--frames", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--width", type=int)
    ap.add_argument("--tolerance", type=float, default=1e-4, help="max relative error (max abs / std(ref))")
    ap.add_argument("--save-reference", help="also write the reference latents (tensor `latents`) here")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of text")
    args = ap.parse_args()

    noise = load_file(args.noise)["noise"].float()
    swift = load_file(args.latents)["latents"].float()
    if noise.dim() != 5 or noise.shape[0] != 1:
        raise SystemExit(f"noise must be [1,C,F,h,w], got {list(noise.shape)}")
    pipe = load_pipeline(args.model, torch.float32)
    ref = run_latents(pipe, noise, args.prompt, args.negative_prompt, args.steps, args.guidance,
                      args.frames, args.height, args.width).float()
    if args.save_reference:
        save_file({"latents": ref.contiguous()}, args.save_reference)
    if tuple(swift.shape) != tuple(ref.shape):
        print(f"FAIL shape: swift {list(swift.shape)} vs reference {list(ref.shape)}")
        sys.exit(2)
    err = (swift - ref).abs().max().item()
    std = ref.std().item()
    rel = err / std if std > 0 else float("inf")
    ok = rel <= args.tolerance and torch.isfinite(swift).all().item()
    if args.json:
        print(json.dumps({"max_abs_error": err, "ref_std": std, "relative_error": rel,
                          "tolerance": args.tolerance, "pass": bool(ok)}))
    else:
        print(f"max abs error        {err:.3e}")
        print(f"std(reference)       {std:.4f}")
        print(f"max abs error / std  {rel:.3e}  (tolerance {args.tolerance:g})")
        print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
