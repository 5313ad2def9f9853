"""Pairs Swift and PyTorch benchmark JSON lines into the BENCHMARKS.md table."""
import json, sys

import os

# Without a measured figure: cblas_sgemm n=2048 on 2 threads of the machine of shared/DESIGN.md.
SGEMM_CEILING = 177.0

def load(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            out[d["name"]] = d
    return out

torch, swift, flops = (load(p) for p in sys.argv[1:4])
ceiling_note = f"DESIGN.md's {SGEMM_CEILING:.0f} GFLOP/s"
if len(sys.argv) > 4:
    # The 4th file: tools/bench/gemm_bench.c "square" lines, single-threaded; scale by the threads.
    rates = [json.loads(l)["gflops"] for l in open(sys.argv[4]) if l.startswith("{") and "gflops" in l]
    if rates:
        threads = int(os.environ.get("THREADS", "2"))
        SGEMM_CEILING = max(rates) * threads
        ceiling_note = f"{threads} x the best single-threaded 1024^3 sgemm of this run = {SGEMM_CEILING:.0f} GFLOP/s"
print(f"sgemm ceiling: {ceiling_note}")
print("| benchmark | PyTorch s | Swift s | speed-up (PyTorch / Swift) | Swift GFLOP/s (% of sgemm ceiling) | peak RSS MB PyTorch / Swift |")
print("| --- | --- | --- | --- | --- | --- |")
for name in sorted(set(torch) | set(swift)):
    t, s = torch.get(name, {}), swift.get(name, {})
    ts, ss = t.get("median_s"), s.get("median_s")
    ratio = f"{ts / ss:.2f}x" if ts and ss else "n/a"
    g = flops.get(name, {}).get("gflop")
    rate = f"{g / ss:.0f} ({100 * g / ss / SGEMM_CEILING:.0f}%)" if g and ss else "n/a"
    fmt = lambda v: f"{v:.3f}" if isinstance(v, (int, float)) else "n/a"
    print(f"| {name} | {fmt(ts)} | {fmt(ss)} | {ratio} | {rate} | {t.get('peak_rss_mb', 'n/a')} / {s.get('peak_rss_mb', 'n/a')} |")
