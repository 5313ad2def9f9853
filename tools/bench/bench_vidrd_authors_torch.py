"""One guided forward of the VidRD authors' own U-Net in PyTorch (eager fp32), at vidrd-bench's
shape (2 x 16 frames of 32x32 latents), on the fake full-size download that
tools/reference/make_vidrd_fullsize.py leaves in --src. Prints one JSON line (docs/RUNTIME.md,
"Expected memory and speed"):

    VIDRD_AUTHORS_CODE=/path/to/ReuseAndDiffuse /work/venv/bin/python tools/bench/bench_vidrd_authors_torch.py
"""
import argparse
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
import make_vidrd_fullsize  # noqa: E402,F401  (sets the full-size configurations)
import make_vidrd_authors_fixture as fixture  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", default="/work/runs/vidrd-fullsize-src")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    UNet, _, _, _ = fixture.import_authors()
    t0 = time.time()
    unet = UNet(**fixture.UNET, **fixture.FLAGS).eval()
    fixture.lightning_attribute_dict()  # the checkpoint pickles Lightning's AttributeDict
    state = torch.load(os.path.join(args.src, "ModelT2V.pth"), weights_only=False)["state_dict"]
    unet.load_state_dict({k[len("unet."):]: v for k, v in state.items() if k.startswith("unet.")})
    del state
    load = time.time() - t0
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 4, 16, 32, 32, generator=g)
    text = torch.randn(2, 77, 1024, generator=g)
    times = []
    with torch.no_grad():
        for _ in range(args.repeats):
            t = time.time()
            unet(x, torch.tensor([500, 500]), encoder_hidden_states=text)
            times.append(round(time.time() - t, 2))
    print(json.dumps({"name": "unet_b2f16_32x32", "impl": "torch", "load_s": round(load, 1), "times_s": times,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
