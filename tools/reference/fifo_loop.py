"""Reference implementation of the `fifo` strategy (FIFO-Diffusion's diagonal denoising, docs/PLUGINS.md)
on top of diffusers, written from the definition, not from the Swift code.

The queue holds L = n*f latent frames (f = window, n = partitions), head first, position q at the
q-th smallest timestep of the L-step DDIM schedule; with lookahead, f/2 clean context frames sit
before the head. One iteration runs every window (f frames of the queue, per-frame timesteps) from
the queue as it was when the iteration began, writes back the window's frames (lookahead: its later
half), emits the head and appends the next noise frame. The first clip samples f noise frames as an
ordinary clip of L steps; queue position q starts as that trajectory's U-Net input at step L-1-q of
frame min(q, f-1), context frames as its clean frame 0. Noise frames come from a tape in draw order
(clip 0's draw, the extra draws fifo asks for, then one draw per later clip).

diffusers' UNet3DConditionModel takes one timestep per batch entry; per-frame timesteps are fed by
computing the time embedding for every (entry, frame) and keeping it through the model's
repeat_interleave over frames (`per_frame_timesteps`).

    python tools/reference/fifo_loop.py --model Tests/Fixtures/tiny-lpb2/model --out Tests/Fixtures/fifo-loop \
        --clips 3 --frames 6 --window 4 --partitions 2 --lookahead

writes OUT/tape.safetensors, OUT/reference.safetensors (clip.K.latents, clip.K.frames) and
OUT/reference.json (the settings). float32, one CPU thread.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from refpipe import decode_video, load_pipeline  # noqa: E402
from vidrd_loop import freenoise_noise, loop_arguments, read_tape, text_embeddings, write_fixture  # noqa: E402


@contextlib.contextmanager
def per_frame_timesteps(unet, timesteps: torch.Tensor):
    """Within the block, the U-Net's time embedding is that of `timesteps` ([B*F], entry-major)
    and is not repeated over frames."""
    original_forward = unet.time_embedding.forward
    original_repeat = torch.Tensor.repeat_interleave
    held = {}

    def forward(sample, condition=None):
        t_emb = unet.time_proj(timesteps).to(dtype=sample.dtype)
        held["emb"] = original_forward(t_emb, condition)
        return held["emb"]

    def repeat(self, *args, **kwargs):
        if self is held.get("emb"):
            return self
        return original_repeat(self, *args, **kwargs)

    unet.time_embedding.forward = forward
    torch.Tensor.repeat_interleave = repeat
    try:
        yield
    finally:
        unet.time_embedding.forward = original_forward
        torch.Tensor.repeat_interleave = original_repeat


def guided_prediction(unet, latents, frame_t, embeds, guided, guidance):
    batch = 2 if guided else 1
    model_in = torch.cat([latents] * batch)
    ts = torch.tensor(list(frame_t) * batch, dtype=torch.long)
    with per_frame_timesteps(unet, ts):
        pred = unet(model_in, 0, encoder_hidden_states=embeds).sample
    if guided:
        uncond, text = pred.chunk(2)
        pred = uncond + guidance * (text - uncond)
    return pred


@torch.no_grad()
def run(args) -> dict:
    torch.set_num_threads(1)
    dtype = torch.float64 if args.float64 else torch.float32
    pipe = load_pipeline(args.model, dtype)
    unet, vae, sched = pipe.unet, pipe.vae, pipe.scheduler
    n_frames = args.frames
    f = args.window or n_frames
    n = args.partitions or max(1, args.steps // f)
    L = n * f
    ctx = f // 2 if args.lookahead else 0
    scale = pipe.vae_scale_factor
    shape = (1, unet.config.in_channels, n_frames, args.height // scale, args.width // scale)
    extra = 0
    while n_frames * (1 + extra) < f + n_frames:
        extra += 1
    draws = args.clips + extra
    tape = [t.to(dtype) for t in read_tape(args, shape, draws)]
    guided, embeds = text_embeddings(pipe, args)
    embeds = embeds.to(dtype)

    sched.set_timesteps(L)
    schedule = [int(t) for t in sched.timesteps]                 # noisiest first
    level = [schedule[L - 1 - q] for q in range(L)]              # noisy position q
    pos_t = [level[0]] * ctx + level                              # every queue position

    def ddim(pred, t, x):
        return sched.step(pred, t, x, eta=0.0).prev_sample

    out: dict[str, torch.Tensor] = {}
    queue: list[torch.Tensor] = []   # each [1, C, 1, h, w]
    prev_noise = None
    t_index = 0
    for k in range(args.clips):
        fresh = tape[t_index]
        t_index += 1
        noise = fresh.clone()
        if k > 0 and args.freenoise_window:
            noise = freenoise_noise(prev_noise, fresh, args.freenoise_window, args.freenoise_reuse)
        frames = [noise[:, :, j:j + 1] for j in range(n_frames)]
        if k == 0:
            for _ in range(extra):
                frames += [tape[t_index][:, :, j:j + 1] for j in range(n_frames)]
                t_index += 1
            x = torch.cat(frames[:f], dim=2)
            inputs = []
            for t in schedule:
                inputs.append(x.clone())
                x = ddim(guided_prediction(unet, x, [t] * f, embeds, guided, args.guidance), t, x)
            queue = [x[:, :, 0:1].clone() for _ in range(ctx)]
            queue += [inputs[L - 1 - q][:, :, min(q, f - 1):min(q, f - 1) + 1].clone() for q in range(L)]
            frames = frames[f:f + n_frames]
        if args.lookahead:
            windows = [(w * (f // 2), range(w * (f // 2) + f // 2, w * (f // 2) + f)) for w in range(2 * n)]
        else:
            windows = [(w * f, range(w * f, w * f + f)) for w in range(n)]
        emitted = []
        for i in range(n_frames):
            new_queue = list(queue)
            for start, update in reversed(windows):     # FIFO-Diffusion's order; each reads the old queue
                x = torch.cat(queue[start:start + f], dim=2)
                ts = pos_t[start:start + f]
                pred = guided_prediction(unet, x, ts, embeds, guided, args.guidance)
                for p in update:
                    j = p - start
                    new_queue[p] = ddim(pred[:, :, j:j + 1], ts[j], x[:, :, j:j + 1])
            queue = new_queue
            emitted.append(queue[ctx])
            queue = queue[1:] + [frames[i]]
        latents = torch.cat(emitted, dim=2)
        video = decode_video(vae, latents)
        out[f"clip.{k}.latents"] = latents.contiguous()
        out[f"clip.{k}.frames"] = video[0].permute(1, 2, 3, 0).contiguous()
        out[f"clip.{k}.initial_noise"] = noise.contiguous()
        prev_noise = noise
    return {"tape": tape, "tensors": out, "timesteps": schedule, "queue": L, "extra_draws": extra}


def main() -> None:
    ap = loop_arguments(__doc__, seed=2025)
    ap.add_argument("--steps", type=int, default=8, help="S; with --partitions 0, n = max(1, S // window)")
    ap.add_argument("--window", type=int, default=0, help="f; 0 = frames")
    ap.add_argument("--partitions", type=int, default=0)
    ap.add_argument("--lookahead", action="store_true")
    ap.add_argument("--freenoise-window", type=int, default=0, help="compose freenoise (base noise of clips >= 1)")
    ap.add_argument("--freenoise-reuse", type=float, default=1.0)
    ap.add_argument("--float64", action="store_true",
                    help="compute in float64 (a yardstick: the queue chains many U-Net calls, so float32 rounding "
                         "grows from clip to clip on random weights)")
    args = ap.parse_args()
    r = run(args)
    float32_error = {}
    if args.float64:
        # The same loop in float32 from the same tape: how far float32 rounding alone carries a
        # result from the float64 one, clip by clip (the yardstick for the Swift runtime).
        f32 = run(argparse.Namespace(**{**vars(args), "float64": False}))
        for key, ref in r["tensors"].items():
            if "noise" not in key:
                float32_error[key] = float((f32["tensors"][key].double() - ref).abs().max() / ref.std())
    write_fixture(args, r["tape"], r["tensors"], timesteps=r["timesteps"], queue=r["queue"], extra_draws=r["extra_draws"],
                  float32_error=float32_error)
    print(f"wrote {args.out}: {args.clips} clips, queue {r['queue']}, extra draws {r['extra_draws']}")


if __name__ == "__main__":
    main()
