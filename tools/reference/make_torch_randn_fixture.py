"""Values of PyTorch's CPU generator for TorchRandomSource's tests (Tests/Fixtures/torch-randn).

    /work/venv/bin/python tools/reference/make_torch_randn_fixture.py

Each case is a sequence of draws from one torch.Generator().manual_seed(seed): randn of a shape
(sizes below 16 take torch's scalar path, others the vectorised one; sizes not a multiple of 16
exercise the redrawn last block), saved as draw tensors "SEED.K". Also prints the first values of
seed 0 as bit patterns for the pinned literals in RandomSourceTests.
"""
import json
import os

import torch
from safetensors.torch import save_file

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(REPO, "Tests", "Fixtures", "torch-randn")
CASES = {0: [[16], [1000], [5], [3], [4, 1, 8, 8], [33]], 42: [[1, 4, 16, 32, 32]], 2**32 + 7: [[17], [2]]}


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors, meta = {}, {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cases": []}
    for seed, shapes in CASES.items():
        g = torch.Generator().manual_seed(seed)
        for k, shape in enumerate(shapes):
            tensors[f"{seed}.{k}"] = torch.randn(shape, generator=g)
        meta["cases"].append({"seed": seed, "shapes": shapes})
    save_file(tensors, os.path.join(OUT, "reference.safetensors"))
    with open(os.path.join(OUT, "reference.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    first = tensors["0.0"][:4]
    print(meta["cpu_capability"], [hex(v) for v in first.view(torch.int32).tolist()], first.tolist())


if __name__ == "__main__":
    main()
