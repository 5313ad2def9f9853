#!/usr/bin/env python3
"""Stage 3: train the small UNet3DConditionModel (Temp-Conv + Temp-Attn) jointly with a small
CLIPTextModel from scratch, on VAE latents (frozen stage-1 encoder; encoded lazily on first use and cached in RUN).

- 8 latent frames sampled every 2 frames from a random start of each 16-frame clip (paper: 8
  keyframes every 4 frames); one of the clip's captions picked at random each time.
- scaled_linear betas (0.00085..0.012, 1000 steps), epsilon prediction, min-SNR-5 loss weighting.
- 10% of captions replaced by "" (the pipeline's unconditional prompt) for classifier-free guidance.
- AdamW, warmup, EMA of U-Net + text-encoder weights (used for export), bf16 autocast.
- Checkpoint every --ckpt-every seconds to RUN/unet_ckpt.pt; --resume continues; loss PNG.
- Optional --kind-loss: an auxiliary cross-entropy on the U-Net's clean-latent estimate, scored
  by the frozen latent kind probe (kind_probe.py) against the caption's object kind (phase E).

  nohup nice -n 19 python tools/train/train_unet.py --resume > /work/train-runs/unet.log 2>&1 &
"""
import argparse
import copy
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet3DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from kind_probe import KINDS, SOURCES, load_probe
from common import RUNS, ClipData, until_epoch, TEXT_CONFIG, UNET_CONFIG, log, median_distance_weights, plot_losses, save_ckpt

SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
             prediction_type="epsilon", clip_sample=False)


class LatentData:
    """Clips (data.py shards) -> VAE latents, encoded lazily with the frozen stage-1 encoder the
    first time a clip is drawn and cached (all 16 frames, posterior mean x scaling_factor, fp16);
    the cache is saved with each checkpoint. Captions are tokenized once (cached in RUN)."""

    def __init__(self, data_dir, vae_dir, tok, cache_dir):
        from diffusers import AutoencoderKL
        self.clips = ClipData(os.path.join(data_dir, "train"))
        self.n = len(self.clips)
        self.vae = AutoencoderKL.from_pretrained(vae_dir).eval().requires_grad_(False)
        self.sf = self.vae.config.scaling_factor
        self.cache_dir = cache_dir
        zp, hp = os.path.join(cache_dir, "latent_cache.npy"), os.path.join(cache_dir, "latent_have.npy")
        if os.path.exists(zp) and os.path.exists(hp):
            self.z, self.have = np.load(zp), np.load(hp)
        else:
            self.z = np.zeros((self.n, 16, 4, 8, 8), np.float16)
            self.have = np.zeros(self.n, bool)
        ip = os.path.join(cache_dir, "caption_ids.npz")
        if os.path.exists(ip):
            f = np.load(ip)
            self.ids, self.ncap = f["ids"], f["ncap"]
        else:
            self.ids = np.full((self.n, 3, 77), tok.eos_token_id, np.int64)
            self.ncap = np.zeros(self.n, np.int64)
            for i, m in enumerate(self.clips.meta):
                caps = m["captions"][:3]
                self.ids[i, :len(caps)] = tok(caps, padding="max_length", max_length=77, truncation=True).input_ids
                self.ncap[i] = len(caps)
            np.savez(ip, ids=self.ids, ncap=self.ncap)
        self.kind = np.array([KINDS.index(m["shape"]) if m["source"] in SOURCES else -1 for m in self.clips.meta])

    @torch.no_grad()
    def ensure(self, idx):
        todo = [i for i in dict.fromkeys(idx.tolist()) if not self.have[i]]
        if not todo:
            return
        x = np.stack([self.clips.clip(i) for i in todo])  # (k,16,64,64,3)
        x = torch.from_numpy(x).reshape(-1, 64, 64, 3).permute(0, 3, 1, 2).float() / 127.5 - 1
        z = self.vae.encode(x).latent_dist.mean * self.sf
        self.z[todo] = z.reshape(len(todo), 16, 4, 8, 8).numpy().astype(np.float16)
        self.have[todo] = True

    def save(self):
        for name, arr in (("latent_cache.npy", self.z), ("latent_have.npy", self.have)):
            tmp = os.path.join(self.cache_dir, name + ".tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, os.path.join(self.cache_dir, name))

    def batch(self, rng, b, frames, stride, empty_ids, drop):
        idx = rng.integers(0, self.n, b)
        self.ensure(idx)
        span = (frames - 1) * stride + 1
        st = rng.integers(0, 16 - span + 1, b)
        z = np.stack([self.z[i, s:s + span:stride] for i, s in zip(idx, st)]).astype(np.float32)
        z = torch.from_numpy(z).permute(0, 2, 1, 3, 4)  # (b,4,F,8,8)
        ids = np.stack([self.ids[i, rng.integers(self.ncap[i])] for i in idx])
        dropm = rng.random(b) < drop
        ids[dropm] = empty_ids
        # the object's kind as the caption states it; -1 where the caption was dropped or the clip
        # has several objects (image stills), i.e. where no kind is asked for
        kind = np.array([-1 if d else self.kind[i] for i, d in zip(idx, dropm)])
        return z, torch.from_numpy(ids).long(), torch.from_numpy(kind).long()


def kind_summary(h):
    """'kind ce X acc Y ' over the log window's steps that had a kind loss, else ''."""
    ce = [x["kind_ce"] for x in h if not np.isnan(x.get("kind_ce", np.nan))]
    acc = [x["kind_acc"] for x in h if not np.isnan(x.get("kind_acc", np.nan))]
    return f"kind ce {np.mean(ce):.3f} acc {np.mean(acc):.2f} " if ce else ""


def build_models():
    unet = UNet3DConditionModel(**UNET_CONFIG)
    te = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    return unet, te


@torch.no_grad()
def ema_update(ema, model, decay):
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach(), 1 - decay)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(RUNS, "data"))
    ap.add_argument("--vae", default=os.path.join(RUNS, "vae", "vae"), help="stage-1 VAE (encoder frozen)")
    ap.add_argument("--tokenizer", default=os.path.join(RUNS, "tokenizer"))
    ap.add_argument("--run", default=os.path.join(RUNS, "unet"))
    ap.add_argument("--steps", type=int, default=4000, help="schedule length (cosine decay over this)")
    ap.add_argument("--stop-step", type=int, default=None, help="stop (with a checkpoint) at this step")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--stride", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--drop", type=float, default=0.1)
    ap.add_argument("--ema", type=float, default=0.999)
    ap.add_argument("--snr-gamma", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bf16", type=int, default=0, help="bf16 autocast: measured ~2.7x SLOWER here")
    ap.add_argument("--ckpt-every", type=float, default=240.0)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--until", default=None, help="wall-clock deadline HH:MM (UTC): checkpoint and stop there")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--init-text", default=None, help="fresh run only: text-encoder weights from pretrain_text.py")
    ap.add_argument("--init-unet", default=None,
                    help="fresh run only: start the U-Net from the EMA weights of an earlier unet_ckpt.pt "
                         "(its denoising prior is kept; cross-attention re-adapts to the new text encoder)")
    ap.add_argument("--init-unet-weights", default="ema_unet", choices=["ema_unet", "unet"],
                    help="which weights of --init-unet to start from")
    ap.add_argument("--init-folder", default=None,
                    help="fresh run only: start the U-Net and the text encoder from an exported model folder "
                         "(e.g. Models/vidrd-tiny), to fine-tune the shipped weights")
    ap.add_argument("--offset-noise", type=float, default=0.0,
                    help="add this much per-(clip, channel) constant noise (Guttenberg's offset noise). With "
                         "scaled_linear betas the terminal SNR is not zero, and an 8x8x8 latent's noise has a "
                         "random per-channel mean (std 0.044, i.e. 0.65 after dividing by sqrt(alpha_bar_T)); "
                         "without the offset the model learns to read the clip's global colour from that mean "
                         "instead of from the prompt")
    ap.add_argument("--freeze-text", action="store_true",
                    help="keep the text encoder fixed (the paper freezes its pre-trained CLIP text encoder)")
    ap.add_argument("--t-high", type=float, default=0.0,
                    help="fraction of samples whose timestep is drawn from the noisier half [500, 1000): "
                         "layout and colours are decided there, which is what the prompt controls")
    ap.add_argument("--object-weight", type=float, default=0.0,
                    help="experimental: weight each latent pixel's eps error by 1 + this x its distance from the "
                         "frame's median latent (saturating at twice the mean distance), normalised to mean 1. The "
                         "object's kind lives in 2-4 of a frame's 64 latent pixels, so unweighted it barely moves "
                         "the loss (phase D's U-Net learned colour, background and motion, not kind)")
    ap.add_argument("--kind-loss", type=float, default=0.0,
                    help="weight of an auxiliary cross-entropy: the U-Net's clean-latent estimate x0 = (z_t - "
                         "sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar), scored per frame by the frozen latent kind probe "
                         "(kind_probe.py) against the kind the caption asks for. The eps loss alone never made the prompt "
                         "control the object's kind (phases B-D); this term says so directly")
    ap.add_argument("--kind-probe", default=os.path.join(RUNS, "kind_probe.pt"))
    ap.add_argument("--kind-t-max", type=int, default=800,
                    help="the kind loss applies to timesteps below this: at the noisiest steps x0 is a blur that no "
                         "shape can be read from")
    ap.add_argument("--bench", type=int, default=0, help="time N steps and exit")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.run, exist_ok=True)
    tok = CLIPTokenizer.from_pretrained(a.tokenizer)
    data = LatentData(a.data, a.vae, tok, a.run)
    empty_ids = np.array(tok([""], padding="max_length", max_length=77).input_ids[0], np.int64)
    unet, te = build_models()
    ckpt_path = os.path.join(a.run, "unet_ckpt.pt")
    fresh = not (a.resume and os.path.exists(ckpt_path))  # the --init-* options apply to a fresh run only
    if a.init_text and fresh:
        te.load_state_dict(torch.load(a.init_text, weights_only=False)["te"])
        log(f"text encoder initialised from {a.init_text}")
    if a.init_unet and fresh:
        unet.load_state_dict(torch.load(a.init_unet, weights_only=False)[a.init_unet_weights])
        log(f"U-Net initialised from {a.init_unet_weights} in {a.init_unet}")
    if a.init_folder and fresh:
        unet.load_state_dict(UNet3DConditionModel.from_pretrained(
            os.path.join(a.init_folder, "unet"), torch_dtype=torch.float32).state_dict())
        te.load_state_dict(CLIPTextModel.from_pretrained(
            os.path.join(a.init_folder, "text_encoder"), torch_dtype=torch.float32).state_dict())
        log(f"U-Net and text encoder initialised from {a.init_folder}")
    if a.freeze_text:
        te.requires_grad_(False)
    ema_unet, ema_te = copy.deepcopy(unet).requires_grad_(False), copy.deepcopy(te).requires_grad_(False)
    params = list(unet.parameters()) + ([] if a.freeze_text else list(te.parameters()))
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.01, betas=(0.9, 0.99))
    sched = DDPMScheduler(**SCHED)
    acp = sched.alphas_cumprod
    snr = acp / (1 - acp)
    step, hist = 0, []
    if not fresh:
        st = torch.load(ckpt_path, weights_only=False)
        unet.load_state_dict(st["unet"]); te.load_state_dict(st["te"])
        ema_unet.load_state_dict(st["ema_unet"]); ema_te.load_state_dict(st["ema_te"])
        opt.load_state_dict(st["opt"]); step, hist = st["step"], st["hist"]
        log(f"resumed at step {step}")
    probe = load_probe(a.kind_probe)[0] if a.kind_loss > 0 else None
    rng = np.random.default_rng(a.seed * 100003 + step)
    gen = torch.Generator().manual_seed(a.seed * 7919 + step)
    log(f"unet {sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M, text {sum(p.numel() for p in te.parameters()) / 1e6:.2f} M, "
        f"{data.n} clips, batch {a.batch}x{a.frames} frames stride {a.stride}")
    unet.train(); te.train(not a.freeze_text)
    last, t_start = time.time(), time.time()
    deadline = until_epoch(a.until)
    if a.stop_step is not None and step >= a.stop_step:
        log(f"already at step {step} >= --stop-step {a.stop_step}: nothing to do")
        return
    while step < a.steps:
        lr = a.lr * min(1.0, (step + 1) / a.warmup) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(step, a.steps) / a.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        z0, ids, kind = data.batch(rng, a.batch, a.frames, a.stride, empty_ids, a.drop)
        noise = torch.randn(z0.shape, generator=gen)
        if a.offset_noise > 0:
            noise = noise + a.offset_noise * torch.randn(z0.shape[0], z0.shape[1], 1, 1, 1, generator=gen)
        t = torch.randint(0, 1000, (a.batch,), generator=gen)
        if a.t_high > 0:
            high = torch.rand(a.batch, generator=gen) < a.t_high
            t = torch.where(high, torch.randint(500, 1000, (a.batch,), generator=gen), t)
        zt = sched.add_noise(z0, noise, t)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(a.bf16)):
            with torch.set_grad_enabled(not a.freeze_text):
                enc = te(ids)[0]
            pred = unet(zt, t, encoder_hidden_states=enc).sample
        err = F.mse_loss(pred.float(), noise, reduction="none")
        if a.object_weight > 0:
            err = err * median_distance_weights(z0, a.object_weight)
        per = err.mean(dim=(1, 2, 3, 4))
        w = torch.clamp(snr[t], max=a.snr_gamma) / snr[t]
        loss = (per * w).mean()
        kce, kacc = float("nan"), float("nan")
        use = (kind >= 0) & (t < a.kind_t_max)
        if probe is not None and use.any():
            ab = acp[t][use].view(-1, 1, 1, 1, 1)
            x0 = (zt[use] - (1 - ab).sqrt() * pred[use].float()) / ab.sqrt()
            k, _, f = x0.shape[:3]
            logits = probe(x0.permute(0, 2, 1, 3, 4).reshape(k * f, 4, 8, 8))
            target = kind[use].repeat_interleave(f)
            ce = F.cross_entropy(logits, target)
            loss = loss + a.kind_loss * ce * (k / a.batch)
            kce, kacc = ce.item(), float((logits.argmax(1) == target).float().mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        d = min(a.ema, (1 + step) / (10 + step))
        ema_update(ema_unet, unet, d); ema_update(ema_te, te, d)
        hist.append(dict(step=step, loss=per.mean().item(), wloss=loss.item(), gnorm=float(gn), kind_ce=kce, kind_acc=kacc))
        if a.bench and step >= a.bench:
            log(f"bench: {(time.time() - t_start) / a.bench:.3f} s/step")
            return
        if step % 20 == 0:
            h = hist[-20:]
            log(f"step {step} loss {np.mean([x['loss'] for x in h]):.4f} wloss {np.mean([x['wloss'] for x in h]):.4f} "
                f"gn {np.mean([x['gnorm'] for x in h]):.2f} {kind_summary(h)}lr {lr:.2e} "
                f"{(time.time() - t_start) / max(1, len(h)):.2f}s/it")
            t_start = time.time()
        stop = (deadline is not None and time.time() > deadline) or (a.stop_step is not None and step >= a.stop_step)
        if time.time() - last > a.ckpt_every or step == a.steps or stop:
            data.save()
            save_ckpt(ckpt_path, unet=unet.state_dict(), te=te.state_dict(), ema_unet=ema_unet.state_dict(),
                      ema_te=ema_te.state_dict(), opt=opt.state_dict(), step=step, hist=hist,
                      unet_config=UNET_CONFIG, text_config=TEXT_CONFIG, sched=SCHED)
            plot_losses(hist, os.path.join(a.run, "unet_loss.png"), "UNet3D + CLIP text (eps MSE)",
                        keys=["loss", "wloss", "gnorm"] + (["kind_ce", "kind_acc"] if probe is not None else []), smooth=100)
            last = time.time()
            log(f"checkpoint step {step}, {int(data.have.sum())}/{data.n} clips encoded")
            if stop:
                log("deadline reached, stopping")
                break


if __name__ == "__main__":
    main()
