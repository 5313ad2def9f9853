"""Shared helpers for tools/train: data access, checkpoints, loss curves, model configs."""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(REPO, "tools", "reference"))

RUNS = os.environ.get("VIDRD_RUNS", "/work/train-runs")

# data.py sources whose clips hold a single object, so their labels describe the whole frame
SINGLE_OBJECT_SOURCES = ("well", "short", "long")

# ------------------------------------------------------------------ model configs (the shipped sizes)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[16, 32, 64, 64], layers_per_block=1, latent_channels=4,
    norm_num_groups=4, sample_size=64, act_fn="silu",
)  # 64x64 px -> 8x8x4 latents (f = 8, as Stable Diffusion). norm_num_groups=4: the 16-channel
#   layers keep 4 channels per group; 1 channel per group (= instance norm) erases flat colours.

TEXT_CONFIG = dict(
    vocab_size=49408, hidden_size=128, intermediate_size=512, num_hidden_layers=3,
    num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
    projection_dim=128, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
)

UNET_CONFIG = dict(
    sample_size=8, in_channels=4, out_channels=4,
    down_block_types=["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"],
    up_block_types=["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"],
    block_out_channels=[32, 64, 128], layers_per_block=1, cross_attention_dim=128,
    attention_head_dim=4, norm_num_groups=8,  # attention_head_dim is the number of heads (diffusers legacy naming); 16 groups = 4 ch/group at 64 ch
)


def until_epoch(hhmm):
    """'HH:MM' (UTC, today; tomorrow if already past) -> epoch seconds; None -> None."""
    if not hhmm:
        return None
    import datetime as dt
    now = dt.datetime.now(dt.timezone.utc)
    h, m = map(int, hhmm.split(":"))
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    if t < now - dt.timedelta(hours=12):
        t += dt.timedelta(days=1)
    return t.timestamp()


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


class ClipData:
    """Memory-mapped clip shards + captions written by data.py."""

    def __init__(self, split_dir):
        self.dir = split_dir
        files = sorted(f for f in os.listdir(split_dir) if f.startswith("clips_") and f.endswith(".npy"))
        self.shards = [np.load(os.path.join(split_dir, f), mmap_mode="r") for f in files]
        self.offsets = np.cumsum([0] + [len(s) for s in self.shards])
        self.meta = [json.loads(l) for l in open(os.path.join(split_dir, "meta.jsonl"))]
        self.n = int(self.offsets[-1])
        assert len(self.meta) == self.n, (len(self.meta), self.n)

    def __len__(self):
        return self.n

    def clip(self, i):
        s = int(np.searchsorted(self.offsets, i, side="right") - 1)
        return self.shards[s][i - self.offsets[s]]

    def frames(self, rng, n):
        """n random single frames as float tensor (n,3,64,64) in [-1,1]."""
        idx = rng.integers(0, self.n, n)
        fr = rng.integers(0, 16, n)
        x = np.stack([self.clip(i)[f] for i, f in zip(idx, fr)])
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1

    def clips(self, rng, n, frames=8, stride=2):
        """n random clips of `frames` frames every `stride` frames from a random start:
        tensor (n,3,F,64,64) in [-1,1], plus the clip indices."""
        idx = rng.integers(0, self.n, n)
        span = (frames - 1) * stride + 1
        st = rng.integers(0, 16 - span + 1, n)
        x = np.stack([self.clip(i)[s:s + span:stride] for i, s in zip(idx, st)])
        return torch.from_numpy(x).permute(0, 4, 1, 2, 3).float() / 127.5 - 1, idx


def median_distance_weights(x, object_weight, saturation=None):
    """Per-pixel loss weights that favour the object over the background: x (b, c, ..., h, w) ->
    (b, 1, ..., h, w), 1 + object_weight x each pixel's distance (summed over channels) from its
    frame's median, saturating at `saturation` (None: twice the frame's mean distance), then
    normalised to mean 1 per frame so that the loss scale (and so the learning rate) means the same.
    The object covers 5-15% of a frame: unweighted, its outline barely moves a reconstruction or
    denoising loss."""
    med = x.flatten(-2).median(dim=-1).values[..., None, None]
    d = (x - med).abs().sum(1, keepdim=True)
    if saturation is None:
        saturation = 2 * d.mean(dim=(-2, -1), keepdim=True) + 1e-6
    w = 1 + object_weight * (d / saturation).clamp(max=1)
    return w / w.mean(dim=(-2, -1), keepdim=True)


def fit_classifier(model, batch, labels, steps, lr, log_every):
    """The loop both frame classifiers (evaluator.py train-object, kind_probe.py train) train with:
    AdamW (weight decay 0.01), 50 warm-up steps, cosine decay to 0, cross-entropy. `batch()` ->
    (inputs, indices into `labels`) draws one batch; it owns its random streams."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, step / 50) * 0.5 * (1 + np.cos(np.pi * step / steps))
        x, j = batch()
        logits = model(x)
        loss = F.cross_entropy(logits, torch.from_numpy(labels[j]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % log_every == 0 or step == steps:
            log(f"step {step} loss {loss.item():.3f} batch acc {float((logits.argmax(1).numpy() == labels[j]).mean()):.2f}")


def save_ckpt(path, **state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def plot_losses(hist, path, title, keys=None, smooth=50):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = keys or [k for k in hist[0] if k != "step"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3))
    axes = np.atleast_1d(axes)
    steps = np.array([h["step"] for h in hist])
    for ax, k in zip(axes, keys):
        v = np.array([h.get(k, np.nan) for h in hist], dtype=np.float64)
        ax.plot(steps, v, alpha=0.3, lw=0.6)
        if len(v) > smooth:
            ker = np.ones(smooth) / smooth
            ax.plot(steps[smooth - 1:], np.convolve(v, ker, "valid"), lw=1.2)
        ax.set_title(k); ax.set_xlabel("step")
        if np.nanmin(v) > 0:
            ax.set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
