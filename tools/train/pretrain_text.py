#!/usr/bin/env python3
"""Optional stage 0 (proposed after the 2026-11-25 run): pre-train the small CLIPTextModel on the
captions alone, predicting each clip's labels (kind, colour, background, texture, size, motion) from
the caption, so that the text features are informative before the U-Net's cross-attention has to
discover them (the paper starts from a frozen pre-trained CLIP text encoder; this is our stand-in).
Heads read the whole last_hidden_state (mean over non-pad tokens + the EOS token), i.e. exactly what
the U-Net's cross-attention sees.

  nice -n 19 python tools/train/pretrain_text.py --steps 600      # ~ a few minutes on CPU
  -> RUN/text_pretrain/te.pt ; then: train_unet.py --init-text RUN/text_pretrain/te.pt (fresh run)
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from common import RUNS, TEXT_CONFIG, log

FIELDS = ["shape", "colour", "bg", "texture", "size", "motion"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(RUNS, "data"))
    ap.add_argument("--tokenizer", default=os.path.join(RUNS, "tokenizer"))
    ap.add_argument("--out", default=os.path.join(RUNS, "text_pretrain"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    os.makedirs(a.out, exist_ok=True)
    tok = CLIPTokenizer.from_pretrained(a.tokenizer)
    meta = [json.loads(l) for l in open(os.path.join(a.data, "train", "meta.jsonl"))]
    vocab = {f: sorted({str(m.get(f)) for m in meta}) for f in FIELDS}
    caps, labels = [], []
    for m in meta:
        for c in m["captions"]:
            caps.append(c)
            labels.append([vocab[f].index(str(m.get(f))) for f in FIELDS])
    ids = torch.tensor(tok(caps, padding="max_length", max_length=77, truncation=True).input_ids)
    labels = torch.tensor(labels)
    te = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    d = TEXT_CONFIG["hidden_size"]
    heads = nn.ModuleList([nn.Linear(2 * d, len(vocab[f])) for f in FIELDS])
    opt = torch.optim.AdamW(list(te.parameters()) + list(heads.parameters()), lr=a.lr, weight_decay=0.01)
    rng = np.random.default_rng(0)
    eos = tok.eos_token_id
    for step in range(1, a.steps + 1):
        idx = torch.from_numpy(rng.integers(0, len(caps), a.batch))
        x, y = ids[idx], labels[idx]
        h = te(x)[0]  # (b,77,d)
        mask = (x != eos).float()
        first_eos = (x == eos).float().argmax(1)
        pooled = torch.cat([(h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True),
                            h[torch.arange(len(x)), first_eos]], -1)
        logits = [hd(pooled) for hd in heads]
        loss = sum(F.cross_entropy(lg, y[:, k]) for k, lg in enumerate(logits))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0 or step == a.steps:
            acc = [float((lg.argmax(1) == y[:, k]).float().mean()) for k, lg in enumerate(logits)]
            log(f"step {step} loss {loss.item():.3f} acc " + " ".join(f"{f}={v:.2f}" for f, v in zip(FIELDS, acc)))
    torch.save(dict(te=te.state_dict(), text_config=TEXT_CONFIG, vocab=vocab), os.path.join(a.out, "te.pt"))
    log(f"wrote {a.out}/te.pt")


if __name__ == "__main__":
    main()
