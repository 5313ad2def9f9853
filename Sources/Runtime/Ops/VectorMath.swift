import CVidrdKernels

/// SIMD vectors for the Swift loops that remain (norm statistics, Winograd transforms); the
/// transcendental hot loops (softmax's exp, SiLU, GELU) are C kernels with AVX2 and AVX-512
/// bodies chosen at run time (Sources/CVidrdKernels/elementwise.c), since Swift code cannot carry
/// a per-function target and the library builds with no CPU flag.
typealias FloatV = SIMD8<Float>

extension ComputeKernels {
    /// The element-wise kernels' ISA: the GEMM's (every body gives the same bits).
    var elementwiseISA: vidrd_isa {
        switch isa {
        case .generic: VIDRD_ISA_GENERIC
        case .avx2: VIDRD_ISA_AVX2
        case .avx512: VIDRD_ISA_AVX512
        }
    }
}

/// Unnormalised row softmax in place: `row[j] = exp(row[j] - max)`; returns the row sum so the
/// caller can normalise the (much smaller) attention output instead of every score.
@inline(__always)
func expShiftedRow(_ row: UnsafeMutablePointer<Float>, count n: Int) -> Float {
    vidrd_exp_shifted_row(ComputeKernels.active.elementwiseISA, row, n)
}

/// Row softmax in place: exp(x - max) / sum.
@inline(__always)
func softmaxRow(_ row: UnsafeMutablePointer<Float>, count n: Int) {
    let inv = 1 / expShiftedRow(row, count: n)
    for j in 0..<n { row[j] *= inv }
}
