"""PyTorch CPU baselines for the Swift runtime benchmarks: eager fp32, bf16 autocast, torch.compile.

    nice -n 5 /work/venv/bin/python tools/bench/bench_torch.py [--mode eager|bf16|compile] [--threads 2]
        [--repeats 5] [--only unet_b2f16_8x8 unet_b2f16_16x16 pipeline_25steps_64px] [--model small]

Builds (once, seeded random weights, cached under /work/bench-models/<model>/ in diffusers layout,
not committed) a text-to-video model and times, with torch.set_num_threads(N):
  unet_b2f16_8x8     one UNet3DConditionModel forward, batch 2 (CFG) x 16 frames, 8x8 latents
  unet_b2f16_16x16   the same at 16x16 latents
  pipeline_25steps_64px   TextToVideoSDPipeline, 25 DDIM steps, guidance 7.5, 16 frames, 64x64 px
                          (output_type="latent") + temporal VAE decode of the 16 frames
  pipeline_25steps_128px  the same at 128x128 px (not in the default set; ask with --only)
Modes (--mode; every line carries "mode" and "impl": "torch-<mode>"):
  eager    fp32 weights and activations, plain eager execution (the default; the original baseline).
  bf16     the same fp32 model run under torch.autocast("cpu", dtype=torch.bfloat16), so convolutions and
           matmuls (oneDNN) run in bf16. One extra untimed pass before the warm-up counts the dtypes the
           heavy ops (convolution, mm/addmm/bmm/baddbmm, scaled-dot-product attention) actually ran with,
           reported as "op_dtypes", plus "out_dtype" (the dtype of the U-Net output / decoded video).
  compile  fp32, torch.compile (default inductor backend) of the U-Net, and for the pipeline also of the
           temporal VAE decoder (TemporalAutoencoderKL._run_decoder, which walks vae.decoder's blocks
           itself, so compiling vae.decoder would change nothing). Two untimed warm-ups: the first compiles
           ("compile_s": its wall time minus the median; "warmup_s": both wall times); shapes are fixed,
           so nothing recompiles ("graphs", "graph_breaks", "recompiles_in_timing" say so). Each run
           compiles cold, in a fresh TORCHINDUCTOR_CACHE_DIR removed afterwards. If compiling fails (no C++
           compiler, an inductor error), the line carries "error" instead of timings.
Each benchmark runs in its own subprocess (so peak RSS is its own): warm-up, then the median of
--repeats runs. Prints one JSON object per line: {name, impl, mode, median_s, peak_rss_mb, ...}, or
{name, impl, mode, error} for a benchmark that failed; exits 1 if any did.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "reference")
sys.path.insert(0, os.path.abspath(REF))

MODELS_ROOT = os.environ.get("VIDRD_BENCH_MODELS", "/work/bench-models")

MODELS = {
    # DESIGN.md section 4 baseline: (64,128,128), 1 layer/block, cross-attn 128 -> 10.7 M UNet params
    "small": dict(
        seed=4242,
        unet=dict(
            block_out_channels=(64, 128, 128), layers_per_block=1,
            down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
            attention_head_dim=8, cross_attention_dim=128, norm_num_groups=32,
            in_channels=4, out_channels=4, sample_size=8,
        ),
        # 4 levels: scale factor 8, so 8x8 latents = 64x64 px and 16x16 = 128x128
        vae=dict(
            block_out_channels=(32, 64, 128, 128), layers_per_block=1, latent_channels=4, norm_num_groups=32,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
            sample_size=64, scaling_factor=0.18215, add_temp_conv=True,
        ),
        text=dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
                  hidden_act="quick_gelu", max_position_embeddings=77),
        scheduler=dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                       timestep_spacing="leading", steps_offset=1, set_alpha_to_one=False,
                       prediction_type="epsilon", clip_sample=False),
    ),
}
# DESIGN.md quotes 10.7 M parameters for this UNet; with attention_head_dim 8 it has 9.48 M, with 32
# it has 10.74 M, so the DESIGN.md figure was most likely measured with head dim 32.
MODELS["small-hd32"] = {**MODELS["small"], "unet": {**MODELS["small"]["unet"], "attention_head_dim": 32}}

BENCHES = {
    "unet_b2f16_8x8": dict(kind="unet", frames=16, latent=8),
    "unet_b2f16_16x16": dict(kind="unet", frames=16, latent=16),
    "pipeline_25steps_64px": dict(kind="pipeline", frames=16, latent=8, steps=25),
    "pipeline_25steps_128px": dict(kind="pipeline", frames=16, latent=16, steps=25),
}
DEFAULT_BENCHES = ["unet_b2f16_8x8", "unet_b2f16_16x16", "pipeline_25steps_64px"]
MODES = ("eager", "bf16", "compile")
PROMPT = "a red fox running through fresh snow, cinematic"


def ensure_model(name: str) -> str:
    """Build the model folder once (seeded random weights)."""
    import torch

    model_dir = os.path.join(MODELS_ROOT, name)
    if os.path.isfile(os.path.join(model_dir, "model_index.json")):
        return model_dir
    import diffusers
    from diffusers import DDIMScheduler, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    import clip_tokenizer
    from make_fixtures import randomize_
    from temporal_vae import TemporalAutoencoderKL

    cfg = MODELS[name]
    tmp = model_dir + ".partial"
    os.makedirs(tmp, exist_ok=True)
    gen = torch.Generator().manual_seed(cfg["seed"])
    vocab = clip_tokenizer.write_tokenizer(os.path.join(tmp, "tokenizer"))
    tcfg = CLIPTextConfig(vocab_size=vocab, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
                          projection_dim=cfg["text"]["hidden_size"], **cfg["text"])
    te = CLIPTextModel(tcfg).eval()
    randomize_(te, gen)
    te.save_pretrained(os.path.join(tmp, "text_encoder"))
    unet = UNet3DConditionModel(**cfg["unet"]).eval()
    randomize_(unet, gen)
    unet.save_pretrained(os.path.join(tmp, "unet"))
    vae = TemporalAutoencoderKL(**cfg["vae"]).eval()
    randomize_(vae, gen)
    vae.save_pretrained(os.path.join(tmp, "vae"))
    DDIMScheduler(num_train_timesteps=1000, **cfg["scheduler"]).save_pretrained(os.path.join(tmp, "scheduler"))
    with open(os.path.join(tmp, "model_index.json"), "w") as fh:
        json.dump({
            "_class_name": "TextToVideoSDPipeline", "_diffusers_version": diffusers.__version__,
            "scheduler": ["diffusers", "DDIMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet3DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        }, fh, indent=2)
    os.replace(tmp, model_dir)
    return model_dir


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def heavy_op_dtypes(fn):
    """Run fn() once, counting by dtype of their first tensor argument the heavy aten ops it dispatched
    (after autocast): {"conv": {"bfloat16": n}, "matmul": {...}, "attention": {...}}."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    groups = {"convolution": "conv", "mm": "matmul", "addmm": "matmul", "bmm": "matmul", "baddbmm": "matmul"}
    counts: dict = {}

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.overloadpacket.__name__
            group = groups.get(name) or ("attention" if "scaled_dot_product" in name else None)
            x = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if group and x is not None:
                per = counts.setdefault(group, {})
                key = str(x.dtype).replace("torch.", "")
                per[key] = per.get(key, 0) + 1
            return func(*args, **(kwargs or {}))

    with Count():
        out = fn()
    return out, counts


def run_one(bench: str, model: str, threads: int, repeats: int, mode: str) -> dict:
    import torch

    torch.set_num_threads(threads)  # before torch.compile: inductor's C++ kernels take it at codegen
    from refpipe import decode_video, load_components, load_pipeline, run_latents

    model_dir = ensure_model(model)
    spec = BENCHES[bench]
    gen = torch.Generator().manual_seed(0)
    times = []
    extra = {}
    with torch.no_grad():
        if spec["kind"] == "unet":
            unet = load_components(model_dir)["unet"]
            c, f, s = unet.config.in_channels, spec["frames"], spec["latent"]
            sample = torch.randn(2, c, f, s, s, generator=gen)
            enc = torch.randn(2, 77, unet.config.cross_attention_dim, generator=gen)
            t = torch.tensor(500)
            extra["params_m"] = round(sum(p.numel() for p in unet.parameters()) / 1e6, 2)
            if mode == "compile":
                unet = torch.compile(unet)
                extra["compiled"] = ["unet"]

            def call():
                return unet(sample, t, encoder_hidden_states=enc).sample
        else:
            pipe = load_pipeline(model_dir)
            c, f, s = pipe.unet.config.in_channels, spec["frames"], spec["latent"]
            noise = torch.randn(1, c, f, s, s, generator=gen)
            if mode == "compile":
                pipe.unet = torch.compile(pipe.unet)
                pipe.vae._run_decoder = torch.compile(pipe.vae._run_decoder)
                extra["compiled"] = ["unet", "vae_decoder"]

            def call():
                lat = run_latents(pipe, noise, PROMPT, "", spec["steps"], 7.5)
                return decode_video(pipe.vae, lat)

        if mode == "bf16":
            fp32_call = call

            def call():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return fp32_call()

            out, extra["op_dtypes"] = heavy_op_dtypes(call)  # untimed, before the warm-up
            extra["out_dtype"] = str(out.dtype).replace("torch.", "")
        warmup_s = []
        for _ in range(2 if mode == "compile" else 1):  # first-touch page faults, thread pools; compiling
            t0 = time.perf_counter()
            out = call()
            warmup_s.append(time.perf_counter() - t0)
        if mode == "compile":
            from torch._dynamo.utils import counters

            graphs = counters["stats"]["unique_graphs"]
            extra["graphs"] = graphs
            extra["graph_breaks"] = sum(counters["graph_break"].values())
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = call()
            times.append(time.perf_counter() - t0)
        if spec["kind"] == "pipeline":
            extra["video_shape"] = list(out.shape)
    median = statistics.median(times)
    if mode == "compile":
        extra["recompiles_in_timing"] = counters["stats"]["unique_graphs"] - graphs
        extra["warmup_s"] = [round(x, 3) for x in warmup_s]
        extra["compile_s"] = round(warmup_s[0] - median, 3)
        extra["backend"] = "inductor"
    return {
        "name": bench,
        "impl": f"torch-{mode}",
        "mode": mode,
        "model": model,
        "threads": threads,
        "repeats": repeats,
        "median_s": round(median, 4),
        "times_s": [round(x, 4) for x in times],
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **extra,
    }


def error_line(bench: str, mode: str, why: str) -> str:
    return json.dumps({"name": bench, "impl": f"torch-{mode}", "mode": mode, "error": why})


def describe(e: BaseException, mode: str) -> str:
    """A short one-line reason (inductor errors carry pages of compiler output)."""
    lines = [x.strip() for x in str(e).splitlines() if x.strip()]
    why = f"{type(e).__name__}: {' | '.join(lines[:3])}"[:600]
    return f"torch.compile (inductor) failed: {why}" if mode == "compile" else why


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="eager", choices=MODES)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", "-k", type=int, default=5, help="timed runs after the warm-up (median)")
    ap.add_argument("--model", default="small", choices=sorted(MODELS))
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES))
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    benches = args.only or DEFAULT_BENCHES
    if args.in_process:
        failed = False
        for b in benches:
            try:
                print(json.dumps(run_one(b, args.model, args.threads, args.repeats, args.mode)), flush=True)
            except Exception as e:  # noqa: BLE001 -- reported as a JSON line, traceback on stderr
                traceback.print_exc()
                print(error_line(b, args.mode, describe(e, args.mode)), flush=True)
                failed = True
        sys.exit(1 if failed else 0)
    ensure_model(args.model)  # build once, outside the timed subprocesses
    failed = False
    for b in benches:
        cmd = [sys.executable, os.path.abspath(__file__), "--in-process", "--only", b, "--model", args.model,
               "--threads", str(args.threads), "--repeats", str(args.repeats), "--mode", args.mode]
        env = dict(os.environ)
        cache = None
        if args.mode == "compile":  # a cold compile every time: compile_s does not depend on earlier runs
            cache = tempfile.mkdtemp(prefix="vidrd-bench-inductor-")
            env["TORCHINDUCTOR_CACHE_DIR"] = cache
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        finally:
            if cache:
                shutil.rmtree(cache, ignore_errors=True)
        lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
        if r.returncode != 0:
            failed = True
            sys.stderr.write(r.stderr[-4000:])
            if not (lines and "error" in json.loads(lines[-1])):
                lines = [error_line(b, args.mode, f"exit {r.returncode}")]
        print(lines[-1], flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
