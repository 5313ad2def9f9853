/* GEMM throughput: the runtime's kernels (each ISA this CPU has) against OpenBLAS's cblas_sgemm,
 * single-threaded, on the shapes the embedded model's layers use; medians of interleaved runs.
 * Built and run by tools/bench/gemm_bench.sh [REPEATS] [square]. */
#include "vidrd_kernels.h"
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void fill(float *p, long n, unsigned s) {
    for (long i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)((s >> 8) / 16777216.0) - 0.5f;
    }
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int repeats = argc > 1 ? atoi(argv[1]) : 7;
    if (repeats < 1 || repeats > 101) repeats = 7;
    openblas_set_num_threads(1);
    /* m = rows (pixels x frames), n = output channels, k = input (x 9 for im2col), C = A * B^T. */
    static const long shapes[][3] = {
        {2048, 64, 64}, {2048, 128, 128}, {2048, 64, 576}, {512, 128, 1152},
        {256, 256, 256}, {1024, 1024, 1024}, {64, 64, 16},
    };
    /* "square": only the 1024-cube, the ceiling tools/bench/run.sh reports GFLOP/s against. */
    const int square_only = argc > 2 && strcmp(argv[2], "square") == 0;
    const int first = square_only ? 5 : 0;
    const int nshapes = square_only ? 6 : (int)(sizeof shapes / sizeof shapes[0]);
    const int isa_max = vidrd_isa_supported();
    printf("{\"isa_supported\": %d, \"repeats\": %d}\n", isa_max, repeats);
    for (int s = first; s < nshapes; s++) {
        long m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * n * k), *c = malloc(sizeof(float) * m * n);
        fill(a, m * k, 1);
        fill(b, n * k, 2);
        double flops = 2.0 * m * n * k;
        int inner = (int)(2e8 / flops) + 1;
        double t[3][101];
        for (int r = 0; r < repeats; r++) {
            for (int which = 0; which <= isa_max; which++) {
                double t0 = now();
                for (int i = 0; i < inner; i++) {
                    if (which == 0)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1, a, (int)k, b, (int)k, 0, c, (int)n);
                    else
                        vidrd_sgemm((vidrd_isa)which, 0, 1, m, n, k, 1, a, k, b, k, 0, c, n);
                }
                t[which][r] = (now() - t0) / inner;
            }
        }
        for (int which = 0; which <= isa_max; which++) {
            qsort(t[which], (size_t)repeats, sizeof(double), cmp);
            printf("{\"m\": %ld, \"n\": %ld, \"k\": %ld, \"impl\": \"%s\", \"gflops\": %.1f}\n", m, n, k,
                   which == 0 ? "openblas" : which == 1 ? "vidrd-avx2" : "vidrd-avx512",
                   flops / t[which][repeats / 2] * 1e-9);
        }
        free(a);
        free(b);
        free(c);
    }
    return 0;
}
