#!/usr/bin/env python3
"""Stage 2: temporal-aware decoder fine-tuning (paper section 4.4, eq. 9).

Wraps the stage-1 AutoencoderKL into tools/reference/temporal_vae.TemporalAutoencoderKL
(add_temp_conv: Temp-Conv after every ResNet of every decoder up block, last conv zero-initialised,
residual), freezes everything but the Temp-Conv layers, and trains on 8-frame clips (every 2nd
frame of a 16-frame clip) with

    L = a_rec * L1(x, D(E(x))) + a_reg * KL + a_disc * w * L_adv(D(E(x)))

with w Stable Diffusion's adaptive weight (gradient-norm ratio of the reconstruction and GAN
terms at the decoder's last layer; without it a fixed 0.5 measurably degraded reconstruction).

a_rec = 1, a_reg = 1e-5, a_disc = 0.5 (the paper's values). The KL term has no gradient here
(the encoder is frozen) but is logged. L_adv is the hinge generator loss of a 3D patch
discriminator (Conv3d, judges 4x4-pixel x 3-frame patches, so it sees flicker) trained alongside
with the hinge loss; it starts after --disc-start steps.

Eval (held-out test clips): reconstruction L1 and flicker = mean |(x[t+1]-x[t]) - (y[t+1]-y[t])|
for the frame-wise decoder (temporal=False) and the temporal one.

  nohup nice -n 19 python tools/train/train_temporal_decoder.py --resume > /work/train-runs/tdec.log 2>&1 &
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers import AutoencoderKL

from common import RUNS, until_epoch, ClipData, log, plot_losses, save_ckpt
from temporal_vae import TemporalAutoencoderKL


class PatchDisc3D(nn.Module):
    def __init__(self, ch=32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(3, ch, (3, 4, 4), (1, 2, 2), (1, 1, 1)), nn.LeakyReLU(0.2),
            nn.Conv3d(ch, ch * 2, (3, 4, 4), (1, 2, 2), (1, 1, 1)), nn.GroupNorm(8, ch * 2), nn.LeakyReLU(0.2),
            nn.Conv3d(ch * 2, ch * 2, (3, 3, 3), 1, 1), nn.GroupNorm(8, ch * 2), nn.LeakyReLU(0.2),
            nn.Conv3d(ch * 2, 1, (3, 3, 3), 1, 1),
        )

    def forward(self, x):  # (B,3,F,H,W)
        return self.net(x)


def to_frames(v):  # (B,3,F,H,W) -> (B*F,3,H,W)
    b, c, f, h, w = v.shape
    return v.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)


def to_video(x, f):
    bf, c, h, w = x.shape
    return x.reshape(bf // f, f, c, h, w).permute(0, 2, 1, 3, 4)


@torch.no_grad()
def evaluate(vae, test, n=32, frames=8, stride=2, seed=99):
    rng = np.random.default_rng(seed)
    out = {}
    x, _ = test.clips(rng, n, frames, stride)
    z = vae.encode(to_frames(x)).latent_dist.mode()
    for name, temporal in (("framewise", False), ("temporal", True)):
        y = to_video(vae.decode(z, num_frames=frames, temporal=temporal).sample, frames).clamp(-1, 1)
        rec = (y - x).abs().mean().item()
        dx, dy = x[:, :, 1:] - x[:, :, :-1], y[:, :, 1:] - y[:, :, :-1]
        out[name] = dict(l1=rec, flicker=(dx - dy).abs().mean().item(),
                         psnr=float(10 * torch.log10(4.0 / F.mse_loss(y, x))))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(RUNS, "data"))
    ap.add_argument("--vae", default=os.path.join(RUNS, "vae", "vae"))
    ap.add_argument("--run", default=os.path.join(RUNS, "tdec"))
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=2, help="clips per step (x 8 frames)")
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--spatial-lr", type=float, default=2e-5, help="lr of the spatial decoder layers (--train-spatial)")
    ap.add_argument("--a-rec", type=float, default=1.0)
    ap.add_argument("--a-reg", type=float, default=1e-5)
    ap.add_argument("--a-disc", type=float, default=0.5)
    ap.add_argument("--disc-start", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ckpt-every", type=float, default=240.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--until", default=None, help="wall-clock deadline HH:MM (UTC): checkpoint and stop there")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--train-spatial", action="store_true",
                    help="also train the decoder's spatial layers (encoder stays frozen, so U-Net latents stay valid); "
                         "remembered in the checkpoint")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.run, exist_ok=True)
    train = ClipData(os.path.join(a.data, "train"))
    test = ClipData(os.path.join(a.data, "test"))
    vae = TemporalAutoencoderKL.from_autoencoder_kl(AutoencoderKL.from_pretrained(a.vae), add_temp_conv=True)
    if a.resume and os.path.exists(os.path.join(a.run, "tdec_ckpt.pt")):
        a.train_spatial = a.train_spatial or torch.load(os.path.join(a.run, "tdec_ckpt.pt"), weights_only=False).get(
            "train_spatial", False)
    vae.freeze_all_but_temporal()
    if a.train_spatial:
        vae.decoder.requires_grad_(True)
        vae.post_quant_conv.requires_grad_(True)
    disc = PatchDisc3D()
    last_layer = vae.decoder.conv_out.weight if a.train_spatial else vae.decoder.up_blocks[-1].temp_convs[-1].convs[-1].weight
    tparams = [p for p in vae.parameters() if p.requires_grad]
    temp_ids = {id(p) for p in vae.temporal_parameters()}
    groups = [dict(params=[p for p in tparams if id(p) in temp_ids], lr=a.lr)]
    if a.train_spatial:
        groups.append(dict(params=[p for p in tparams if id(p) not in temp_ids], lr=a.spatial_lr))
    opt_g = torch.optim.AdamW(groups, lr=a.lr, betas=(0.9, 0.99), weight_decay=0.0)
    opt_d = torch.optim.AdamW(disc.parameters(), lr=a.lr, betas=(0.5, 0.9))
    step, hist, evals = 0, [], []
    ckpt_path = os.path.join(a.run, "tdec_ckpt.pt")
    if a.resume and os.path.exists(ckpt_path):
        st = torch.load(ckpt_path, weights_only=False)
        vae.load_state_dict(st["vae"]); disc.load_state_dict(st["disc"])
        opt_g.load_state_dict(st["opt_g"]); opt_d.load_state_dict(st["opt_d"])
        step, hist, evals = st["step"], st["hist"], st["evals"]
        for g, lr in zip(opt_g.param_groups, [a.lr, a.spatial_lr]):
            g["lr"] = lr  # the command line's rates win over the checkpoint's (a resumed run may change them)
        log(f"resumed at step {step}")
    else:
        vae.eval()
        evals.append(dict(step=0, **evaluate(vae, test)))
        log("eval", evals[-1])
    log(f"trainable params {sum(p.numel() for p in tparams) / 1e6:.3f} M (spatial decoder too: {a.train_spatial})")
    rng = np.random.default_rng(a.seed * 1000 + step)
    last = time.time()
    deadline = until_epoch(a.until)
    while step < a.steps:
        vae.train()
        vae.encoder.eval()
        vae.quant_conv.eval()
        x, _ = train.clips(rng, a.batch, 8, 2)
        F_ = x.shape[2]
        with torch.no_grad():
            post = vae.encode(to_frames(x)).latent_dist
            z = post.sample()
            kl = post.kl().mean()
        y = to_video(vae.decode(z, num_frames=F_, temporal=True).sample, F_)
        rec = (y - x).abs().mean()
        use_disc = step >= a.disc_start
        g_adv = -disc(y).mean() if use_disc else torch.zeros(())
        w_adapt = torch.zeros(())
        if use_disc:
            # Stable Diffusion's adaptive weight (the paper fine-tunes "following Stable Diffusion"):
            # balance the GAN gradient against the reconstruction gradient at the last layer.
            g_r = torch.autograd.grad(a.a_rec * rec, last_layer, retain_graph=True)[0]
            g_g = torch.autograd.grad(g_adv, last_layer, retain_graph=True)[0]
            w_adapt = torch.clamp(g_r.norm() / (g_g.norm() + 1e-4), 0.0, 1e4).detach()
        loss = a.a_rec * rec + a.a_reg * kl + (a.a_disc * w_adapt * g_adv if use_disc else 0.0)
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        # discriminator (hinge)
        d_loss = torch.zeros(())
        if use_disc or step >= a.disc_start - 50:
            d_loss = F.relu(1 - disc(x)).mean() + F.relu(1 + disc(y.detach())).mean()
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        step += 1
        hist.append(dict(step=step, rec=rec.item(), g_adv=float(g_adv), d_loss=float(d_loss), kl=kl.item(),
                         w_adapt=float(w_adapt)))
        if step % 10 == 0:
            h = hist[-10:]
            log(f"step {step} rec {np.mean([q['rec'] for q in h]):.4f} g_adv {np.mean([q['g_adv'] for q in h]):.3f} "
                f"d {np.mean([q['d_loss'] for q in h]):.3f} w {np.mean([q.get('w_adapt', 0) for q in h]):.3f}")
        stop = deadline is not None and time.time() > deadline
        if time.time() - last > a.ckpt_every or step == a.steps or stop:
            vae.eval()
            evals.append(dict(step=step, **evaluate(vae, test)))
            log("eval", evals[-1])
            save_ckpt(ckpt_path, vae=vae.state_dict(), disc=disc.state_dict(), opt_g=opt_g.state_dict(),
                      opt_d=opt_d.state_dict(), step=step, hist=hist, evals=evals, train_spatial=a.train_spatial)
            plot_losses(hist, os.path.join(a.run, "tdec_loss.png"), "temporal decoder (eq. 9)",
                        keys=["rec", "g_adv", "d_loss"], smooth=20)
            vae.save_pretrained(os.path.join(a.run, "vae_temporal"))
            json.dump(evals, open(os.path.join(a.run, "evals.json"), "w"), indent=1)
            last = time.time()
            log(f"checkpoint step {step}")
            if stop:
                log("deadline reached, stopping")
                break


if __name__ == "__main__":
    main()
