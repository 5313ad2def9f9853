#!/usr/bin/env python3
"""Held-out video evaluator: the analogue of the paper's I3D/C3D feature extractors.

A small 3D-CNN is trained on procedural clips of the *train* split (never on model output) to
predict each clip's labels (object kind, object colour, background colour, texture, size, motion).
It then scores clips of the *test* split ("real") and generated clips for the same captions:

- text alignment: accuracy of the predicted object / colour / background / motion against the labels
  the prompt was written from;
- an FVD analogue: the Frechet distance between the classifier's pooled features of real and
  generated clips (with the real-vs-real distance of two disjoint test samples of the same size as
  the floor that a perfect generator would reach);
- an IS analogue: exp(E_x KL(p(y|x) || p(y))) on the object-kind and motion heads.

Subcommands (all seeded, so every number in docs/MODEL_CARD.md reruns identically):
  evaluator.py train   [--steps 1500]                 -> RUN/evaluator/classifier.pt
  evaluator.py train-object [--steps 1500]            -> RUN/evaluator/object.pt (object kind, 2D)
  evaluator.py prompts [--n 60]                       -> prompts.jsonl (captions of held-out clips)
  evaluator.py score   --prompts P --gen NAME=DIR ... -> JSON + Markdown table
A generated clip for prompt i is read from DIR/i/frame_*.webp (or .png), `vidrd clip`'s layout;
tools/train/evaluate_model.sh drives the whole thing.
"""
import argparse
import glob
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common import RUNS, SINGLE_OBJECT_SOURCES as SOURCES, ClipData, fit_classifier, log, save_ckpt

HEADS = ["shape", "colour", "bg", "texture", "size", "motion"]
ALIGN = ["shape", "colour", "bg", "motion"]  # what a prompt must control, reported as text alignment
SHAPE_3D = "shape (3D net's head)"  # reported next to the ObjectClassifier's object kind
FRAMES, STRIDE = 8, 2  # what the U-Net generates: 8 frames, every 2nd frame of a 16-frame clip


def vocabulary(meta):
    return {h: sorted({m[h] for m in meta if m["source"] in SOURCES}) for h in HEADS}


class VideoClassifier(nn.Module):
    """Spatio-temporal CNN: full-resolution first layer (objects are 14-28 px wide), 3D convs for
    motion, mean + max pooling (the object covers 5-15% of the frame, a mean alone dilutes its
    shape and motion features with the background's), then a small embedding: its FEATURES-d
    vector is what the Frechet distance compares, small enough to estimate from ~100 clips."""

    FEATURES = 32

    def __init__(self, vocab, width=32):
        super().__init__()
        w = width

        def block(cin, cout, k, s):
            return nn.Sequential(nn.Conv3d(cin, cout, k, s, tuple(x // 2 for x in k)), nn.GroupNorm(8, cout), nn.SiLU())

        self.body = nn.Sequential(
            block(3, w, (1, 3, 3), (1, 1, 1)),          # 8 x 64 x 64
            block(w, w, (1, 3, 3), (1, 2, 2)),          # 8 x 32 x 32
            block(w, 2 * w, (3, 3, 3), (1, 2, 2)),      # 8 x 16 x 16
            block(2 * w, 4 * w, (3, 3, 3), (2, 2, 2)),  # 4 x 8 x 8
            block(4 * w, 4 * w, (3, 3, 3), (2, 2, 2)),  # 2 x 4 x 4
        )
        self.embed = nn.Sequential(nn.Linear(8 * w, self.FEATURES), nn.SiLU())
        self.heads = nn.ModuleDict({h: nn.Linear(self.FEATURES, len(v)) for h, v in vocab.items()})

    def features(self, x):  # x: (b,3,F,64,64) in [-1,1]
        h = self.body(x)
        return self.embed(torch.cat([h.mean(dim=(2, 3, 4)), h.amax(dim=(2, 3, 4))], 1))

    def forward(self, x):
        f = self.features(x)
        return f, {h: head(f) for h, head in self.heads.items()}


class ObjectClassifier(nn.Module):
    """Object kind from single frames, averaged over a clip's frames. Kind is a per-frame property,
    and the 3D net above, which shares a 32-d embedding between six heads, recognises it in only
    46% of held-out real clips (this net: 88%). This 2D net keeps full resolution for two layers (a small object is
    14 px wide) and never mixes frames, so it trains on 8x more independent samples per second."""

    def __init__(self, n_kinds, width=32):
        super().__init__()
        w = width

        def conv(cin, cout, s):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, s, 1), nn.GroupNorm(8, cout), nn.SiLU())

        self.body = nn.Sequential(conv(3, w, 1), conv(w, w, 1),            # 64 x 64
                                  conv(w, 2 * w, 2), conv(2 * w, 2 * w, 1),  # 32 x 32
                                  conv(2 * w, 4 * w, 2), conv(4 * w, 4 * w, 1),  # 16 x 16
                                  conv(4 * w, 4 * w, 2))                  # 8 x 8
        self.head = nn.Linear(8 * w, n_kinds)

    def forward(self, x):  # x: (b,3,64,64) in [-1,1] -> logits (b,n_kinds)
        h = self.body(x)
        return self.head(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], 1))

    def clip_probs(self, x):  # x: (b,3,F,64,64) -> per-clip probabilities, the mean over frames
        b, c, f, hh, ww = x.shape
        p = F.softmax(self(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, hh, ww)), 1)
        return p.reshape(b, f, -1).mean(1)


def blur(x, gen):
    """Random Gaussian blur (sigma 0..1 px) + pixel noise: decoded model output is softer than
    the renderer's anti-aliased edges, and the classifier must judge content, not sharpness."""
    b = x.shape[0]
    out = x.clone()
    sig = torch.rand(b, generator=gen)
    for i in range(b):
        if sig[i] < 0.2:
            continue
        r = torch.arange(-3, 4, dtype=torch.float32)
        k = torch.exp(-r ** 2 / (2 * sig[i] ** 2))
        k = k / k.sum()
        c, f_, h, w = x[i].shape
        v = x[i].reshape(c * f_, 1, h, w)
        v = F.conv2d(F.pad(v, (3, 3, 0, 0), mode="replicate"), k.view(1, 1, 1, 7))
        v = F.conv2d(F.pad(v, (0, 0, 3, 3), mode="replicate"), k.view(1, 1, 7, 1))
        out[i] = v.reshape(c, f_, h, w)
    return out + torch.randn(out.shape, generator=gen) * 0.03 * torch.rand(b, 1, 1, 1, 1, generator=gen)


def clip_tensor(clips):
    """uint8 (n,F,64,64,3) -> float (n,3,F,64,64) in [-1,1]."""
    return torch.from_numpy(np.ascontiguousarray(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1


def cmd_train(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = ClipData(os.path.join(a.data, "train"))
    vocab = vocabulary(data.meta)
    keep = np.array([i for i, m in enumerate(data.meta) if m["source"] in SOURCES])
    labels = {h: np.array([vocab[h].index(data.meta[i][h]) for i in keep]) for h in HEADS}
    model = VideoClassifier(vocab)
    restarts, prior_steps = 0, 0
    if a.init:
        # a warm restart (a second cosine cycle) from an earlier run: its vocabulary must match,
        # and the data order is reseeded so that the second cycle does not replay the first
        ck = torch.load(a.init, weights_only=False)
        if ck["vocab"] != vocab:
            raise SystemExit(f"{a.init}: its label vocabulary differs from this data's")
        model.load_state_dict(ck["state"])
        restarts, prior_steps = 1 + ck.get("restarts", 0), ck["steps"]
    seed = a.seed + 1000 * restarts
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    log(f"evaluator: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, {len(keep)} train clips")
    for step in range(1, a.steps + 1):
        lr = a.lr * 0.5 * (1 + np.cos(np.pi * step / a.steps))
        for g in opt.param_groups:
            g["lr"] = lr
        j = rng.integers(0, len(keep), a.batch)
        start = rng.integers(0, 16 - (FRAMES - 1) * STRIDE, a.batch)
        x = clip_tensor(np.stack([data.clip(keep[k])[s:s + (FRAMES - 1) * STRIDE + 1:STRIDE] for k, s in zip(j, start)]))
        x = blur(x, gen)
        _, logits = model(x)
        loss = sum(F.cross_entropy(logits[h], torch.from_numpy(labels[h][j])) for h in HEADS)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == a.steps:
            acc = {h: float((logits[h].argmax(1).numpy() == labels[h][j]).mean()) for h in HEADS}
            log(f"step {step} loss {loss.item():.3f} " + " ".join(f"{h}={v:.2f}" for h, v in acc.items()))
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    tmp = a.out + ".tmp"
    torch.save(dict(state=model.state_dict(), vocab=vocab, steps=prior_steps + a.steps, seed=a.seed,
                    restarts=restarts), tmp)
    os.replace(tmp, a.out)
    log(f"wrote {a.out}")


def cmd_train_object(a):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    data = ClipData(os.path.join(a.data, "train"))
    kinds = vocabulary(data.meta)["shape"]
    keep = np.array([i for i, m in enumerate(data.meta) if m["source"] in SOURCES])
    labels = np.array([kinds.index(data.meta[i]["shape"]) for i in keep])
    model = ObjectClassifier(len(kinds))
    rng = np.random.default_rng(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    log(f"object classifier: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, {len(keep)} train clips")

    def batch():
        j = rng.integers(0, len(keep), a.batch)
        fr = rng.integers(0, 16, a.batch)
        x = clip_tensor(np.stack([data.clip(keep[k])[f][None] for k, f in zip(j, fr)]))  # (b,3,1,64,64)
        return blur(x, gen)[:, :, 0], j

    fit_classifier(model, batch, labels, a.steps, a.lr, log_every=50)
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    save_ckpt(a.out, state=model.state_dict(), kinds=kinds, steps=a.steps, seed=a.seed)
    log(f"wrote {a.out}")


def cmd_prompts(a):
    """Held-out prompts: the first caption of n test clips of the well-captioned source, chosen with
    a seed and balanced over motions; each line keeps the clip's labels and its test index."""
    meta = [json.loads(l) for l in open(os.path.join(a.data, "test", "meta.jsonl"))]
    rng = np.random.default_rng(a.seed)
    pool = [m for m in meta if m["source"] == "well"]
    by_motion = {}
    for m in pool:
        by_motion.setdefault(m["motion"], []).append(m)
    chosen, motions = [], sorted(by_motion)
    for m in motions:
        rng.shuffle(by_motion[m])
    while len(chosen) < a.n:
        for m in motions:
            if by_motion[m] and len(chosen) < a.n:
                chosen.append(by_motion[m].pop())
    with open(a.out, "w") as fh:
        for i, m in enumerate(chosen):
            fh.write(json.dumps(dict(id=i, test_idx=m["idx"], prompt=m["captions"][0],
                                     **{h: m[h] for h in HEADS})) + "\n")
    log(f"wrote {a.n} prompts to {a.out}")


def read_generated(d):
    from PIL import Image
    files = sorted(glob.glob(os.path.join(d, "frame_*.webp")) + glob.glob(os.path.join(d, "frame_*.png")))
    if len(files) < FRAMES:
        raise SystemExit(f"{d}: {len(files)} frames, need {FRAMES}")
    fr = np.stack([np.asarray(Image.open(f).convert("RGB").resize((64, 64), Image.BILINEAR)) for f in files[:FRAMES]])
    return fr  # (F,64,64,3) uint8


@torch.no_grad()
def run_classifier(model, clips, batch=32, objects=None):
    """Features and per-head probabilities; with `objects` (an ObjectClassifier) the object-kind
    probabilities are its frame-averaged ones, and the 3D net's own shape head is kept under
    SHAPE_3D for comparison."""
    feats, probs = [], {h: [] for h in HEADS + ([SHAPE_3D] if objects is not None else [])}
    for i in range(0, len(clips), batch):
        x = clip_tensor(clips[i:i + batch])
        f, logits = model(x)
        feats.append(f)
        for h in HEADS:
            probs[h].append(F.softmax(logits[h], 1))
        if objects is not None:
            probs[SHAPE_3D].append(probs["shape"][-1])
            probs["shape"][-1] = objects.clip_probs(x)
    return torch.cat(feats).double().numpy(), {h: torch.cat(v).double().numpy() for h, v in probs.items()}


def frechet(f1, f2):
    from scipy import linalg
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def inception_score(p):
    py = p.mean(0, keepdims=True)
    kl = (p * (np.log(p + 1e-12) - np.log(py + 1e-12))).sum(1)
    return float(np.exp(kl.mean()))


@torch.no_grad()
def reconstruct(vae_dir, clips):
    """uint8 (n,F,64,64,3) -> the same through the model's VAE (posterior mean, temporal decode),
    rounded to uint8 as a generated clip's frames are."""
    from temporal_vae import TemporalAutoencoderKL
    vae = TemporalAutoencoderKL.from_pretrained(vae_dir, torch_dtype=torch.float32).eval()
    out = []
    for c in clips:
        x = clip_tensor(c[None])[0].permute(1, 0, 2, 3)  # (F,3,64,64)
        y = vae.decode(vae.encode(x).latent_dist.mode(), num_frames=x.shape[0]).sample.clamp(-1, 1)
        out.append(((y.permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy())
    return np.stack(out)


def score_set(model, vocab, clips, prompts, objects=None):
    feats, probs = run_classifier(model, clips, objects=objects)
    acc = {h: float(np.mean([vocab[h][k] == p[h] for k, p in zip(probs[h].argmax(1), prompts)])) for h in ALIGN}
    acc["all four"] = float(np.mean([all(vocab[h][probs[h][i].argmax()] == p[h] for h in ALIGN)
                                     for i, p in enumerate(prompts)]))
    return feats, probs, acc


def cmd_score(a):
    torch.set_num_threads(a.threads)
    ck = torch.load(a.classifier, weights_only=False)
    vocab = ck["vocab"]
    model = VideoClassifier(vocab)
    model.load_state_dict(ck["state"])
    model.eval()
    objects = None
    if a.object_classifier:
        ok = torch.load(a.object_classifier, weights_only=False)
        if ok["kinds"] != vocab["shape"]:
            raise SystemExit(f"{a.object_classifier}: its object kinds differ from {a.classifier}'s")
        objects = ObjectClassifier(len(ok["kinds"]))
        objects.load_state_dict(ok["state"])
        objects.eval()
    prompts = [json.loads(l) for l in open(a.prompts)]
    test = ClipData(os.path.join(a.data, "test"))
    real = np.stack([test.clip(p["test_idx"])[0:(FRAMES - 1) * STRIDE + 1:STRIDE] for p in prompts])
    # the FD floor: another sample of held-out well-captioned clips, disjoint from the prompts' clips
    used = {p["test_idx"] for p in prompts}
    rng = np.random.default_rng(a.seed)
    others = [m["idx"] for m in test.meta if m["source"] == "well" and m["idx"] not in used]
    other_idx = rng.choice(others, len(prompts), replace=False)
    real2 = np.stack([test.clip(i)[0:(FRAMES - 1) * STRIDE + 1:STRIDE] for i in other_idx])
    # the classifier's own accuracy on the whole held-out test split (single-object sources)
    keep = [m for m in test.meta if m["source"] in SOURCES]
    all_real = np.stack([test.clip(m["idx"])[0:(FRAMES - 1) * STRIDE + 1:STRIDE] for m in keep])
    _, probs_all = run_classifier(model, all_real, objects=objects)

    def accuracy(head, p):
        label = "shape" if head == SHAPE_3D else head
        return float(np.mean([vocab[label][k] == m[label] for k, m in zip(p.argmax(1), keep)]))

    test_acc = {h: accuracy(h, p) for h, p in probs_all.items()}

    f_real, p_real, acc_real = score_set(model, vocab, real, prompts, objects)
    f_real2, _, _ = score_set(model, vocab, real2, prompts, objects)
    rows = [dict(name="real procedural clips (held-out test split)", acc=acc_real,
                 fd=frechet(f_real2, f_real), is_shape=inception_score(p_real["shape"]),
                 is_motion=inception_score(p_real["motion"]))]
    sets = []  # (row name, clips loader)
    if a.vae:  # the ceiling the autoencoder sets: the prompts' real clips, encoded and decoded
        sets.append(("the same real clips through the VAE (encode + temporal decode)", lambda: reconstruct(a.vae, real)))
    for spec in a.gen:
        name, d = spec.split("=", 1)
        sets.append((name, lambda d=d: np.stack([read_generated(os.path.join(d, str(p["id"]))) for p in prompts])))
    for name, load in sets:
        clips = load()
        f, p, acc = score_set(model, vocab, clips, prompts, objects)
        rows.append(dict(name=name, acc=acc, fd=frechet(f_real, f), is_shape=inception_score(p["shape"]),
                         is_motion=inception_score(p["motion"])))
    result = dict(n_prompts=len(prompts), classifier_test_accuracy=test_acc, chance={h: 1 / len(vocab[h]) for h in ALIGN},
                  rows=rows)
    with open(a.out, "w") as fh:
        json.dump(result, fh, indent=1)
    lines = [f"| clips ({len(prompts)} held-out prompts) | object | colour | background | motion | all four | FD to real (lower is better) | IS object | IS motion |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = r["acc"]
        lines.append(f"| {r['name']} | {acc['shape']:.0%} | {acc['colour']:.0%} | {acc['bg']:.0%} | {acc['motion']:.0%} | "
                     f"{acc['all four']:.0%} | {r['fd']:.1f} | {r['is_shape']:.2f} | {r['is_motion']:.2f} |")
    lines.append(f"| chance | {1 / len(vocab['shape']):.0%} | {1 / len(vocab['colour']):.0%} | {1 / len(vocab['bg']):.0%} | "
                 f"{1 / len(vocab['motion']):.0%} | | | | |")
    table = "\n".join(lines)
    print(table)
    print("classifier accuracy on the whole held-out test split (single-object clips): "
          + ", ".join(f"{h} {v:.1%}" for h, v in test_acc.items()))
    print("FD of the real row = real vs another disjoint real sample of the same size (the floor).")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(RUNS, "data"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=11)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--steps", type=int, default=1600)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--out", default=os.path.join(RUNS, "evaluator", "classifier.pt"))
    t.add_argument("--init", default=None, help="continue from this classifier (warm restart: a new cosine cycle)")
    o = sub.add_parser("train-object")
    o.add_argument("--steps", type=int, default=1500)
    o.add_argument("--batch", type=int, default=64)
    o.add_argument("--lr", type=float, default=2e-3)
    o.add_argument("--out", default=os.path.join(RUNS, "evaluator", "object.pt"))
    p = sub.add_parser("prompts")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--out", required=True)
    s = sub.add_parser("score")
    s.add_argument("--classifier", default=os.path.join(RUNS, "evaluator", "classifier.pt"))
    s.add_argument("--object-classifier", default=None, help="object kind from this ObjectClassifier (train-object)")
    s.add_argument("--prompts", required=True)
    s.add_argument("--gen", action="append", default=[], help="NAME=DIR, repeatable")
    s.add_argument("--vae", default=None, help="also score the real clips reconstructed by this VAE folder (the VAE's ceiling)")
    s.add_argument("--out", required=True)
    a = ap.parse_args()
    {"train": cmd_train, "train-object": cmd_train_object, "prompts": cmd_prompts, "score": cmd_score}[a.cmd](a)


if __name__ == "__main__":
    main()
