"""The BENCHMARKS.md table from the JSON lines of one tools/bench/run.sh run.

    THREADS=2 python tools/bench/report.py FILE.jsonl...

Reads every line of every file and sorts it by its keys: bench_torch.py lines ("impl": "torch-<mode>";
a line without "impl" is an older eager one), vidrd-bench lines ("impl": "swift", "precision" fp32 when
absent), flops.py lines ("gflop") and gemm_bench.sh lines ("impl", "gflops", m = n = k: the square ones).
Lines with "error" become notes under the table. Missing values print n/a.
"""
import json
import os
import sys

DESIGN_CEILING = 450.0  # shared/DESIGN.md section 4: this CPU's AVX-512 fp32 ceiling, 2 threads
TORCH_MODES = ("eager", "bf16", "compile")

torch = {m: {} for m in TORCH_MODES}
swift = {"fp32": {}, "bf16": {}}
flops, gemm, notes = {}, [], []
order = {}  # benchmarks in the order they first appear
for path in sys.argv[1:]:
    for line in open(path):
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        if "gflops" in d:  # gemm_bench.sh
            if d["m"] == d["n"] == d["k"]:
                gemm.append(d)
            continue
        if "gflop" in d:  # flops.py
            flops[d["name"]] = d["gflop"]
            continue
        if "name" not in d and "error" not in d:  # gemm_bench.sh's header
            continue
        impl = d.get("impl", "torch-eager")
        if "name" in d:
            order.setdefault(d["name"])
        if "error" in d:
            what = " ".join(x for x in (impl, d.get("precision"), d.get("name")) if x)
            notes.append(f"{what}: {d['error']}")
        elif impl.startswith("torch-"):
            torch[d.get("mode", impl[len("torch-"):])][d["name"]] = d
        elif impl == "swift":
            swift[d.get("precision", "fp32")][d["name"]] = d

threads = int(os.environ.get("THREADS", "2"))


def ceiling(lines):
    """threads x the best single-threaded 1024^3 sgemm among `lines`, and which impl it was."""
    best = max(lines, key=lambda d: d["gflops"], default=None)
    return (threads * best["gflops"], best) if best else (None, None)


measured, best = ceiling(gemm)
openblas, ob = ceiling([d for d in gemm if d["impl"] == "openblas"])
if measured:
    print(f"fp32 ceiling (measured): {threads} x {best['gflops']:.0f} GFLOP/s, the best single-threaded "
          f"{best['m']}^3 sgemm of this run ({best['impl']}) = {measured:.0f} GFLOP/s")
else:
    print("fp32 ceiling (measured): n/a (no gemm_bench.sh square lines)")
print(f"for reference: OpenBLAS only {threads} x {ob['gflops']:.0f} = {openblas:.0f} GFLOP/s; " if openblas else
      "for reference: OpenBLAS only n/a; ", end="")
print(f"DESIGN.md's AVX-512 fp32 ceiling of this CPU {DESIGN_CEILING:.0f} GFLOP/s")


def sec(d):
    return d.get("median_s") if d else None


def fmt(v, spec=".3f", suffix=""):
    return f"{v:{spec}}{suffix}" if isinstance(v, (int, float)) else "n/a"


def pct(rate, ceil):
    return f"{100 * rate / ceil:.0f}%" if rate and ceil else "n/a"


print()
print("| benchmark | PyTorch eager s | PyTorch bf16 s | PyTorch compile s | Swift fp32 s | Swift bf16 s "
      "| Swift fp32 ÷ eager | Swift bf16 ÷ fastest PyTorch | Swift fp32 GFLOP/s | % of ceiling: measured / 450 "
      "| peak RSS MB eager / Swift fp32 |")
print("|" + " --- |" * 11)
for name in order:
    t = {m: sec(torch[m].get(name)) for m in TORCH_MODES}
    s32, s16 = sec(swift["fp32"].get(name)), sec(swift["bf16"].get(name))
    fastest = min(((v, m) for m, v in t.items() if v), default=None)
    vs_eager = fmt(t["eager"] / s32 if t["eager"] and s32 else None, ".2f", "x")
    vs_fastest = f"{fastest[0] / s16:.2f}x (vs {fastest[1]})" if fastest and s16 else "n/a"
    g = flops.get(name)
    rate = g / s32 if g and s32 else None
    rss = lambda d: fmt((d or {}).get("peak_rss_mb"), ".0f")
    print(f"| {name} | {fmt(t['eager'])} | {fmt(t['bf16'])} | {fmt(t['compile'])} | {fmt(s32)} | {fmt(s16)} "
          f"| {vs_eager} | {vs_fastest} | {fmt(rate, '.0f')} | {pct(rate, measured)} / {pct(rate, DESIGN_CEILING)} "
          f"| {rss(torch['eager'].get(name))} / {rss(swift['fp32'].get(name))} |")
for name in order:
    d = torch["compile"].get(name, {})
    if "compile_s" in d:
        notes.append(f"torch-compile {name}: compile time {d['compile_s']:.1f} s (not timed), {d.get('graphs', 'n/a')} "
                     f"graph(s), {d.get('recompiles_in_timing', 'n/a')} recompiles while timed")
    d = torch["bf16"].get(name, {})
    if "op_dtypes" in d:
        ops = [(dtype, n) for per in d["op_dtypes"].values() for dtype, n in per.items()]
        notes.append(f"torch-bf16 {name}: {sum(n for k, n in ops if k == 'bfloat16')} of {sum(n for _, n in ops)} "
                     f"conv/matmul/attention calls ran in bf16, output {d.get('out_dtype', 'n/a')}")
if notes:
    print("\nnotes:")
    for n in notes:
        print(f"- {n}")
