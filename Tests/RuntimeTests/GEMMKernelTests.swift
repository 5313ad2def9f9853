import CVidrdKernels
import Testing

@testable import VidrdRuntime

/// The runtime's GEMM kernels against their definition (vidrd_kernels.h): every element is one
/// fused multiply-add chain in increasing k. The scalar reference computes exactly that with
/// fmaf, so the kernels must match it bit for bit on every ISA this CPU runs, at every shape,
/// edge and layout — which is also what makes the result independent of the rows around it.
@Suite struct GEMMKernelTests {
    struct Case: CustomStringConvertible {
        var transA = false, transB = false
        var m: Int, n: Int, k: Int
        var alpha: Float = 1, beta: Float = 0
        var description: String { "tA=\(transA) tB=\(transB) m=\(m) n=\(n) k=\(k) alpha=\(alpha) beta=\(beta)" }
    }

    /// Sizes on both sides of the tiles (6x16 for AVX2, 14x32 for AVX-512) and of k's block (256).
    static let cases: [Case] = {
        var all: [Case] = []
        let dims = [1, 5, 6, 7, 13, 14, 15, 16, 17, 31, 33, 64, 100]
        var i = 0
        for transA in [false, true] {
            for transB in [false, true] {
                for m in [1, 6, 14, 29, 100] {
                    for n in [1, 16, 31, 33, 70] {
                        let k = [1, 3, 64, 255, 257, 600][i % 6]
                        let alpha: Float = i % 5 == 0 ? 0.37 : 1
                        let beta: Float = [0, 1, 0.5][i % 3]
                        all.append(Case(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta))
                        i += 1
                    }
                }
            }
        }
        all += dims.map { Case(m: $0, n: 33, k: 300, beta: 1) }
        // More columns than one block of B (3072): the outermost loop of the driver.
        all += [Case(transB: true, m: 20, n: 3100, k: 10, beta: 0.5),
                Case(transA: true, m: 7, n: 6200, k: 300, alpha: 0.5, beta: 1)]
        return all
    }()

    static var kernelISAs: [vidrd_isa] {
        [(ComputeKernels.ISA.avx2, VIDRD_ISA_AVX2), (.avx512, VIDRD_ISA_AVX512)]
            .filter { $0.0 <= ComputeKernels.cpuSupported }.map(\.1)
    }

    static func values(_ count: Int, seed: UInt32) -> [Float] {
        var s = seed
        return (0..<count).map { _ in
            s = s &* 1_664_525 &+ 1_013_904_223
            // Mixed magnitudes, so that a different summation order would show in the last bits.
            return (Float(s >> 8) / 16_777_216 - 0.5) * (s & 1 == 0 ? 1 : 1000)
        }
    }

    struct Operands {
        var a: [Float], b: [Float], c: [Float]
        let lda: Int, ldb: Int, ldc: Int
        init(_ t: Case) {
            lda = t.transA ? t.m : t.k
            ldb = t.transB ? t.k : t.n
            ldc = t.n + 3  // a C wider than n: the kernels must leave the extra columns alone
            a = values(t.m * t.k, seed: 1)
            b = values(t.k * t.n, seed: 2)
            c = values(t.m * ldc, seed: 3)
        }
    }

    static func reference(_ t: Case, _ o: Operands) -> [Float] {
        var c = o.c
        vidrd_sgemm_reference(t.transA ? 1 : 0, t.transB ? 1 : 0, t.m, t.n, t.k, t.alpha,
                              o.a, o.lda, o.b, o.ldb, t.beta, &c, o.ldc)
        return c
    }

    @Test func referenceIsTheFusedChain() {
        // k = 2: first -r with r = fl(x * x), then x * x. Fused, the second step leaves the
        // rounding error of x * x (nonzero); a separate multiply and add would give exactly 0.
        let x: Float = 1 + 0x1p-12 + 0x1p-20
        let r = x * x
        var c: [Float] = [0]
        vidrd_sgemm_reference(0, 0, 1, 1, 2, 1, [1, x], 2, [-r, x], 1, 0, &c, 1)
        #expect(c[0] == (-r).addingProduct(x, x))
        #expect(c[0] != 0)
    }

    @Test(arguments: kernelISAs)
    func kernelMatchesTheDefinitionBitForBit(isa: vidrd_isa) {
        for t in Self.cases {
            let o = Operands(t)
            var c = o.c
            let status = vidrd_sgemm(isa, t.transA ? 1 : 0, t.transB ? 1 : 0, t.m, t.n, t.k, t.alpha,
                                     o.a, o.lda, o.b, o.ldb, t.beta, &c, o.ldc)
            #expect(status == 0)
            let expected = Self.reference(t, o)
            #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "\(t)")
        }
    }

    @Test func kernelRefusesAnISAThisCPULacks() {
        guard ComputeKernels.cpuSupported < .avx512 else { return }
        var c: [Float] = [7]
        #expect(vidrd_sgemm(VIDRD_ISA_AVX512, 0, 0, 1, 1, 1, 1, [1], 1, [1], 1, 0, &c, 1) == -1)
        #expect(c == [7])
    }

    /// The property batching relies on, through the runtime's own entry point (which also splits
    /// large products across threads): a block of rows gives the same bits alone and inside a
    /// larger call, wherever it sits.
    @Test func rowsDoNotDependOnTheirNeighbours() {
        let (n, k) = (70, 300)
        let rows = 37, before = 45, after = 29
        let mine = Self.values(rows * k, seed: 4)
        let others = Self.values((before + after) * k, seed: 5)
        let weight = Self.values(n * k, seed: 6)
        func product(_ a: [Float], m: Int) -> [Float] {
            var c = [Float](repeating: 0, count: m * n)
            a.withUnsafeBufferPointer { a in
                weight.withUnsafeBufferPointer { w in
                    c.withUnsafeMutableBufferPointer { c in
                        sgemm(transB: true, m: m, n: n, k: k, a: a.baseAddress!, lda: k,
                              b: w.baseAddress!, ldb: k, c: c.baseAddress!, ldc: n)
                    }
                }
            }
            return c
        }
        let alone = product(mine, m: rows)
        let together = product(Array(others[..<(before * k)]) + mine + Array(others[(before * k)...]),
                               m: before + rows + after)
        let inside = Array(together[(before * n)..<((before + rows) * n)])
        if ComputeKernels.active.kernelISA != nil {
            #expect(inside.map(\.bitPattern) == alone.map(\.bitPattern))
        } else {
            // OpenBLAS gives no such promise; only closeness is asserted there.
            for (x, y) in zip(inside, alone) { #expect(abs(x - y) <= 1e-3 * max(1, abs(y))) }
        }
    }

    @Test func environmentChoosesAtMostWhatTheCPUHas() {
        let avx2 = ComputeKernels(requested: nil, supported: .avx2)
        #expect(avx2.isa == .avx2 && avx2.problem == nil)
        #expect(ComputeKernels(requested: "generic", supported: .avx2).isa == .generic)
        #expect(ComputeKernels(requested: "AVX2", supported: .avx512).isa == .avx2)
        let tooHigh = ComputeKernels(requested: "avx512", supported: .avx2)
        #expect(tooHigh.isa == .avx2)
        #expect(tooHigh.problem?.contains("VIDRD_ISA=avx512") == true)
        let unknown = ComputeKernels(requested: "sse9", supported: .avx2)
        #expect(unknown.isa == .avx2)
        #expect(unknown.problem?.contains("sse9") == true)
        #expect(unknown.problem?.contains("generic, avx2, avx512") == true)
        #expect(ComputeKernels(requested: nil, supported: .generic).isa == .generic)
    }
}
