"""Pairs Swift and PyTorch benchmark JSON lines into the BENCHMARKS.md table."""
import json, sys

SGEMM_CEILING = 177.0  # GFLOP/s, cblas_sgemm n=2048 on 2 threads (shared/DESIGN.md section 4)

def load(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            d = json.loads(line)
            out[d["name"]] = d
    return out

torch, swift, flops = (load(p) for p in sys.argv[1:4])
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
