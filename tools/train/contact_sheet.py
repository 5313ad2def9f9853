#!/usr/bin/env python3
"""Contact sheet of long streams: one row per prompt, every frame (or every --every-th frame) of a
`vidrd generate` stream of several clips joined by the noise strategies, a red bar at each seam.

  bash tools/train/contact_sheet.sh      # runs vidrd generate for 12 prompts, then this script

Each stream folder holds vidrd generate's frame_NNNNNN.webp files and its stdout as log.txt, whose
"clip k: frames A…B" lines give the seams.
"""
import argparse
import glob
import os
import re

import numpy as np
from PIL import Image, ImageDraw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--streams", required=True, help="folder with one sub-folder per prompt (00, 01, ...), each with prompt.txt")
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--title", default="")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = []
    for d in sorted(glob.glob(os.path.join(a.streams, "*"))):
        if not os.path.isdir(d):
            continue
        files = sorted(glob.glob(os.path.join(d, "frame_*.webp")))
        prompt = open(os.path.join(d, "prompt.txt")).read().strip()
        starts = [int(m.group(1)) for m in re.finditer(r"clip \d+: frames (\d+)", open(os.path.join(d, "log.txt")).read())]
        frames = [(int(re.search(r"frame_(\d+)", f).group(1)), f) for f in files]
        rows.append((prompt, frames[::a.every], set(starts[1:])))
    if not rows:
        raise SystemExit(f"no streams under {a.streams}")
    w0, h0 = Image.open(rows[0][1][0][1]).size
    W, H = w0 * a.scale, h0 * a.scale
    ncol = max(len(r[1]) for r in rows)
    cap, gap = 13, 2
    sheet = Image.new("RGB", (ncol * (W + gap) + 4, 16 + len(rows) * (H + cap + 6)), (255, 255, 255))
    d = ImageDraw.Draw(sheet)
    d.text((2, 1), a.title, fill=(110, 0, 0))
    for r, (prompt, frames, seams) in enumerate(rows):
        y = 16 + r * (H + cap + 6)
        d.text((2, y), prompt, fill=(0, 0, 0))
        for c, (num, f) in enumerate(frames):
            x = 2 + c * (W + gap)
            im = Image.open(f).convert("RGB").resize((W, H), Image.NEAREST)
            sheet.paste(im, (x, y + cap))
            # a seam falls before the first frame of every clip after the first
            if any(num - a.every < s <= num for s in seams) and c > 0:
                d.rectangle([x - gap, y + cap, x - 1, y + cap + H], fill=(230, 0, 0))
    sheet.save(a.out, optimize=True)
    print(f"wrote {a.out}: {len(rows)} streams, {ncol} columns")


if __name__ == "__main__":
    main()
