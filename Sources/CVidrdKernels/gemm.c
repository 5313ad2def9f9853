/* The GEMM driver: cache blocking and packing around an ISA's micro-kernel (the BLIS loop
 * order: columns of B, then k, then rows of A, then tiles), and the scalar reference. */
#include "vidrd_kernels.h"
#include "gemm_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define ALIGNMENT 64

/* ---- Per-thread packing scratch ------------------------------------------------------------
 * Packed panels are rebuilt on every call; keeping one growing buffer per thread avoids a
 * page-faulting allocation per call (glibc maps large blocks fresh) without sharing anything
 * between threads. The key's destructor frees a thread's buffer when the thread ends. */

typedef struct {
    float *data;
    size_t capacity; /* floats */
} scratch_buffer;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ready = 0;

static void scratch_release(void *value) {
    scratch_buffer *s = value;
    if (s) {
        free(s->data);
        free(s);
    }
}

static void scratch_make_key(void) {
    scratch_key_ready = pthread_key_create(&scratch_key, scratch_release) == 0;
}

float *vidrd_gemm_scratch(size_t count) {
    pthread_once(&scratch_once, scratch_make_key);
    if (!scratch_key_ready) return NULL;
    scratch_buffer *s = pthread_getspecific(scratch_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || pthread_setspecific(scratch_key, s) != 0) {
            free(s);
            return NULL;
        }
    }
    if (s->capacity < count) {
        void *p = NULL;
        size_t bytes = (count * sizeof(float) + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
        if (posix_memalign(&p, ALIGNMENT, bytes) != 0) return NULL;
        free(s->data);
        s->data = p;
        s->capacity = bytes / sizeof(float);
    }
    return s->data;
}

/* ---- Packing ------------------------------------------------------------------------------ */


/* Rows i0..i0+rows of op(A), k range p0..p0+kc, into panels of mr rows, k-major; rows past the
 * end are zero. */
static void pack_a(const float *a, long lda, int trans, long i0, long rows, long p0, long kc,
                   int mr, float *dst) {
    for (long r = 0; r < rows; r += mr) {
        long h = rows - r < mr ? rows - r : mr;
        float *panel = dst + r * kc;
        for (long ii = 0; ii < h; ii++) {
            long i = i0 + r + ii;
            if (!trans) {
                const float *src = a + i * lda + p0;
                for (long p = 0; p < kc; p++) panel[p * mr + ii] = src[p];
            } else {
                const float *src = a + p0 * lda + i;
                for (long p = 0; p < kc; p++) panel[p * mr + ii] = src[p * lda];
            }
        }
        for (long ii = h; ii < mr; ii++)
            for (long p = 0; p < kc; p++) panel[p * mr + ii] = 0.0f;
    }
}

/* Columns j0..j0+cols of op(B), k range p0..p0+kc, into panels of nr columns, k-major; columns
 * past the end are zero. alpha is folded in here (B is packed anyway, A is often read in place),
 * so the micro-kernels only ever multiply-add. */
static void pack_b(const float *b, long ldb, int trans, long p0, long kc, long j0, long cols,
                   int nr, float alpha, float *dst) {
    for (long c = 0; c < cols; c += nr) {
        long w = cols - c < nr ? cols - c : nr;
        float *panel = dst + c * kc;
        if (trans) {
            /* B is stored as its transpose (weights [out][in]): read each column's row once. */
            for (long jj = 0; jj < w; jj++) {
                const float *src = b + (j0 + c + jj) * ldb + p0;
                if (alpha == 1.0f)
                    for (long p = 0; p < kc; p++) panel[p * nr + jj] = src[p];
                else
                    for (long p = 0; p < kc; p++) panel[p * nr + jj] = alpha * src[p];
            }
        } else {
            for (long p = 0; p < kc; p++) {
                const float *src = b + (p0 + p) * ldb + j0 + c;
                if (alpha == 1.0f)
                    memcpy(panel + p * nr, src, (size_t)w * sizeof(float));
                else
                    for (long jj = 0; jj < w; jj++) panel[p * nr + jj] = alpha * src[jj];
            }
        }
        if (w < nr)
            for (long p = 0; p < kc; p++)
                for (long jj = w; jj < nr; jj++) panel[p * nr + jj] = 0.0f;
    }
}

/* ---- Driver ------------------------------------------------------------------------------- */

/* Where block (jc, pc) of a whole pre-packed B starts: blocks follow the driver's loop order
 * (columns of B outer, k inner), each round_up(ncur, nr) x kcur, and nc is a multiple of nr, so
 * every earlier block of columns holds exactly jc columns' worth of k. */
static inline size_t packed_block_offset(const gemm_kernel_shape *s, long k, long jc, long ncur, long pc) {
    return (size_t)jc * (size_t)k + (size_t)round_up(ncur, s->nr) * (size_t)pc;
}

void vidrd_gemm_scale_c(long m, long n, float beta, float *c, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : (beta == 1.0f ? c[i * ldc + j] : beta * c[i * ldc + j]);
}

/* Where B comes from: packed per call from b (neither pointer set), or already packed for this
 * kernel shape (alpha 1) by vidrd_pack_b (floats) or vidrd_pack_b_half (halves, of half_format);
 * b, ldb and trans_b are then unused. */
typedef struct {
    const float *floats;
    const unsigned short *halves;
    int half_format;
    /* >= 0: halves holds the nine packed 3x3 taps of a conv (each tap_stride values), and B is
     * its Winograd-transformed weight at this position, computed panel by panel. */
    int winograd_position;
    long tap_stride;
} prepacked_b;

static int gemm_blocked(const gemm_kernel_shape *s, int trans_a, int trans_b, long m, long n, long k,
                        float alpha, const float *a, long lda, const float *b, long ldb, float beta,
                        float *c, long ldc, prepacked_b pre) {
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) {
        vidrd_gemm_scale_c(m, n, beta, c, ldc);
        return 0;
    }
    const int mr = s->mr, nr = s->nr;
    /* A row-major A is read in place: packing it would copy all of A once per block of columns,
     * which costs as much as the multiply when n is small (64-128 channels). Only the last,
     * partial tile of rows is packed, to pad it with zeros. */
    const int a_in_place = !trans_a;
    const long kc_max = k < s->kc ? k : s->kc;
    const long nc_max = round_up(n < s->nc ? n : s->nc, nr);
    const long mc_max = a_in_place ? mr : round_up(m < s->mc ? m : s->mc, mr);
    const int prepacked = pre.floats || pre.halves;
    const size_t b_size = prepacked ? 0 : (size_t)(kc_max * nc_max);
    const size_t a_size = (size_t)(kc_max * mc_max);
    const size_t tile = (size_t)(mr * nr);
    /* Halves are widened one panel (kc x nr) at a time, just before the tiles that read it: the
     * panel stays in L1, and no fp32 copy of the weight exists beyond it. */
    const size_t wide_size = pre.halves ? (size_t)(kc_max * nr) : 0;
    /* The widened panel is read with aligned loads, as packed panels are: start it on 64 bytes. */
    const size_t wide_at = (size_t)round_up((long)(b_size + a_size + tile), ALIGNMENT / sizeof(float));
    float *scratch = vidrd_gemm_scratch(wide_at + wide_size);
    if (!scratch) return -1;
    float *bp = scratch, *ap = scratch + b_size, *edge = ap + a_size, *wide = scratch + wide_at;
    const unsigned short *hp = NULL;
    const int first_start = beta == 0.0f ? GEMM_START_ZERO : (beta == 1.0f ? GEMM_START_C : GEMM_START_BETA);
    const long m_full = m / mr * mr;

    for (long jc = 0; jc < n; jc += s->nc) {
        const long ncur = n - jc < s->nc ? n - jc : s->nc;
        for (long pc = 0; pc < k; pc += s->kc) {
            const long kcur = k - pc < s->kc ? k - pc : s->kc;
            const int start = pc == 0 ? first_start : GEMM_START_C;
            if (pre.floats)
                bp = (float *)pre.floats + packed_block_offset(s, k, jc, ncur, pc);
            else if (pre.halves)
                hp = pre.halves + packed_block_offset(s, k, jc, ncur, pc);
            else
                pack_b(b, ldb, trans_b, pc, kcur, jc, ncur, nr, alpha, bp);
            for (long ic = 0; ic < m; ic += s->mc) {
                const long mcur = m - ic < s->mc ? m - ic : s->mc;
                if (!a_in_place)
                    pack_a(a, lda, trans_a, ic, mcur, pc, kcur, mr, ap);
                else if (ic + mcur > m_full)
                    pack_a(a, lda, 0, m_full, m - m_full, pc, kcur, mr, ap);
                for (long jr = 0; jr < ncur; jr += nr) {
                    const long w = ncur - jr < nr ? ncur - jr : nr;
                    const float *bpanel = bp + jr * kcur;
                    if (hp) {
                        if (pre.winograd_position >= 0)
                            s->winograd(pre.half_format, pre.winograd_position, hp + jr * kcur, pre.tap_stride,
                                        wide, kcur * nr);
                        else
                            s->widen(pre.half_format, hp + jr * kcur, wide, kcur * nr);
                        bpanel = wide;
                    }
                    for (long ir = 0; ir < mcur; ir += mr) {
                        const long row = ic + ir;
                        const long h = mcur - ir < mr ? mcur - ir : mr;
                        float *ct = c + row * ldc + jc + jr;
                        const float *apanel;
                        long a_rs, a_ks;
                        if (!a_in_place) {
                            apanel = ap + ir * kcur, a_rs = 1, a_ks = mr;
                        } else if (row < m_full) {
                            apanel = a + row * lda + pc, a_rs = lda, a_ks = 1;
                        } else {
                            apanel = ap, a_rs = 1, a_ks = mr;
                        }
                        if (h == mr && w == nr) {
                            s->kernel(kcur, apanel, a_rs, a_ks, bpanel, ct, ldc, start, beta);
                            continue;
                        }
                        /* A partial tile runs the same full-size kernel on a copy: the padded
                         * rows and columns are zeros and never reach C. */
                        if (start != GEMM_START_ZERO)
                            for (long ii = 0; ii < h; ii++) memcpy(edge + ii * nr, ct + ii * ldc, (size_t)w * sizeof(float));
                        s->kernel(kcur, apanel, a_rs, a_ks, bpanel, edge, nr, start, beta);
                        for (long ii = 0; ii < h; ii++) memcpy(ct + ii * ldc, edge + ii * nr, (size_t)w * sizeof(float));
                    }
                }
            }
        }
    }
    return 0;
}

/* The kernel shape of an ISA this CPU runs, or NULL. */
static const gemm_kernel_shape *shape_for(vidrd_isa isa) {
#if defined(__x86_64__)
    if (isa > vidrd_isa_supported()) return NULL;
    if (isa == VIDRD_ISA_AVX512) return &vidrd_gemm_avx512;
    if (isa == VIDRD_ISA_AVX2) return &vidrd_gemm_avx2;
#endif
    (void)isa;
    return NULL;
}

int vidrd_sgemm(vidrd_isa isa, int trans_a, int trans_b, long m, long n, long k, float alpha,
                const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc) {
    const gemm_kernel_shape *s = shape_for(isa);
    if (!s) return -1;
    return gemm_blocked(s, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, (prepacked_b){.winograd_position = -1});
}

long vidrd_packed_b_floats(vidrd_isa isa, long n, long k) {
    const gemm_kernel_shape *s = shape_for(isa);
    if (!s || n <= 0 || k <= 0) return -1;
    return round_up(n, s->nr) * k;
}

int vidrd_pack_b(vidrd_isa isa, int trans_b, long n, long k, const float *b, long ldb, float *dst) {
    const gemm_kernel_shape *s = shape_for(isa);
    if (!s || n <= 0 || k <= 0) return -1;
    for (long jc = 0; jc < n; jc += s->nc) {
        const long ncur = n - jc < s->nc ? n - jc : s->nc;
        for (long pc = 0; pc < k; pc += s->kc) {
            const long kcur = k - pc < s->kc ? k - pc : s->kc;
            pack_b(b, ldb, trans_b, pc, kcur, jc, ncur, s->nr, 1.0f, dst + packed_block_offset(s, k, jc, ncur, pc));
        }
    }
    return 0;
}

int vidrd_sgemm_packed(vidrd_isa isa, long m, long n, long k, const float *a, long lda,
                       const float *packed_b, float beta, float *c, long ldc) {
    const gemm_kernel_shape *s = shape_for(isa);
    if (!s || !packed_b) return -1;
    return gemm_blocked(s, 0, 0, m, n, k, 1.0f, a, lda, NULL, 0, beta, c, ldc, (prepacked_b){.floats = packed_b, .winograd_position = -1});
}

long vidrd_packed_b_halves(vidrd_isa isa, long n, long k) { return vidrd_packed_b_floats(isa, n, k); }

/* vidrd_pack_b's layout (trans_b = 1), in 16-bit values; padding columns are 0 (+0 in both formats). */
int vidrd_pack_b_half(vidrd_isa isa, long n, long k, const unsigned short *b, long ldb, unsigned short *dst) {
    const gemm_kernel_shape *s = shape_for(isa);
    if (!s || n <= 0 || k <= 0) return -1;
    const int nr = s->nr;
    for (long jc = 0; jc < n; jc += s->nc) {
        const long ncur = n - jc < s->nc ? n - jc : s->nc;
        for (long pc = 0; pc < k; pc += s->kc) {
            const long kcur = k - pc < s->kc ? k - pc : s->kc;
            unsigned short *block = dst + packed_block_offset(s, k, jc, ncur, pc);
            for (long col = 0; col < ncur; col += nr) {
                const long w = ncur - col < nr ? ncur - col : nr;
                unsigned short *panel = block + col * kcur;
                for (long jj = 0; jj < w; jj++) {
                    const unsigned short *src = b + (jc + col + jj) * ldb + pc;
                    for (long p = 0; p < kcur; p++) panel[p * nr + jj] = src[p];
                }
                for (long p = 0; p < kcur; p++)
                    for (long jj = w; jj < nr; jj++) panel[p * nr + jj] = 0;
            }
        }
    }
    return 0;
}

int vidrd_sgemm_packed_half(vidrd_isa isa, int format, long m, long n, long k, const float *a, long lda,
                            const unsigned short *packed_b, float beta, float *c, long ldc) {
    const gemm_kernel_shape *s = shape_for(isa);
    if (!s || !packed_b || (format != VIDRD_HALF_F16 && format != VIDRD_HALF_BF16)) return -1;
    return gemm_blocked(s, 0, 0, m, n, k, 1.0f, a, lda, NULL, 0, beta, c, ldc,
                        (prepacked_b){.halves = packed_b, .half_format = format, .winograd_position = -1});
}

int vidrd_sgemm_winograd_half(vidrd_isa isa, int format, int position, long m, long n, long k,
                              const float *a, long lda, const unsigned short *packed_taps, float beta,
                              float *c, long ldc) {
    const gemm_kernel_shape *s = shape_for(isa);
    if (!s || !packed_taps || (format != VIDRD_HALF_F16 && format != VIDRD_HALF_BF16) || position < 0 || position > 15)
        return -1;
    return gemm_blocked(s, 0, 0, m, n, k, 1.0f, a, lda, NULL, 0, beta, c, ldc,
                        (prepacked_b){.halves = packed_taps, .half_format = format, .winograd_position = position,
                                      .tap_stride = vidrd_packed_b_halves(isa, n, k)});
}

void vidrd_sgemm_reference(int trans_a, int trans_b, long m, long n, long k, float alpha,
                           const float *a, long lda, const float *b, long ldb, float beta,
                           float *c, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float acc = beta == 0.0f ? 0.0f : (beta == 1.0f ? c[i * ldc + j] : beta * c[i * ldc + j]);
            for (long p = 0; p < k; p++) {
                float av = trans_a ? a[p * lda + i] : a[i * lda + p];
                float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                if (alpha != 1.0f) bv = alpha * bv;
                acc = fmaf(av, bv, acc);
            }
            c[i * ldc + j] = acc;
        }
}
