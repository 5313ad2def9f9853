import CBLAS

/// Row-major single-precision GEMM: C = alpha * op(A) * op(B) + beta * C.
///
/// OpenBLAS runs single-threaded here and large products are split by rows across the same
/// worker pool as every other op. Two thread pools (OpenBLAS's spinning workers and ours)
/// would otherwise fight over the cores between calls.
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
    BLASThreading.configureOnce
    let work = m * n * k
    let workers = ComputeThreads.count
    if workers > 1 && work >= 1 << 21 && m >= 2 * workers {
        let rowsPer = (m + workers - 1) / workers
        parallelChunks(workers) { range in
            for w in range {
                let r0 = w * rowsPer
                let rows = Swift.min(rowsPer, m - r0)
                guard rows > 0 else { continue }
                let aStart = transA ? a + r0 : a + r0 * lda
                cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                            Int32(rows), Int32(n), Int32(k), alpha, aStart, Int32(lda), b, Int32(ldb),
                            beta, c + r0 * ldc, Int32(ldc))
            }
        }
        return
    }
    cblas_sgemm(
        CblasRowMajor,
        transA ? CblasTrans : CblasNoTrans,
        transB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k),
        alpha, a, Int32(lda), b, Int32(ldb),
        beta, c, Int32(ldc))
}

enum BLASThreading {
    /// Pins OpenBLAS to one thread per call, once per process.
    static let configureOnce: Void = { openblas_set_num_threads(1) }()
}
