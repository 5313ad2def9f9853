"""Reference implementation of the VidRD endless-clip loop (docs/PLUGINS.md) on top of diffusers.

An independent Python reading of the strategy definitions (issue 3 / docs/PLUGINS.md): PYoCo prior
for clip 0, FNR, PNS, DSG; the sampler is diffusers' UNet3DConditionModel + DDIMScheduler with
classifier-free guidance exactly as TextToVideoSDPipeline does it, and frames come from the
temporal-aware VAE (refpipe.decode_video). Noise comes from a tape: one standard-normal tensor
[1, C, N, h, w] per clip (`noise.0`, `noise.1`, …), PNS uses frames M..N-1 of it scaled.

    python tools/reference/vidrd_loop.py --model Tests/Fixtures/tiny-lpb2/model --out Tests/Fixtures/vidrd-loop \
        --chain pyoco,fnr,pns,dsg --clips 3 --frames 6 --prompt-frames 2 --steps 4 --beta 0.5

`--scheduler dpm++` or `--scheduler euler` samples with diffusers' DPMSolverMultistepScheduler
(dpmsolver++, order 2) or EulerDiscreteScheduler, configured from the model's scheduler config by
`from_config` as a diffusers user switching schedulers does; the initial noise is scaled by the
scheduler's init_noise_sigma and the U-Net input by scale_model_input, as the pipeline does.

writes OUT/tape.safetensors (made with a seeded torch generator unless --tape is given),
OUT/reference.safetensors (clip.K.initial_noise, clip.K.latents, clip.K.frames [N, H, W, 3]) and
OUT/reference.json (the settings). Everything runs in float32 on one CPU thread.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from refpipe import decode_video, load_pipeline  # noqa: E402


def pyoco_prior(fresh: torch.Tensor, a: float) -> torch.Tensor:
    """frame f = a/sqrt(1+a^2) * frame f-1 + fresh_f / sqrt(1+a^2) (unit variance; the factor on the
    fresh draw is a standard deviation)."""
    wp, wf = a / math.sqrt(1 + a * a), 1 / math.sqrt(1 + a * a)
    out = fresh.clone()
    for f in range(1, fresh.shape[2]):
        out[:, :, f] = wp * out[:, :, f - 1] + wf * fresh[:, :, f]
    return out


def freenoise_noise(prev_noise: torch.Tensor, fresh: torch.Tensor, window: int, reuse: float) -> torch.Tensor:
    """FreeNoise rescheduling: frame j = sqrt(rho) * prev[pi(j)] + sqrt(1 - rho) * fresh_j, pi shuffling
    frames within consecutive windows, each window's order given by sorting its frames by their first
    value (channel 0, pixel 0) of the fresh draw, ties by index."""
    n = fresh.shape[2]
    pi = []
    for start in range(0, n, window):
        frames = list(range(start, min(start + window, n)))
        pi += sorted(frames, key=lambda j: (float(fresh[0, 0, j, 0, 0]), j))
    reused = prev_noise[:, :, pi]
    if reuse == 1:
        return reused.clone()
    return math.sqrt(reuse) * reused + math.sqrt(1 - reuse) * fresh


def dsg_guides(k: int, j: int, m: int, s: int, beta: float) -> bool:
    return 0 <= j < m and k < beta * s * (m - j) / m


@torch.no_grad()
def run(args) -> dict:
    torch.set_num_threads(1)
    pipe = load_pipeline(args.model)
    unet, vae, sched = pipe.unet, pipe.vae, make_scheduler(pipe.scheduler, args.scheduler)
    chain = [c for c in args.chain.split(",") if c]
    n, m, s = args.frames, args.prompt_frames, args.steps
    scale = pipe.vae_scale_factor
    shape = (1, unet.config.in_channels, n, args.height // scale, args.width // scale)

    tape = read_tape(args, shape, args.clips)

    guided, embeds = text_embeddings(pipe, args)

    wp, wf = args.alpha / math.sqrt(1 + args.alpha ** 2), 1 / math.sqrt(1 + args.alpha ** 2)
    out: dict[str, torch.Tensor] = {}
    prev_noise = None
    prev_inputs: list[torch.Tensor] | None = None
    for i in range(args.clips):
        fresh = tape[i]
        noise = fresh.clone()
        if i == 0 and "pyoco" in chain:
            noise = pyoco_prior(fresh, args.pyoco_a)
        if i > 0 and "fnr" in chain:
            noise = prev_noise.flip(2).clone()
        if i > 0 and "freenoise" in chain:
            noise = freenoise_noise(prev_noise, fresh, args.freenoise_window, args.freenoise_reuse)
        if i > 0 and "pns" in chain:
            rev = prev_noise.flip(2)
            noise[:, :, m:] = wp * rev[:, :, m:] + wf * fresh[:, :, m:]
        sched.set_timesteps(s)
        latents = noise * sched.init_noise_sigma
        inputs = []
        for k, t in enumerate(sched.timesteps):
            if i > 0 and "dsg" in chain and args.beta > 0:
                for j in range(m):
                    if dsg_guides(k, j, m, s, args.beta):
                        latents[:, :, j] = prev_inputs[k][:, :, n - 1 - j]
            inputs.append(latents.clone())
            scaled = sched.scale_model_input(latents, t)
            model_in = torch.cat([scaled] * 2) if guided else scaled
            pred = unet(model_in, t, encoder_hidden_states=embeds).sample
            if guided:
                uncond, text = pred.chunk(2)
                pred = uncond + args.guidance * (text - uncond)
            extra = {"eta": 0.0} if args.scheduler == "ddim" else {}
            latents = sched.step(pred, t, latents, **extra).prev_sample
        video = decode_video(vae, latents)  # [1, 3, N, H, W]
        out[f"clip.{i}.initial_noise"] = noise.contiguous()
        out[f"clip.{i}.latents"] = latents.contiguous()
        out[f"clip.{i}.frames"] = video[0].permute(1, 2, 3, 0).contiguous()
        prev_noise, prev_inputs = noise, inputs
    # Euler's timesteps may be fractional; the others' are integers (the DDIM fixtures store ints).
    cast = float if args.scheduler == "euler" else int
    return {"tape": tape, "tensors": out, "timesteps": [cast(t) for t in sched.timesteps]}


def make_scheduler(native, name: str):
    """The model's own DDIM scheduler, or another class configured from its config."""
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler
    if name == "ddim":
        return native
    if name == "dpm++":
        return DPMSolverMultistepScheduler.from_config(native.config, algorithm_type="dpmsolver++", solver_order=2)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(native.config)
    raise SystemExit(f"unknown scheduler {name}")


def main() -> None:
    ap = loop_arguments(__doc__, seed=2024)
    ap.add_argument("--chain", default="fnr,pns,dsg")
    ap.add_argument("--prompt-frames", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=4.0)
    ap.add_argument("--beta", type=float, default=0.4)
    ap.add_argument("--pyoco-a", type=float, default=1.0)
    ap.add_argument("--freenoise-window", type=int, default=4)
    ap.add_argument("--freenoise-reuse", type=float, default=1.0)
    ap.add_argument("--scheduler", choices=["ddim", "dpm++", "euler"], default="ddim")
    args = ap.parse_args()
    r = run(args)
    write_fixture(args, r["tape"], r["tensors"], timesteps=r["timesteps"])
    print(f"wrote {args.out}: {args.clips} clips, chain {args.chain}, timesteps {r['timesteps']}")


def loop_arguments(doc: str, seed: int) -> argparse.ArgumentParser:
    """The options every reference loop takes: model, output, prompts, clips, frames, guidance,
    size, seed and tape."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--prompt", default="a red ball bouncing on grass")
    ap.add_argument("--negative-prompt", default="")
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--frames", type=int, default=6)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--height", type=int, default=16)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--tape", help="replay this tape instead of drawing one")
    return ap


def read_tape(args, shape: tuple, count: int) -> list[torch.Tensor]:
    """`count` standard-normal draws of `shape`: noise.0 … from --tape, else a seeded torch generator."""
    if args.tape:
        tape_file = load_file(args.tape)
        return [tape_file[f"noise.{i}"] for i in range(count)]
    gen = torch.Generator().manual_seed(args.seed)
    return [torch.randn(*shape, generator=gen) for _ in range(count)]


def text_embeddings(pipe, args) -> tuple[bool, torch.Tensor]:
    """(guided, embeddings): [negative, prompt] when guiding, as TextToVideoSDPipeline does."""
    guided = args.guidance > 1
    pos, neg = pipe.encode_prompt(args.prompt, "cpu", 1, guided, args.negative_prompt)
    return guided, torch.cat([neg, pos]) if guided else pos


def write_fixture(args, tape: list[torch.Tensor], tensors: dict[str, torch.Tensor], **settings) -> None:
    """OUT/tape.safetensors (a vidrd noise tape), OUT/reference.safetensors (float32) and
    OUT/reference.json (the command's settings, the model folder relative to OUT, `settings`, versions)."""
    import diffusers
    os.makedirs(args.out, exist_ok=True)
    save_file({f"noise.{i}": t.float().contiguous() for i, t in enumerate(tape)}, os.path.join(args.out, "tape.safetensors"),
              metadata={"format": "vidrd-noise-tape/1", "seed": str(args.seed)})
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, os.path.join(args.out, "reference.safetensors"))
    recorded = {k.replace("-", "_"): v for k, v in vars(args).items() if k not in ("out", "tape", "model")}
    recorded.update(model=os.path.relpath(os.path.abspath(args.model), os.path.abspath(args.out)), **settings,
                    versions={"torch": torch.__version__, "diffusers": diffusers.__version__})
    with open(os.path.join(args.out, "reference.json"), "w") as fh:
        json.dump(recorded, fh, indent=1)


if __name__ == "__main__":
    main()
