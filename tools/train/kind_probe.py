#!/usr/bin/env python3
"""Object kind read straight off VAE latents (8x8x4 per frame), without decoding.

Three uses:
  - a diagnostic: how much of the object's kind the autoencoder's latents carry, and so how much a
    perfect U-Net could produce (compare with the pixel-space ObjectClassifier on decoded clips);
  - the frozen critic of `train_unet.py --kind-loss`: the U-Net's predicted clean latent x0 is
    scored by this probe against the prompt's kind, so the denoiser is told when it draws a blob
    for "a square". The evaluator (evaluator.py) is a different network on decoded pixels,
    trained separately, so the kind it reports is not the quantity this probe was optimised for;
  - `text-control`: does a model's U-Net take the kind from the prompt? Held-out clips are noised
    to timestep t and denoised in one step, once with their own caption and once with the kind word
    swapped for another kind; the probe reads the kind of both x0 estimates. A U-Net that listens
    to the prompt's kind moves the swapped estimate towards the asked-for kind.

  python tools/train/encode_latents.py --vae RUNS/vae2/vae --out RUNS/latents2     # train + test
  python tools/train/kind_probe.py train --latents RUNS/latents2/train.npy \
      --test-latents RUNS/latents2/test.npy --out RUNS/kind_probe.pt
  python tools/train/kind_probe.py text-control --model Models/vidrd-tiny --test-latents RUNS/latents2/test.npy
"""
import argparse
import json
import os
import re

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import RUNS, SINGLE_OBJECT_SOURCES as SOURCES, fit_classifier, log, save_ckpt
from data import SHAPE_SYN, SHAPES as KINDS


class LatentKindProbe(nn.Module):
    """Per-frame kind logits from a (b,4,8,8) latent. Keeps the 8x8 grid for three layers (the
    object is 2-4 latent pixels wide), then mean- and max-pools so position does not matter."""

    def __init__(self, width=64, n_kinds=len(KINDS)):
        super().__init__()
        w = width

        def conv(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, 1, 1), nn.GroupNorm(8, cout), nn.SiLU())

        self.body = nn.Sequential(conv(4, w), conv(w, w), conv(w, 2 * w), conv(2 * w, 2 * w))
        self.head = nn.Linear(4 * w, n_kinds)

    def forward(self, z):
        h = self.body(z)
        return self.head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1))


def load_probe(path):
    st = torch.load(path, weights_only=False)
    probe = LatentKindProbe(st["width"])
    probe.load_state_dict(st["state"])
    return probe.eval().requires_grad_(False), st["kinds"]


def labelled(meta_path, n):
    """Indices of single-object clips and their kind index."""
    meta = [json.loads(l) for l in open(meta_path)][:n]
    keep = [i for i, m in enumerate(meta) if m["source"] in SOURCES]
    return np.array(keep), np.array([KINDS.index(meta[i]["shape"]) for i in keep])


@torch.no_grad()
def accuracy(probe, z, labels, batch=512):
    """Per-clip accuracy (mean of the frames' probabilities, as the pixel evaluator) of z (n,16,4,8,8)."""
    correct = 0
    for s in range(0, len(z), batch):
        zz = torch.from_numpy(z[s:s + batch].astype(np.float32))
        b, f = zz.shape[:2]
        p = F.softmax(probe(zz.reshape(b * f, 4, 8, 8)), 1).reshape(b, f, -1).mean(1)
        correct += int((p.argmax(1).numpy() == labels[s:s + batch]).sum())
    return correct / len(z)


def cmd_train(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    z_all = np.load(a.latents, mmap_mode="r")
    have = np.load(a.have) if a.have else np.ones(len(z_all), bool)
    keep, labels = labelled(os.path.join(a.data, "train", "meta.jsonl"), len(have))
    sel = have[keep]
    keep, labels = keep[sel], labels[sel]
    z = np.asarray(z_all[keep]).astype(np.float32)  # (n,16,4,8,8)
    tkeep, tlabels = labelled(os.path.join(a.data, "test", "meta.jsonl"), 10 ** 9)
    zt = np.load(a.test_latents)[tkeep]
    log(f"{len(keep)} train clips with latents, {len(tkeep)} test clips")
    probe = LatentKindProbe(a.width)
    rng = np.random.default_rng(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    def batch():
        j = rng.integers(0, len(z), a.batch)
        fr = rng.integers(0, 16, a.batch)
        x = torch.from_numpy(z[j, fr])
        # The critic scores the U-Net's x0 estimates, which are softer than encoded frames: train it
        # on latents with random Gaussian noise (std 0..noise) so it judges shape, not sharpness.
        return x + a.noise * torch.rand(a.batch, 1, 1, 1, generator=gen) * torch.randn(x.shape, generator=gen), j

    fit_classifier(probe, batch, labels, a.steps, a.lr, log_every=200)
    probe.eval()
    acc_test = accuracy(probe, zt, tlabels)
    acc_train = accuracy(probe, z[:1000], labels[:1000])
    log(f"held-out real latents: clip accuracy {acc_test:.3f} (train subset {acc_train:.3f}, chance {1 / len(KINDS):.3f})")
    save_ckpt(a.out, state=probe.state_dict(), kinds=KINDS, width=a.width, steps=a.steps, seed=a.seed,
              noise=a.noise, test_accuracy=acc_test)
    log(f"wrote {a.out}")


@torch.no_grad()
def cmd_text_control(a):
    from diffusers import DDPMScheduler, UNet3DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer
    torch.set_num_threads(a.threads)
    unet = UNet3DConditionModel.from_pretrained(os.path.join(a.model, "unet"), torch_dtype=torch.float32).eval()
    te = CLIPTextModel.from_pretrained(os.path.join(a.model, "text_encoder"), torch_dtype=torch.float32).eval()
    tok = CLIPTokenizer.from_pretrained(os.path.join(a.model, "tokenizer"))
    probe, kinds = load_probe(a.probe)
    meta = [json.loads(l) for l in open(os.path.join(a.data, "test", "meta.jsonl"))]
    rng = np.random.default_rng(a.seed)
    keep, caps, swapped, asked, own = [], [], [], [], []
    for i, m in enumerate(meta):
        if m["source"] not in SOURCES or len(keep) == a.n:
            continue
        cap = m["captions"][0]
        word = next((w for w in sorted(SHAPE_SYN[m["shape"]], key=len, reverse=True)
                     if re.search(r"\b" + w + r"\b", cap)), None)
        if word is None:  # a caption that does not name the kind cannot have it swapped
            continue
        other = kinds[(kinds.index(m["shape"]) + 1 + int(rng.integers(len(kinds) - 1))) % len(kinds)]
        keep.append(i); caps.append(cap); own.append(kinds.index(m["shape"])); asked.append(kinds.index(other))
        swapped.append(re.sub(r"\b" + word + r"\b", other, cap, count=1))
    own, asked = np.array(own), np.array(asked)
    z0 = torch.from_numpy(np.load(a.test_latents)[keep][:, 0:16:2].astype(np.float32)).permute(0, 2, 1, 3, 4)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
    noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(a.seed))

    def encode(texts):
        ids = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        return te(ids)[0]

    def kind_of(x0):  # (k,4,F,8,8) -> per-clip kind, the mean of the frames' probabilities
        k, _, f = x0.shape[:3]
        return F.softmax(probe(x0.permute(0, 2, 1, 3, 4).reshape(k * f, 4, 8, 8)), 1).reshape(k, f, -1).mean(1).argmax(1).numpy()

    emb = {"own": encode(caps), "swapped": encode(swapped)}
    print(f"{len(keep)} held-out clips; probe on their clean latents: own kind {np.mean(kind_of(z0) == own):.0%}")
    print("| t | own caption: own kind | swapped caption: own kind | swapped caption: asked kind |")
    print("|---|---|---|---|")
    for t in a.timesteps:
        tt = torch.full((len(keep),), t)
        zt = sched.add_noise(z0, noise, tt)
        ab = sched.alphas_cumprod[t]
        got = {}
        for name, e in emb.items():
            eps = torch.cat([unet(zt[s:s + 40], tt[s:s + 40], encoder_hidden_states=e[s:s + 40]).sample
                             for s in range(0, len(keep), 40)])
            got[name] = kind_of((zt - (1 - ab).sqrt() * eps) / ab.sqrt())
        print(f"| {t} | {np.mean(got['own'] == own):.0%} | {np.mean(got['swapped'] == own):.0%} | "
              f"{np.mean(got['swapped'] == asked):.0%} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default=os.path.join(RUNS, "data"))
    t.add_argument("--latents", required=True,
                   help="train split latents (N,16,4,8,8, scaled): encode_latents.py's train.npy, or train_unet.py's "
                        "RUN/latent_cache.npy with --have")
    t.add_argument("--have", default=None, help="RUN/latent_have.npy: which clips of a lazily filled cache are encoded")
    t.add_argument("--test-latents", required=True, help="encode_latents.py's test.npy for the same VAE")
    t.add_argument("--out", default=os.path.join(RUNS, "kind_probe.pt"))
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--width", type=int, default=64)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--noise", type=float, default=0.3)
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=5)
    c = sub.add_parser("text-control")
    c.add_argument("--model", required=True, help="a diffusers model folder (its unet, text_encoder, tokenizer)")
    c.add_argument("--test-latents", required=True, help="encode_latents.py's test.npy for the model's VAE")
    c.add_argument("--probe", default=os.path.join(RUNS, "kind_probe.pt"))
    c.add_argument("--data", default=os.path.join(RUNS, "data"))
    c.add_argument("--n", type=int, default=160)
    c.add_argument("--timesteps", type=int, nargs="+", default=[100, 300, 500, 700, 900])
    c.add_argument("--threads", type=int, default=2)
    c.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    {"train": cmd_train, "text-control": cmd_text_control}[a.cmd](a)


if __name__ == "__main__":
    main()
