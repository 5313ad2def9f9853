#!/usr/bin/env bash
# GEMM kernels against OpenBLAS, single-threaded, medians: bash tools/bench/gemm_bench.sh [REPEATS] [square]
# (square: only the 1024-cube, which tools/bench/run.sh uses as this machine's ceiling)
# Needs clang (the Swift toolchain's) and libopenblas-dev. Run on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
k=Sources/CVidrdKernels
clang -O2 -I"$k/include" -I"$k" tools/bench/gemm_bench.c "$k"/*.c $(pkg-config --cflags --libs openblas) -lm -lpthread -o "$out/gemm_bench"
"$out/gemm_bench" "${1:-7}" ${2:+"$2"}
