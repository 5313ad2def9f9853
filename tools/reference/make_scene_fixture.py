#!/usr/bin/env python3
"""Labelled procedural clips for the scene scorer's test (Tests/Fixtures/scenes).

The clips are rendered by the training data generator itself (tools/train/data.py), so the labels
are ground truth and independent of the Swift scorer (Sources/Eval/SceneScorer.swift) that
`EvalTests` checks against them. Each clip is 8 frames of 64x64 (every 2nd frame of a 16-frame
clip, as training samples them), from the "well" source: one object, any texture, with in-vocabulary
captions (two `caption_well`, one `caption_short`).

Output (about 0.3 MB):
  frames.webp   lossless WebP sheet, one row of 8 frames per clip (exact uint8 pixels; a raw uint8
                tensor of the same frames would be 3.9 MB, and the runtime's safetensors reader has
                no U8 dtype)
  labels.json   per clip: labels, captions, the in-frame motion the scorer should report, the true
                centroid and radius per frame; plus data.py's vocabulary, so a test notices when
                the Swift copy of it drifts

Usage: /work/venv/bin/python tools/reference/make_scene_fixture.py [--out Tests/Fixtures/scenes]
"""
import argparse
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))
import data as D  # noqa: E402

FRAMES, STRIDE = 8, 2
SCORED = ["left", "right", "up", "down", "growing", "shrinking"]
OTHER = ["bouncing", "rotating", "orbiting", "still", "pan_left", "pan_right"]


def frame_motion(motion):
    """What the scorer should read from the object's path in the frame. A pan moves the camera, so
    the object drifts the other way across the frame."""
    if motion in SCORED:
        return motion
    return {"pan_left": "right", "pan_right": "left"}.get(motion, "other")


def render(rng, lab):
    # render_label's steps, kept apart so the true path can be recorded (same draws, same order).
    cx, cy, r, ang, camx, camy = D.motion_path(rng, lab["motion"], lab["size"], D.CLIP_LEN)
    img = D.render_background(rng, lab["texture"], lab["bg"], D.CLIP_LEN, D.H, D.W, camx, camy)
    D.composite(img, lab["shape"], D.jitter(rng, D.COLOURS[lab["colour"]]), cx, cy, r, ang)
    pick = slice(0, FRAMES * STRIDE, STRIDE)
    frames = np.clip(img + 0.5, 0, 255).astype(np.uint8)[pick]
    return frames, cx[pick], cy[pick], r[pick]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join("Tests", "Fixtures", "scenes"))
    ap.add_argument("--seed", type=int, default=20261211)
    ap.add_argument("--per-scored", type=int, default=5, help="clips per scored motion")
    ap.add_argument("--per-other", type=int, default=2, help="clips per other motion")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    motions = [m for m in SCORED for _ in range(a.per_scored)] + [m for m in OTHER for _ in range(a.per_other)]
    rows, clips = [], []
    for i, motion in enumerate(motions):
        lab = D.random_label(rng, motion=motion)
        frames, cx, cy, r = render(rng, lab)
        caps = [D.caption_well(rng, lab) for _ in range(2)] + [D.caption_short(rng, lab)]
        rows.append(np.concatenate(list(frames), axis=1))
        clips.append(dict(index=i, labels=lab, captions=caps, frame_motion=frame_motion(motion),
                          centroid_x=[round(float(v), 3) for v in cx], centroid_y=[round(float(v), 3) for v in cy],
                          radius=[round(float(v), 3) for v in r]))
    os.makedirs(a.out, exist_ok=True)
    sheet = np.concatenate(rows, axis=0)
    Image.fromarray(sheet).save(os.path.join(a.out, "frames.webp"), lossless=True, quality=100, method=6)
    back = np.asarray(Image.open(os.path.join(a.out, "frames.webp")).convert("RGB"))
    assert np.array_equal(back, sheet), "lossless WebP did not round-trip"
    vocab = dict(colours=D.COLOURS, bg_colours=D.BG_COLOURS, colour_syn=D.COLOUR_SYN, shapes=D.SHAPES,
                 shape_syn=D.SHAPE_SYN, size_syn=D.SIZE_SYN, motions=D.MOTIONS, motion_syn=D.MOTION_SYN,
                 pan_syn=D.PAN_SYN, texture_word=D.TEXTURE_WORD)
    meta = dict(generator="tools/reference/make_scene_fixture.py", seed=a.seed, frames=FRAMES, stride=STRIDE,
                height=D.H, width=D.W, clips=clips, vocabulary=vocab)
    with open(os.path.join(a.out, "labels.json"), "w") as f:
        json.dump(meta, f, indent=1)
    size = sum(os.path.getsize(os.path.join(a.out, n)) for n in ("frames.webp", "labels.json"))
    print(f"wrote {len(clips)} clips ({FRAMES} frames, {D.W}x{D.H}) to {a.out}: {size / 1e3:.0f} kB")


if __name__ == "__main__":
    main()
