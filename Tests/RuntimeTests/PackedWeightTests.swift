import CVidrdKernels
import Foundation
import Testing

@testable import VidrdRuntime

/// Weights packed once at load (`WeightMatrix`) and the bf16 fast mode's GEMM. In the kernel
/// suite's name so that `.ci/run` runs them again under `VIDRD_ISA=avx512` and `generic`.
extension GEMMKernelTests {
    /// Shapes across the tiles, k's blocks (256 fp32, 512 bf16), odd k and more columns than one
    /// block of B (3072).
    static let packedShapes: [(m: Int, n: Int, k: Int, beta: Float)] = [
        (1, 1, 1, 0), (5, 7, 3, 1), (14, 32, 2, 0.5), (15, 33, 513, 1), (29, 70, 1025, 0),
        (100, 64, 64, 0.5), (37, 4, 288, 1), (20, 3100, 10, 0), (3, 16, 257, 1),
    ]

    @Test(arguments: kernelISAs)
    func packedWeightsGiveTheUnpackedKernelsBits(isa: vidrd_isa) throws {
        for (m, n, k, beta) in Self.packedShapes {
            for transB in [true, false] {
                let a = Self.values(m * k, seed: 11), b = Self.values(n * k, seed: 12), c0 = Self.values(m * n, seed: 13)
                let ldb = transB ? k : n
                let words = try #require(AlignedWords(count: vidrd_packed_b_floats(isa, n, k)))
                #expect(vidrd_pack_b(isa, transB ? 1 : 0, n, k, b, ldb, words.floats) == 0)
                var plain = c0, packed = c0
                #expect(vidrd_sgemm(isa, 0, transB ? 1 : 0, m, n, k, 1, a, k, b, ldb, beta, &plain, n) == 0)
                #expect(vidrd_sgemm_packed(isa, m, n, k, a, k, words.floats, beta, &packed, n) == 0)
                #expect(packed.map(\.bitPattern) == plain.map(\.bitPattern), "m=\(m) n=\(n) k=\(k) transB=\(transB)")
            }
        }
    }

    /// The layer type the models use, for every ISA including OpenBLAS's fallback, through the
    /// row split across threads: the definition's bits where a kernel of ours runs.
    @Test(arguments: ComputeKernels.ISA.allCases.filter { $0 <= ComputeKernels.cpuSupported })
    func weightMatrixComputesTheDefinition(isa: ComputeKernels.ISA) {
        let kernels = ComputeKernels(requested: isa.rawValue, supported: ComputeKernels.cpuSupported)
        let (m, n, k) = (300, 70, 200)  // big enough for the split over threads
        let a = Self.values(m * k, seed: 21), w = Self.values(n * k, seed: 22), c0 = Self.values(m * n, seed: 23)
        let matrix = WeightMatrix(w, outFeatures: n, inFeatures: k, kernels: kernels)
        for accumulate in [false, true] {
            var c = c0, expected = c0
            vidrd_sgemm_reference(0, 1, m, n, k, 1, a, k, w, k, accumulate ? 1 : 0, &expected, n)
            a.withUnsafeBufferPointer { ap in
                c.withUnsafeMutableBufferPointer { cp in
                    matrix.multiply(rows: m, a: ap.baseAddress!, lda: k, accumulate: accumulate, c: cp.baseAddress!, ldc: n)
                }
            }
            if kernels.kernelISA != nil {
                #expect(c.map(\.bitPattern) == expected.map(\.bitPattern), "\(isa) accumulate=\(accumulate)")
            } else {
                for (x, y) in zip(c, expected) { #expect(abs(x - y) <= 1e-3 * max(1, abs(y))) }
            }
        }
    }

    /// fp32 to bf16, rounding to nearest even: what vcvtneps2bf16 does to normal numbers.
    static func bf16(_ x: Float) -> Float {
        let u = x.bitPattern
        let rounded = (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000
        return Float(bitPattern: rounded)
    }

    /// The bf16 GEMM's promise: A and B rounded to bf16, products summed in fp32. Checked against
    /// float64 sums of the rounded operands, relative to the sum of the terms' magnitudes (an
    /// fp32 chain of k terms is within ~k·2⁻²⁴ of it; the bound is loose in k, tight enough to
    /// catch a wrong pairing, a lost term or fp32 operands).
    @Test func bf16ProductIsTheRoundedOperandsSummedInFP32() throws {
        guard vidrd_bf16_supported() != 0 else { return }
        for (m, n, k, beta) in Self.packedShapes {
            let a = Self.values(m * k, seed: 31), w = Self.values(n * k, seed: 32), c0 = Self.values(m * n, seed: 33)
            let words = try #require(AlignedWords(count: vidrd_packed_b_bf16_words(n, k)))
            #expect(vidrd_pack_b_bf16(1, n, k, w, k, words.base) == 0)
            var c = c0
            #expect(vidrd_sgemm_bf16(m, n, k, a, k, words.base, beta, &c, n) == 0)
            var worst = 0.0, worstFP32Gap = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var exact = Double(beta) * Double(c0[i * n + j]), scale = abs(exact), unrounded = exact
                    for p in 0..<k {
                        let term = Double(Self.bf16(a[i * k + p])) * Double(Self.bf16(w[j * k + p]))
                        exact += term
                        scale += abs(term)
                        unrounded += Double(a[i * k + p]) * Double(w[j * k + p])
                    }
                    worst = max(worst, abs(Double(c[i * n + j]) - exact) / max(scale, 1e-30))
                    worstFP32Gap = max(worstFP32Gap, abs(unrounded - exact) / max(scale, 1e-30))
                }
            }
            #expect(worst < 1e-6, "m=\(m) n=\(n) k=\(k): \(worst)")
            // The operands really were rounded: fp32 products would differ from these by ~2⁻⁹.
            if k > 1 { #expect(worstFP32Gap > 1e-4, "m=\(m) n=\(n) k=\(k)") }
        }
    }

    /// Batching in the fast mode changes no frame either: a row's bits do not depend on the rows
    /// around it or on the split over threads.
    @Test func bf16RowsDoNotDependOnTheirNeighbours() {
        guard ComputePrecision.unavailability(.bf16, kernels: ComputeKernels(requested: "avx512", supported: ComputeKernels.cpuSupported)) == nil
        else { return }
        let kernels = ComputeKernels(requested: "avx512", supported: ComputeKernels.cpuSupported)
        let (n, k) = (70, 601)
        let rows = 37, before = 45, after = 229
        let matrix = WeightMatrix(Self.values(n * k, seed: 41), outFeatures: n, inFeatures: k, precision: .bf16, kernels: kernels)
        #expect(matrix.precision == .bf16)
        let mine = Self.values(rows * k, seed: 42), others = Self.values((before + after) * k, seed: 43)
        func product(_ a: [Float], m: Int) -> [Float] {
            var c = [Float](repeating: 0, count: m * n)
            a.withUnsafeBufferPointer { ap in
                c.withUnsafeMutableBufferPointer { cp in
                    matrix.multiply(rows: m, a: ap.baseAddress!, lda: k, accumulate: false, c: cp.baseAddress!, ldc: n)
                }
            }
            return c
        }
        let alone = product(mine, m: rows)
        let together = product(Array(others[..<(before * k)]) + mine + Array(others[(before * k)...]), m: before + rows + after)
        #expect(Array(together[(before * n)..<((before + rows) * n)]).map(\.bitPattern) == alone.map(\.bitPattern))
    }

    /// Packed weights hold one copy: the bf16 one half the fp32 one's bytes.
    @Test func bf16WeightsTakeHalfTheMemory() {
        let kernels = ComputeKernels(requested: "avx512", supported: ComputeKernels.cpuSupported)
        guard ComputePrecision.unavailability(.bf16, kernels: kernels) == nil else { return }
        let w = Self.values(128 * 320, seed: 51)
        let fp32 = WeightMatrix(w, outFeatures: 128, inFeatures: 320, kernels: kernels)
        let bf16 = WeightMatrix(w, outFeatures: 128, inFeatures: 320, precision: .bf16, kernels: kernels)
        #expect(fp32.bytes == 128 * 320 * 4)
        #expect(bf16.bytes == 128 * 320 * 2)
    }

    @Test func bf16IsRefusedWhereItCannotRun() {
        if vidrd_bf16_supported() != 0 {
            let why = ComputePrecision.unavailability(.bf16, kernels: ComputeKernels(requested: "avx2", supported: ComputeKernels.cpuSupported))
            #expect(why?.contains("VIDRD_ISA") == true)
        } else {
            #expect(ComputePrecision.unavailability(.bf16)?.contains("avx512_bf16") == true)
        }
        #expect(ComputePrecision.unavailability(.fp32) == nil)
        #expect(ComputePrecision(name: "BF16") == .bf16)
        #expect(ComputePrecision(name: "fp16") == nil)
    }
}

/// The bf16 fast mode on whole components against the PyTorch fp32 fixtures, measured against
/// the yardstick that matters: PyTorch's own bf16 (`torch.autocast`) error on the same inputs
/// (tools/reference/bf16_error.py printed the figures below). vidrd's may not be worse than
/// PyTorch's by more than a quarter, and must not be fp32's (which would mean the mode never ran).
extension ModelParityTests {
    struct BF16Yardstick { let maxOverStd: Float, rmsOverStd: Float }
    static let torchBF16UNet: [String: BF16Yardstick] = [
        "tiny-lpb2": .init(maxOverStd: 0.0852, rmsOverStd: 0.0224),
        "tiny-nonsquare": .init(maxOverStd: 0.0665, rmsOverStd: 0.0187),
        "tiny-fp16": .init(maxOverStd: 0.068, rmsOverStd: 0.0179),
    ]
    static let torchBF16VAEDecode: [String: BF16Yardstick] = [
        "tiny-lpb2": .init(maxOverStd: 0.0775, rmsOverStd: 0.0146),
        "tiny-nonsquare": .init(maxOverStd: 0.0688, rmsOverStd: 0.0147),
        "tiny-fp16": .init(maxOverStd: 0.0586, rmsOverStd: 0.0122),
    ]

    static func rmsRelativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
        var sum = 0.0
        for (x, y) in zip(actual.scalars, expected.scalars) { sum += Double(x - y) * Double(x - y) }
        return Float((sum / Double(max(1, expected.count))).squareRoot()) / Swift.max(expected.standardDeviation(), 1e-12)
    }

    static func expectWithinTorchBF16(_ out: Tensor, _ expected: Tensor, _ yardstick: BF16Yardstick?, _ what: String) throws {
        let y = try #require(yardstick, "no PyTorch bf16 figure for \(what)")
        let maxErr = relativeError(out, expected), rmsErr = rmsRelativeError(out, expected)
        #expect(maxErr <= 1.25 * y.maxOverStd, "\(what): bf16 max error \(maxErr), PyTorch bf16 \(y.maxOverStd)")
        #expect(rmsErr <= 1.25 * y.rmsOverStd, "\(what): bf16 RMS error \(rmsErr), PyTorch bf16 \(y.rmsOverStd)")
        #expect(maxErr > fp32Tolerance, "\(what): bf16 error \(maxErr) is fp32's: the mode did not run")
    }

    @Test(arguments: Fixture.parityConfigs)
    func unetForwardInBF16IsAsCloseAsPyTorchsBF16(config: String) throws {
        guard ComputePrecision.unavailability(.bf16) == nil else { return }
        let f = try Fixture(config)
        let unet = try UNet3DConditionModel(directory: f.component("unet"), precision: .bf16)
        let timesteps = try f.reference.integers("unet.timesteps").map { Float($0) }
        let cond = try unet.conditioning(encoderHiddenStates: f.tensor("unet.encoder_hidden_states"))
        var ws = Workspace()
        let out = try unet(f.tensor("unet.sample"), timesteps: timesteps, conditioning: cond, workspace: &ws)
        try Self.expectWithinTorchBF16(out, try f.tensor("unet.out"), Self.torchBF16UNet[config], "\(config) U-Net")
    }

    @Test(arguments: Fixture.parityConfigs)
    func vaeDecodeInBF16IsAsCloseAsPyTorchsBF16(config: String) throws {
        guard ComputePrecision.unavailability(.bf16) == nil else { return }
        let f = try Fixture(config)
        let vae = try AutoencoderKL(directory: f.component("vae"), precision: .bf16)
        var ws = Workspace()
        let temporal = vae.configuration.addTemporalConv
        let decoded = try vae.decode(f.tensor("vae.z"), temporal: temporal, workspace: &ws)
        let expected = try f.tensor(temporal ? "vae.decoded_temporal" : "vae.decoded_framewise")
        try Self.expectWithinTorchBF16(decoded, expected, Self.torchBF16VAEDecode[config], "\(config) VAE decode")
    }

    @Test func bf16LoadIsRefusedWithAReasonWhereItCannotRun() throws {
        guard let why = ComputePrecision.unavailability(.bf16) else { return }
        let f = try Fixture("tiny-lpb2")
        #expect {
            _ = try UNet3DConditionModel(directory: f.component("unet"), precision: .bf16)
        } throws: { error in
            "\(error)".contains(why)
        }
    }
}
