#!/usr/bin/env python3
"""Reference trajectories for the Swift DPMSolverMultistepScheduler and EulerDiscreteScheduler.

    /work/venv/bin/python tools/reference/make_scheduler_fixtures.py
    (any Python with torch and diffusers 0.42; writes Tests/Fixtures/schedulers/<name>/)

Each <name>/ holds the scheduler_config.json diffusers itself saves (so the Swift side reads the
real file, "-Infinity" included) and reference.json: for each step count the timesteps, the
sigmas, and a whole sampling loop driven by a fake model, so that a multistep solver's history
is exercised and not only a single step. The fake model is deterministic and cheap:

    model_output = tanh(model_input * 0.7 + t / 1000)        (fp32, t as a Python float)

where model_input is scale_model_input(sample, t) (the identity for DPM-Solver). The loop starts
from latents = randn([1, 2, 3, 2, 2], seed 0) * init_noise_sigma, as diffusers' pipelines do.
The tests never run Python: CI reads these committed files.
"""
import json
import math
import pathlib

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests" / "Fixtures" / "schedulers"
SHAPE = [1, 2, 3, 2, 2]


def fake_model(x, t):
    return torch.tanh(x * 0.7 + float(t) / 1000)


def floats(t):
    return [float(v) for v in t.reshape(-1).tolist()]


def run(scheduler, steps, noise):
    scheduler.set_timesteps(steps)
    init_sigma = float(scheduler.init_noise_sigma)
    sample = noise * scheduler.init_noise_sigma
    latents, inputs = [], []
    for t in scheduler.timesteps:
        x = scheduler.scale_model_input(sample, t)
        inputs.append(floats(x))
        sample = scheduler.step(fake_model(x, t), t, sample).prev_sample
        latents.append(floats(sample))
    out = {
        "steps": steps,
        "timesteps": [float(v) for v in scheduler.timesteps.tolist()],
        "sigmas": floats(scheduler.sigmas),
        "init_noise_sigma": init_sigma,
        "latents": latents,
    }
    # DPM-Solver's scale_model_input is the identity: its inputs would repeat the latents.
    if isinstance(scheduler, EulerDiscreteScheduler):
        out["model_inputs"] = inputs
    return out


def write(name, scheduler, step_counts):
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    scheduler.save_config(d)
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
    ref = {
        "class_name": type(scheduler).__name__,
        "shape": SHAPE,
        "noise": floats(noise),
        "runs": [run(scheduler, n, noise) for n in step_counts],
    }
    (d / "reference.json").write_text(json.dumps(ref, separators=(",", ":")) + "\n")
    print(name, step_counts)


def main():
    embedded = DDIMScheduler.from_pretrained(ROOT / "Models" / "vidrd-tiny", subfolder="scheduler").config
    modelscope = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                      timestep_spacing="leading", steps_offset=1)
    all_steps = [1, 2, 8, 10, 15, 25]

    write("dpm-embedded", DPMSolverMultistepScheduler.from_config(embedded), all_steps)
    write("dpm-embedded-order1", DPMSolverMultistepScheduler.from_config(embedded, solver_order=1), [1, 2, 8, 25])
    write("dpm-modelscope-vpred", DPMSolverMultistepScheduler(**modelscope, prediction_type="v_prediction"),
          [2, 10, 25])
    write("dpm-trailing-vpred", DPMSolverMultistepScheduler(
        **{**modelscope, "timestep_spacing": "trailing", "steps_offset": 0}, prediction_type="v_prediction"),
        [1, 8, 15, 25])
    # diffusers' own defaults: linear betas, linspace spacing.
    write("dpm-linspace-heun", DPMSolverMultistepScheduler(solver_type="heun"), [1, 2, 8, 15])
    write("dpm-cosine-sample", DPMSolverMultistepScheduler(
        beta_schedule="squaredcos_cap_v2", prediction_type="sample", timestep_spacing="trailing"), [2, 10])

    write("euler-embedded", EulerDiscreteScheduler.from_config(embedded), all_steps)
    write("euler-trailing-vpred", EulerDiscreteScheduler(
        **{**modelscope, "timestep_spacing": "trailing", "steps_offset": 0}, prediction_type="v_prediction"),
        [1, 8, 25])
    # linspace gives non-integer timesteps (999/7 apart for 8 steps): exercises the interpolation.
    write("euler-linspace", EulerDiscreteScheduler(), [1, 8, 10, 15, 25])
    write("euler-modelscope-vpred", EulerDiscreteScheduler(**modelscope, prediction_type="v_prediction"), [2, 10])


if __name__ == "__main__":
    main()
