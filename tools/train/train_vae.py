#!/usr/bin/env python3
"""Stage 1: train the small image AutoencoderKL (64x64 px -> 8x8x4 latents) on single frames.

Loss: L1 + 0.5*MSE reconstruction + beta*KL (beta 1e-6, as Stable Diffusion's KL-f8).
Checkpoints every --ckpt-every seconds to RUN/vae_ckpt.pt (model + optimiser + step + history);
--resume continues from it. At the end (or with --export-only) writes RUN/vae/ (diffusers folder,
scaling_factor measured on the training data) and RUN/vae_loss.png.

  nohup nice -n 19 python tools/train/train_vae.py --steps 3000 > /work/train-runs/vae.log 2>&1 &
"""
import argparse
import os

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL

from common import RUNS, VAE_CONFIG, ClipData, log, median_distance_weights, plot_losses, save_ckpt


def measure_scaling(vae, data, rng, n=512):
    with torch.no_grad():
        z = torch.cat([vae.encode(data.frames(rng, 64)).latent_dist.mean for _ in range(n // 64)])
    return float(1.0 / z.flatten().std()), float(z.mean())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(RUNS, "data"))
    ap.add_argument("--run", default=os.path.join(RUNS, "vae"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--kl", type=float, default=1e-6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=float, default=180.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--export-only", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bf16", type=int, default=1, help="bf16 autocast (AVX-512 BF16 here)")
    ap.add_argument("--init", default=None,
                    help="fresh run only: start from this VAE folder's spatial weights (a shipped temporal VAE's Temp-Conv layers "
                         "are dropped: stage 2 trains new ones for the new decoder)")
    ap.add_argument("--object-weight", type=float, default=0.0,
                    help="extra reconstruction weight on pixels that differ from the frame's median colour "
                         "(the object covers 5-15%% of a frame: unweighted, its shape barely moves the loss)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.run, exist_ok=True)
    data = ClipData(os.path.join(a.data, "train"))
    vae = AutoencoderKL(**VAE_CONFIG)
    with torch.no_grad():  # start with a small posterior std (e^-2.5): latents carry information from step 0
        vae.quant_conv.bias[VAE_CONFIG["latent_channels"]:] = -5.0
    ckpt_path = os.path.join(a.run, "vae_ckpt.pt")
    resuming = (a.resume or a.export_only) and os.path.exists(ckpt_path)
    if a.init and not resuming:  # a resumed run's checkpoint replaces these weights anyway
        from safetensors.torch import load_file
        sd = load_file(os.path.join(a.init, "diffusion_pytorch_model.safetensors"))
        sd = {k: v.float() for k, v in sd.items() if ".temp_convs." not in k}
        vae.load_state_dict(sd, strict=True)
        log(f"initialised from {a.init}")
    opt = torch.optim.AdamW(vae.parameters(), lr=a.lr, weight_decay=0.0)
    step, hist = 0, []
    rng = np.random.default_rng(a.seed)
    if resuming:
        st = torch.load(ckpt_path, weights_only=False)
        vae.load_state_dict(st["model"]); opt.load_state_dict(st["opt"])
        step, hist = st["step"], st["hist"]
        rng = np.random.default_rng(a.seed + step)
        log(f"resumed at step {step}")
    log(f"vae params {sum(p.numel() for p in vae.parameters()) / 1e6:.2f} M, {len(data)} clips")
    import time
    last = time.time()
    while step < a.steps and not a.export_only:
        lr = a.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * step / a.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        x = data.frames(rng, a.batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.bf16)):
            post = vae.encode(x).latent_dist
            z = post.sample()
            rec = vae.decode(z).sample.float()
        # saturating at the data's minimum object-background distance: 160 summed RGB levels = 1.25
        w = median_distance_weights(x, a.object_weight, saturation=1.25) if a.object_weight > 0 else 1.0
        l1 = ((rec - x).abs() * w).mean()
        mse = ((rec - x) ** 2 * w).mean()
        kl = post.kl().mean()
        loss = l1 + 0.5 * mse + a.kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        step += 1
        hist.append(dict(step=step, l1=l1.item(), mse=mse.item(), kl=kl.item()))
        if step % 25 == 0:
            h = hist[-25:]
            log(f"step {step} l1 {np.mean([x['l1'] for x in h]):.4f} mse {np.mean([x['mse'] for x in h]):.5f} "
                f"kl {np.mean([x['kl'] for x in h]):.1f} lr {lr:.2e}")
        if time.time() - last > a.ckpt_every or step == a.steps:
            save_ckpt(ckpt_path, model=vae.state_dict(), opt=opt.state_dict(), step=step, hist=hist)
            plot_losses(hist, os.path.join(a.run, "vae_loss.png"), "AutoencoderKL stage 1")
            last = time.time()
            log(f"checkpoint step {step}")
    vae.eval()
    sf, mu = measure_scaling(vae, data, np.random.default_rng(123))
    vae.register_to_config(scaling_factor=sf)
    vae.save_pretrained(os.path.join(a.run, "vae"))
    if hist:
        plot_losses(hist, os.path.join(a.run, "vae_loss.png"), "AutoencoderKL stage 1")
    log(f"exported {a.run}/vae scaling_factor {sf:.4f} (latent mean {mu:.3f})")


if __name__ == "__main__":
    main()
