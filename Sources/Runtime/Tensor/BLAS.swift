import CBLAS
import CVidrdKernels

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
///
/// Runs the runtime's own kernel for the CPU (`ComputeKernels.active`), whose every element is
/// one fused multiply-add chain in increasing k (Sources/CVidrdKernels/include/vidrd_kernels.h):
/// a row's result does not depend on which other rows share the call, which is what lets the
/// daemon batch sessions without changing a frame. On CPUs without AVX2 + FMA, OpenBLAS.
///
/// Both run single-threaded per call; large products are split by rows across the same
/// compute threads as every other op, so two thread pools never fight over the cores.
@inline(__always)
func sgemm(
    transA: Bool = false, transB: Bool = false,
    m: Int, n: Int, k: Int,
    alpha: Float = 1,
    a: UnsafePointer<Float>, lda: Int,
    b: UnsafePointer<Float>, ldb: Int,
    beta: Float = 0,
    c: UnsafeMutablePointer<Float>, ldc: Int
) {
    splitRows(m: m, n: n, k: k) { r0, rows in
        let aStart = transA ? a + r0 : a + r0 * lda
        singleThreadGEMM(transA: transA, transB: transB, m: rows, n: n, k: k, alpha: alpha,
                         a: aStart, lda: lda, b: b, ldb: ldb, beta: beta, c: c + r0 * ldc, ldc: ldc)
    }
}

/// Runs `body(firstRow, rows)` over `m` rows: in one call when the product is small, else one
/// band of rows per compute thread. A row's result never depends on the band it falls in.
@inline(__always)
func splitRows(m: Int, n: Int, k: Int, _ body: (Int, Int) -> Void) {
    let workers = ComputeThreads.current
    guard workers > 1 && m * n * k >= 1 << 21 && m >= 2 * workers else {
        body(0, m)
        return
    }
    let rowsPer = (m + workers - 1) / workers
    parallelChunks(workers) { range in
        for w in range {
            let r0 = w * rowsPer
            let rows = Swift.min(rowsPer, m - r0)
            if rows > 0 { body(r0, rows) }
        }
    }
}

@inline(__always)
private func singleThreadGEMM(
    transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
) {
    if let isa = ComputeKernels.active.kernelISA,
       vidrd_sgemm(isa, transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) == 0 {
        return
    }
    // No kernel of ours for this CPU, or no scratch memory for one: the portable library.
    BLASThreading.configureOnce
    cblas_sgemm(
        CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

enum BLASThreading {
    /// Pins OpenBLAS to one thread per call, once per process.
    static let configureOnce: Void = { openblas_set_num_threads(1) }()
}
