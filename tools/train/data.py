#!/usr/bin/env python3
"""Deterministic, seeded procedural video-text data for vidrd's embedded model (issue 5, item 1).

Mirrors the three data sources of the VidRD paper (section 4.2) with procedural content:

  (a) "well"   well-captioned rendered scenes: one object (7 kinds, 10 colours, 3 sizes) on a
               solid or textured background, one of 13 motions, captioned from templates with
               synonyms and word-order variation (3 captions per clip; training picks one).
  (a') "short" short "classification" clips (the paper's Kinetics/Moments strategy): the clip only
               has a motion label; the caption is built by "captioning a random frame" (appearance
               read off that frame's metadata) and adding the label, in different templates.
  (b) "image"  pseudo-videos from still images: a static 128x128 still with 1-3 objects is
               captioned from its content, then random zoom + pan produce a 64x64 clip.
  (c) "long"   long multi-scene videos (96 frames, 3-6 scenes, some irrelevant: empty, noise,
               fade to black, off-label object) with a classification label (colour + kind); a
               procedural scorer marks frames that do not match the label (colour-mask area),
               a cut detector splits scenes, segments shorter than MIN_SEG frames are dropped and
               each kept segment is captioned (stand-in for CLIP + MiniGPT-4).

Every clip is CLIP_LEN=16 frames of 64x64 RGB uint8. Training samples 8 frames with stride 2 from
a random start (the paper samples 8 keyframes every 4 frames).

Usage:
  python tools/train/data.py --out /work/train-runs/data            # train + test splits
  python tools/train/data.py --out DIR --sheet docs/dataset_samples.png
Output: DIR/{split}/clips_XXX.npy (N,16,64,64,3 uint8), DIR/{split}/meta.jsonl (one line per clip:
captions, source, labels), DIR/stats.json.
"""
import argparse
import json
import math
import os
import time

import numpy as np

H = W = 64
CLIP_LEN = 16
MIN_SEG = 16

COLOURS = {
    "red": (220, 30, 30), "green": (40, 180, 50), "blue": (40, 70, 220), "yellow": (240, 220, 40),
    "orange": (245, 140, 20), "purple": (140, 50, 190), "white": (245, 245, 245),
    "black": (20, 20, 20), "pink": (250, 130, 190), "cyan": (40, 210, 220),
}
BG_COLOURS = dict(COLOURS, gray=(128, 128, 128))
COLOUR_SYN = {"gray": ["gray", "grey"], "purple": ["purple", "violet"]}
SHAPES = ["circle", "square", "triangle", "star", "diamond", "ring", "cross"]
SHAPE_SYN = {
    "circle": ["circle", "disc", "dot"], "square": ["square", "box"], "triangle": ["triangle"],
    "star": ["star"], "diamond": ["diamond", "rhombus"], "ring": ["ring", "hoop"],
    "cross": ["cross", "plus sign"],
}
SIZES = {"small": 7.0, "medium": 10.0, "large": 14.0}
SIZE_SYN = {"small": ["small", "tiny", "little"], "medium": ["", "", "medium"], "large": ["large", "big", "huge"]}
MOTIONS = ["left", "right", "up", "down", "bouncing", "rotating", "growing", "shrinking",
           "orbiting", "pan_left", "pan_right", "still", "zoom_in"]
MOTION_SYN = {
    "left": ["moving left", "moving to the left", "sliding left", "going left", "travelling left"],
    "right": ["moving right", "moving to the right", "sliding right", "going right", "travelling right"],
    "up": ["moving up", "rising", "going up", "floating upward", "moving upwards"],
    "down": ["moving down", "falling", "going down", "sinking", "moving downwards"],
    "bouncing": ["bouncing", "bouncing up and down", "hopping"],
    "rotating": ["rotating", "spinning", "turning around"],
    "growing": ["growing", "getting bigger", "expanding"],
    "shrinking": ["shrinking", "getting smaller", "contracting"],
    "orbiting": ["moving in a circle", "orbiting", "circling around"],
    "still": ["standing still", "resting", "not moving"],
}
PAN_SYN = {"pan_left": ["the camera pans left", "camera panning to the left", "panning left"],
           "pan_right": ["the camera pans right", "camera panning to the right", "panning right"],
           "zoom_in": ["the camera zooms in", "zooming in", "camera zooming in"]}
TEXTURES = ["solid", "solid", "stripes", "checker", "dots", "gradient"]
TEXTURE_WORD = {"solid": [""], "stripes": ["striped"], "checker": ["checkered", "checkerboard"],
                "dots": ["dotted", "polka dot"], "gradient": ["gradient"]}
ROTATABLE = ["square", "triangle", "star", "diamond", "cross"]


def syn(rng, table, key):
    opts = table.get(key, [key])
    return opts[rng.integers(len(opts))]


# ----------------------------------------------------------------------------------- rendering
def shape_sdf(shape, x, y):
    """Signed distance (in units of the object radius) for unit-radius shapes; x,y local coords."""
    if shape == "circle":
        return np.sqrt(x * x + y * y) - 1.0
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) - 0.8
    if shape == "diamond":
        return (np.abs(x) + np.abs(y)) / math.sqrt(2) - 0.72
    if shape == "triangle":
        d = None
        for k in range(3):
            a = -math.pi / 2 + k * 2 * math.pi / 3
            v = x * math.cos(a) + y * math.sin(a) - 0.5
            d = v if d is None else np.maximum(d, v)
        return d
    if shape == "star":
        rho = np.sqrt(x * x + y * y)
        th = np.arctan2(y, x)
        return rho - (0.55 + 0.45 * np.cos(5 * th + math.pi / 2)) * 1.05
    if shape == "ring":
        return np.abs(np.sqrt(x * x + y * y) - 0.72) - 0.28
    if shape == "cross":
        a = np.maximum(np.abs(x) - 1.0, np.abs(y) - 0.33)
        b = np.maximum(np.abs(x) - 0.33, np.abs(y) - 1.0)
        return np.minimum(a, b)
    raise ValueError(shape)


def jitter(rng, rgb, amt=18):
    return np.clip(np.array(rgb, np.float32) + rng.uniform(-amt, amt, 3), 0, 255)


def render_background(rng, texture, colour, T, h, w, camx, camy, scale=1.0):
    """Background (T,h,w,3) float32; camx/camy (T,) world offsets of the camera in pixels."""
    base = jitter(rng, BG_COLOURS[colour], 12)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    X = (xs[None] + camx[:, None, None]) / scale
    Y = (ys[None] + camy[:, None, None]) / scale
    lum = 255.0 - base if base.mean() < 110 else -base * 0.45
    if texture == "solid":
        m = np.zeros_like(X)
    elif texture == "stripes":
        period = rng.uniform(8, 14)
        m = (np.sin(2 * math.pi * X / period) > 0).astype(np.float32)
    elif texture == "checker":
        period = rng.uniform(8, 14)
        m = ((np.floor(X / period) + np.floor(Y / period)) % 2).astype(np.float32)
    elif texture == "dots":
        period = rng.uniform(9, 13)
        fx = (X % period) - period / 2
        fy = (Y % period) - period / 2
        m = (fx * fx + fy * fy < (period * 0.22) ** 2).astype(np.float32)
    elif texture == "gradient":
        m = np.clip((Y + 0.3 * X) / (h * 1.3), 0, 1)
    else:
        raise ValueError(texture)
    out = base[None, None, None, :] + 0.35 * m[..., None] * lum[None, None, None, :]
    return out


def composite(img, shape, rgb, cx, cy, r, ang):
    """Draw one object into img (T,h,w,3) in place; per-frame arrays cx,cy,r,ang of shape (T,)."""
    T, h, w, _ = img.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx = xs[None] + 0.5 - cx[:, None, None]
    dy = ys[None] + 0.5 - cy[:, None, None]
    c, s = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
    lx = (c * dx + s * dy) / r[:, None, None]
    ly = (-s * dx + c * dy) / r[:, None, None]
    d = shape_sdf(shape, lx, ly) * r[:, None, None]
    a = np.clip(0.5 - d, 0.0, 1.0)[..., None]
    img *= (1.0 - a)
    img += a * rgb[None, None, None, :]
    return a[..., 0]


def motion_path(rng, motion, size, T, h=H, w=W):
    """Per-frame cx, cy, r, angle, camx, camy for one object under `motion`."""
    t = np.linspace(0.0, 1.0, T, dtype=np.float32)
    r0 = SIZES[size] * rng.uniform(0.9, 1.1)
    m = r0 + 2
    cx0, cy0 = rng.uniform(m, w - m), rng.uniform(m, h - m)
    cx = np.full(T, cx0, np.float32); cy = np.full(T, cy0, np.float32)
    r = np.full(T, r0, np.float32)
    ang = np.full(T, rng.uniform(0, 2 * math.pi), np.float32)
    camx = np.zeros(T, np.float32); camy = np.zeros(T, np.float32)
    span = rng.uniform(0.35, 0.6) * w
    if motion in ("left", "right"):
        a, b = (w - m, w - m - span) if motion == "left" else (m, m + span)
        a += rng.uniform(-3, 3); b += rng.uniform(-3, 3)
        cx = a + (b - a) * t
        cy = cy + rng.uniform(-3, 3) * t
    elif motion in ("up", "down"):
        a, b = (h - m, h - m - span) if motion == "up" else (m, m + span)
        cy = a + (b - a) * t
        cx = cx + rng.uniform(-3, 3) * t
    elif motion == "bouncing":
        floor = h - r0 - 2
        amp = rng.uniform(18, 30)
        nb = rng.choice([1.5, 2.0, 2.5])
        cy = floor - amp * np.abs(np.sin(math.pi * nb * t + rng.uniform(0, 0.5)))
        cx = cx + rng.uniform(-6, 6) * t
    elif motion == "rotating":
        cx[:] = rng.uniform(24, w - 24); cy[:] = rng.uniform(24, h - 24)
        r[:] = max(r0, 10.0)
        ang = ang + rng.choice([-1, 1]) * rng.uniform(0.6, 1.0) * math.pi * t
    elif motion in ("growing", "shrinking"):
        cx[:] = rng.uniform(26, w - 26); cy[:] = rng.uniform(26, h - 26)
        lo, hi = 5.0, rng.uniform(15, 19)
        r = lo + (hi - lo) * (t if motion == "growing" else 1 - t)
    elif motion == "orbiting":
        rad = rng.uniform(12, 18)
        r[:] = min(r0, 9.0)
        d = rng.choice([-1, 1])
        ph = rng.uniform(0, 2 * math.pi)
        cx = w / 2 + rad * np.cos(ph + d * 2 * math.pi * 0.85 * t)
        cy = h / 2 + rad * np.sin(ph + d * 2 * math.pi * 0.85 * t)
    elif motion in ("pan_left", "pan_right"):
        # camera moves; object fixed in the world, so it drifts the other way in frame
        pan = rng.uniform(18, 28)
        sign = -1.0 if motion == "pan_left" else 1.0
        camx = sign * pan * t
        cx = np.full(T, w / 2 + rng.uniform(-8, 8), np.float32) - camx + sign * pan / 2
    elif motion == "zoom_in":
        pass  # handled by the pseudo-video path
    return (cx.astype(np.float32), cy.astype(np.float32), r.astype(np.float32),
            ang.astype(np.float32), camx, camy)


def pick_colours(rng):
    oc = list(COLOURS)[rng.integers(len(COLOURS))]
    while True:
        bc = list(BG_COLOURS)[rng.integers(len(BG_COLOURS))]
        if bc != oc and np.abs(np.subtract(COLOURS[oc], BG_COLOURS[bc])).sum() > 160:
            return oc, bc


# ----------------------------------------------------------------------------------- captions
def subject_phrase(rng, size, colour, shape, article=True):
    sz = syn(rng, SIZE_SYN, size)
    words = [w for w in (sz, syn(rng, COLOUR_SYN, colour), syn(rng, SHAPE_SYN, shape)) if w]
    s = " ".join(words)
    return (("an " if s[0] in "aeiou" else "a ") + s) if article else s


def bg_phrase(rng, colour, texture):
    tw = syn(rng, TEXTURE_WORD, texture)
    cw = syn(rng, COLOUR_SYN, colour)
    noun = ["background", "background", "backdrop"][rng.integers(3)]
    prep = ["on", "on", "over", "in front of"][rng.integers(4)]
    art = "an" if cw[0] in "aeiou" else "a"
    return f"{prep} {art} {cw} {tw + ' ' if tw else ''}{noun}"


def caption_well(rng, lab):
    subj = subject_phrase(rng, lab["size"], lab["colour"], lab["shape"])
    bg = bg_phrase(rng, lab["bg"], lab["texture"])
    mo = lab["motion"]
    if mo in PAN_SYN:
        pan = syn(rng, PAN_SYN, mo)
        forms = [f"{pan} across {subj} {bg}", f"{subj} {bg}, {pan}", f"{pan}, {subj} {bg}"]
    else:
        mv = syn(rng, MOTION_SYN, mo)
        forms = [f"{subj} {mv} {bg}", f"{bg}, {subj} {mv}".capitalize().lower(), f"{subj} {bg} {mv}",
                 f"{subj} is {mv} {bg}"]
    return forms[rng.integers(len(forms))]


def caption_short(rng, lab):
    """'Classification' clip: label = motion; appearance from one randomly selected frame."""
    subj = subject_phrase(rng, lab["size"], lab["colour"], lab["shape"])
    bg = bg_phrase(rng, lab["bg"], lab["texture"])
    label = lab["motion"].replace("_", " ")
    mv = syn(rng, PAN_SYN, lab["motion"]) if lab["motion"] in PAN_SYN else syn(rng, MOTION_SYN, lab["motion"])
    forms = [f"a video of {subj} {mv} {bg}", f"{label}: {subj} {bg} {mv}", f"{subj} {mv}, {bg}"]
    return forms[rng.integers(len(forms))]


# ----------------------------------------------------------------------------------- sources
def random_label(rng, motion=None):
    motion = motion or MOTIONS[rng.integers(len(MOTIONS) - 1)]  # zoom_in only in pseudo-videos
    shape = SHAPES[rng.integers(len(SHAPES))]
    if motion == "rotating" and shape not in ROTATABLE:
        shape = ROTATABLE[rng.integers(len(ROTATABLE))]
    oc, bc = pick_colours(rng)
    tex = TEXTURES[rng.integers(len(TEXTURES))]
    if motion in ("pan_left", "pan_right") and tex in ("solid", "gradient"):
        tex = ["stripes", "checker", "dots"][rng.integers(3)]
    size = list(SIZES)[rng.integers(3)]
    return dict(shape=shape, colour=oc, bg=bc, texture=tex, size=size, motion=motion)


def render_label(rng, lab, T=CLIP_LEN):
    cx, cy, r, ang, camx, camy = motion_path(rng, lab["motion"], lab["size"], T)
    img = render_background(rng, lab["texture"], lab["bg"], T, H, W, camx, camy)
    composite(img, lab["shape"], jitter(rng, COLOURS[lab["colour"]]), cx, cy, r, ang)
    return img


def gen_well(rng):
    lab = random_label(rng)
    img = render_label(rng, lab)
    caps = [caption_well(rng, lab) for _ in range(3)]
    return img, caps, dict(lab, source="well")


def gen_short(rng):
    lab = random_label(rng)
    img = render_label(rng, lab)
    caps = [caption_short(rng, lab) for _ in range(2)]
    return img, caps, dict(lab, source="short")


def gen_image(rng):
    """Still image (128x128, 1-3 static objects) -> random zoom + pan -> 64x64 pseudo-video."""
    S = 128
    n = [1, 1, 2, 3][rng.integers(4)]
    oc, bc = pick_colours(rng)
    tex = TEXTURES[rng.integers(len(TEXTURES))]
    still = render_background(rng, tex, bc, 1, S, S, np.zeros(1, np.float32), np.zeros(1, np.float32), scale=2.0)
    objs = []
    used = set()
    for i in range(n):
        shape = SHAPES[rng.integers(len(SHAPES))]
        col = oc if i == 0 else list(COLOURS)[rng.integers(len(COLOURS))]
        if col == bc or (shape, col) in used:
            continue
        used.add((shape, col))
        size = list(SIZES)[rng.integers(3)]
        rr = SIZES[size] * 2 * rng.uniform(0.9, 1.1)
        c = rng.uniform(rr + 4, S - rr - 4, 2).astype(np.float32)
        composite(still, shape, jitter(rng, COLOURS[col]), c[:1] * 0 + c[0], c[1:] * 0 + c[1],
                  np.array([rr], np.float32), np.array([rng.uniform(0, 6.28)], np.float32))
        objs.append(dict(shape=shape, colour=col, size=size, cx=float(c[0]), cy=float(c[1])))
    # zoom/pan window: side s(t) (in still pixels), centre c(t)
    T = CLIP_LEN
    t = np.linspace(0, 1, T, dtype=np.float32)
    zoom = ["in", "out", "none"][rng.integers(3)]
    s0, s1 = {"in": (rng.uniform(110, 128), rng.uniform(70, 90)), "out": (rng.uniform(70, 90), rng.uniform(110, 128)),
              "none": (rng.uniform(80, 110),) * 2}[zoom]
    side = s0 + (s1 - s0) * t
    focus = np.array([objs[0]["cx"], objs[0]["cy"]], np.float32) if objs else np.array([64, 64], np.float32)
    p0 = focus + rng.uniform(-20, 20, 2)
    p1 = focus + rng.uniform(-20, 20, 2)
    ctr = p0[None] + (p1 - p0)[None] * t[:, None]
    ctr = np.clip(ctr, side[:, None] / 2, S - side[:, None] / 2)
    g = (np.arange(W, dtype=np.float32) + 0.5) / W - 0.5
    X = ctr[:, 0, None, None] + side[:, None, None] * g[None, None, :]
    Y = ctr[:, 1, None, None] + side[:, None, None] * g[None, :, None]
    X = np.broadcast_to(X, (T, H, W)) - 0.5; Y = np.broadcast_to(Y, (T, H, W)) - 0.5
    x0 = np.clip(np.floor(X).astype(np.int32), 0, S - 2); y0 = np.clip(np.floor(Y).astype(np.int32), 0, S - 2)
    fx = np.clip(X - x0, 0, 1)[..., None]; fy = np.clip(Y - y0, 0, 1)[..., None]
    im = still[0]
    img = (im[y0, x0] * (1 - fx) * (1 - fy) + im[y0, x0 + 1] * fx * (1 - fy)
           + im[y0 + 1, x0] * (1 - fx) * fy + im[y0 + 1, x0 + 1] * fx * fy)
    # caption from the image content (as an image-text pair would have)
    parts = [subject_phrase(rng, o["size"], o["colour"], o["shape"]) for o in objs]
    if not parts:
        parts = ["an empty scene"]
    things = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    caps = []
    for _ in range(2):
        bg = bg_phrase(rng, bc, tex)
        c = [f"{things} {bg}", f"a picture of {things} {bg}", f"{bg}, {things}"][rng.integers(3)]
        if zoom == "in" and rng.random() < 0.5:
            c += ", " + syn(rng, PAN_SYN, "zoom_in")
        caps.append(c)
    lab = dict(source="image", shape=objs[0]["shape"] if objs else "none", colour=oc, bg=bc, texture=tex,
               size=objs[0]["size"] if objs else "none", motion="zoom_in" if zoom == "in" else "still",
               n_objects=len(objs))
    return img, caps, lab


IRRELEVANT = ["empty", "noise", "fade", "other_object"]


def score_frames(frames, colour):
    """Procedural stand-in for the CLIP/MiniGPT-4 relevance check: fraction of pixels within a
    colour distance of the label colour. Returns per-frame scores (T,)."""
    ref = np.array(COLOURS[colour], np.float32)
    d = np.abs(frames - ref).sum(-1)
    return (d < 90).mean(axis=(1, 2))


def gen_long(rng, total=96):
    """Long multi-scene video for one label (colour+shape), segmented before captioning."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    oc, _ = pick_colours(rng)
    scenes, n = [], 0
    while n < total:
        L = int(rng.integers(10, 36))
        L = min(L, total - n)
        relevant = rng.random() < 0.6
        scenes.append((L, relevant)); n += L
    frames, gt_keep, scene_id, scene_labs = [], [], [], []
    for si, (L, relevant) in enumerate(scenes):
        if relevant:
            lab = random_label(rng)
            lab.update(shape=shape, colour=oc)
            if lab["motion"] == "rotating" and shape not in ROTATABLE:
                lab["motion"] = "orbiting"
            if lab["bg"] == oc or np.abs(np.subtract(COLOURS[oc], BG_COLOURS[lab["bg"]])).sum() <= 160:
                lab["bg"] = "gray" if oc not in ("gray",) and np.abs(np.subtract(COLOURS[oc], (128, 128, 128))).sum() > 160 else "black"
            img = render_label(rng, lab, T=L)
        else:
            kind = IRRELEVANT[rng.integers(len(IRRELEVANT))]
            bgc = [c for c in BG_COLOURS if np.abs(np.subtract(BG_COLOURS[c], COLOURS[oc])).sum() > 200]
            bg = bgc[rng.integers(len(bgc))]
            lab = dict(kind=kind, bg=bg)
            if kind == "empty":
                img = render_background(rng, "solid", bg, L, H, W, np.zeros(L, np.float32), np.zeros(L, np.float32))
            elif kind == "noise":
                img = rng.uniform(0, 255, (L, H, W, 3)).astype(np.float32)
                img = (img + np.roll(img, 1, 1) + np.roll(img, 1, 2)) / 3
            elif kind == "fade":
                img = render_background(rng, "solid", bg, L, H, W, np.zeros(L, np.float32), np.zeros(L, np.float32))
                img *= np.linspace(1, 0.05, L, dtype=np.float32)[:, None, None, None]
            else:
                other = [c for c in COLOURS if c != bg and np.abs(np.subtract(COLOURS[c], COLOURS[oc])).sum() > 200
                         and np.abs(np.subtract(COLOURS[c], BG_COLOURS[bg])).sum() > 160]
                ol = random_label(rng)
                ol.update(colour=other[rng.integers(len(other))] if other else "white", bg=bg)
                img = render_label(rng, ol, T=L)
                lab["other"] = ol
        frames.append(img); gt_keep += [relevant] * L; scene_id += [si] * L; scene_labs.append((relevant, lab))
    video = np.concatenate(frames, 0)
    # 1. scorer: per-frame relevance to the label
    keep = score_frames(video, oc) > 0.02
    # 2. cut detector: big mean absolute frame difference starts a new segment
    diff = np.abs(np.diff(video, axis=0)).mean(axis=(1, 2, 3))
    cut = np.concatenate([[True], diff > 40.0])
    # 3. segments of consecutive kept frames without cuts; drop short ones
    segs, start = [], None
    for i in range(len(video)):
        if keep[i] and (start is None or cut[i]):
            if start is not None:
                segs.append((start, i))
            start = i
        elif not keep[i] and start is not None:
            segs.append((start, i)); start = None
    if start is not None:
        segs.append((start, len(video)))
    kept = [(a, b) for a, b in segs if b - a >= MIN_SEG]
    out = []
    for a, b in kept:
        s0 = a + int(rng.integers(0, b - a - CLIP_LEN + 1))
        clip = video[s0:s0 + CLIP_LEN]
        sid = np.bincount(np.array(scene_id[a:b])).argmax()
        rel, lab = scene_labs[sid]
        if not rel:
            continue  # scorer false positive; counted in stats, not captioned (captioner refuses)
        caps = [caption_well(rng, lab) for _ in range(2)]
        out.append((clip, caps, dict(lab, source="long")))
    stats = dict(frames=len(video), gt_relevant=int(np.sum(gt_keep)), kept=int(keep.sum()),
                 tp=int(np.sum(keep & np.array(gt_keep))), segments=len(segs), kept_segments=len(kept),
                 clips=len(out))
    return out, stats


# ----------------------------------------------------------------------------------- driver
MIX = {"well": 0.55, "short": 0.12, "image": 0.15, "long": 0.18}  # fraction of clips per source


def generate_split(out_dir, n_clips, seed, shard=1000):
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = {k: 0 for k in MIX}
    targets = {k: int(round(v * n_clips)) for k, v in MIX.items()}
    long_stats = dict(frames=0, gt_relevant=0, kept=0, tp=0, segments=0, kept_segments=0, clips=0, videos=0)
    buf, metas, nshard = [], [], 0
    fmeta = open(os.path.join(out_dir, "meta.jsonl"), "w")

    def flush():
        nonlocal buf, nshard
        if buf:
            np.save(os.path.join(out_dir, f"clips_{nshard:03d}.npy"), np.stack(buf))
            nshard += 1
            buf = []

    order = []
    for k in MIX:
        order += [k] * targets[k]
    rng.shuffle(order)
    t0 = time.time()
    pending_long = []
    for k in order:
        if k == "long":
            while not pending_long:
                clips, st = gen_long(rng)
                for key in st:
                    long_stats[key] += st[key]
                long_stats["videos"] += 1
                pending_long += clips
            items = [pending_long.pop()]
        else:
            items = [{"well": gen_well, "short": gen_short, "image": gen_image}[k](rng)]
        for img, caps, lab in items:
            buf.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
            fmeta.write(json.dumps(dict(idx=len(metas), captions=caps, **lab)) + "\n")
            metas.append(lab["source"])
            counts[lab["source"]] += 1
            if len(buf) == shard:
                flush()
    flush()
    fmeta.close()
    return dict(clips=len(metas), counts=counts, shards=nshard, seed=seed, seconds=round(time.time() - t0, 1),
                long=long_stats)


def contact_sheet(data_dir, path, n=12, frames=8, stride=2):
    from PIL import Image, ImageDraw
    clips = np.load(os.path.join(data_dir, "clips_000.npy"), mmap_mode="r")
    metas = [json.loads(l) for l in open(os.path.join(data_dir, "meta.jsonl"))][:len(clips)]
    # pick a spread of sources
    picks, seen = [], {}
    for i, m in enumerate(metas):
        if seen.get(m["source"], 0) < n // 4 + 1 and len(picks) < n:
            picks.append(i); seen[m["source"]] = seen.get(m["source"], 0) + 1
    cap_h = 14
    sheet = Image.new("RGB", (frames * (W + 2), len(picks) * (H + cap_h + 4)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    for row, i in enumerate(picks):
        y = row * (H + cap_h + 4)
        d.text((2, y), f"[{metas[i]['source']}] {metas[i]['captions'][0]}"[:100], fill=(0, 0, 0))
        for f in range(frames):
            sheet.paste(Image.fromarray(np.asarray(clips[i, f * stride])), (f * (W + 2), y + cap_h))
    sheet.save(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/work/train-runs/data")
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=20261125)
    ap.add_argument("--sheet", default=None, help="write a PNG contact sheet of train samples")
    a = ap.parse_args()
    stats = {}
    stats["train"] = generate_split(os.path.join(a.out, "train"), a.train, a.seed)
    print("train", stats["train"], flush=True)
    stats["test"] = generate_split(os.path.join(a.out, "test"), a.test, a.seed + 1)
    print("test", stats["test"], flush=True)
    stats.update(resolution=[H, W], clip_len=CLIP_LEN, min_seg=MIN_SEG, mix=MIX)
    json.dump(stats, open(os.path.join(a.out, "stats.json"), "w"), indent=1)
    if a.sheet:
        contact_sheet(os.path.join(a.out, "train"), a.sheet)


if __name__ == "__main__":
    main()
