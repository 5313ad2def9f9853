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

/* packed_b, when given, is op(B) already packed by vidrd_pack_b for this kernel shape (alpha 1):
 * b, ldb and trans_b are then unused and nothing is packed per call. */
static int gemm_blocked(const gemm_kernel_shape *s, int trans_a, int trans_b, long m, long n, long k,
                        float alpha, const float *a, long lda, const float *b, long ldb, float beta,
                        float *c, long ldc, const float *packed_b) {
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
    const size_t b_size = packed_b ? 0 : (size_t)(kc_max * nc_max);
    const size_t a_size = (size_t)(kc_max * mc_max);
    const size_t tile = (size_t)(mr * nr);
    float *scratch = vidrd_gemm_scratch(b_size + a_size + tile);
    if (!scratch) return -1;
    float *bp = scratch, *ap = scratch + b_size, *edge = ap + a_size;
    const int first_start = beta == 0.0f ? GEMM_START_ZERO : (beta == 1.0f ? GEMM_START_C : GEMM_START_BETA);
    const long m_full = m / mr * mr;

    for (long jc = 0; jc < n; jc += s->nc) {
        const long ncur = n - jc < s->nc ? n - jc : s->nc;
        for (long pc = 0; pc < k; pc += s->kc) {
            const long kcur = k - pc < s->kc ? k - pc : s->kc;
            const int start = pc == 0 ? first_start : GEMM_START_C;
            if (packed_b)
                bp = (float *)packed_b + packed_block_offset(s, k, jc, ncur, pc);
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
    return gemm_blocked(s, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, NULL);
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
    return gemm_blocked(s, 0, 0, m, n, k, 1.0f, a, lda, NULL, 0, beta, c, ldc, packed_b);
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
