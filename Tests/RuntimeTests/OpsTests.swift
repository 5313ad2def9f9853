import CVidrdKernels
import Foundation
import Testing
@testable import VidrdRuntime

/// Ops against naive definitions computed here in Double, independent of the fast paths.
@Suite struct OpsTests {
    var random = SeededRandomSource(seed: 99)

    mutating func randn(_ n: Int) -> [Float] { random.standardNormal(count: n) }

    /// Direct convolution from the definition, channels-last input, PyTorch weight order.
    func naiveConv(_ x: [Float], n: Int, h: Int, w: Int, cin: Int, weight: [Float], bias: [Float], cout: Int,
                   k: Int, stride: Int, pad: (Int, Int, Int, Int)) -> [Float] {
        let ho = (h + pad.0 + pad.2 - k) / stride + 1, wo = (w + pad.1 + pad.3 - k) / stride + 1
        var out = [Float](repeating: 0, count: n * ho * wo * cout)
        for img in 0..<n { for oy in 0..<ho { for ox in 0..<wo { for o in 0..<cout {
            var acc = Double(bias[o])
            for ky in 0..<k { for kx in 0..<k {
                let iy = oy * stride + ky - pad.0, ix = ox * stride + kx - pad.1
                guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
                for i in 0..<cin {
                    acc += Double(x[((img * h + iy) * w + ix) * cin + i]) * Double(weight[((o * cin + i) * k + ky) * k + kx])
                }
            } }
            out[((img * ho + oy) * wo + ox) * cout + o] = Float(acc)
        } } } }
        return out
    }

    @Test(arguments: [(16, 24, 5, 7), (3, 8, 4, 4), (32, 16, 1, 9)])
    mutating func convolutionMatchesDefinition(cin: Int, cout: Int, h: Int, w: Int) throws {
        let n = 2
        let x = randn(n * h * w * cin), weight = randn(cout * cin * 9).map { $0 * 0.2 }, bias = randn(cout)
        let conv = Conv2d(torchWeight: weight, bias: bias, inChannels: cin, outChannels: cout, kernel: 3)
        #expect((conv.winograd != nil) == (cin >= 16 && cout >= 16))
        var ws = Workspace()
        let out = conv(Tensor(shape: [n, h, w, cin], scalars: x), workspace: &ws)
        let expected = Tensor(shape: out.shape, scalars: naiveConv(x, n: n, h: h, w: w, cin: cin, weight: weight, bias: bias,
                                                                   cout: cout, k: 3, stride: 1, pad: (1, 1, 1, 1)))
        #expect(relativeError(out, expected) < 1e-5)
    }

    @Test mutating func stridedAsymmetricConvolutionMatchesDefinition() throws {
        let (n, h, w, cin, cout) = (1, 7, 6, 5, 4)
        let x = randn(n * h * w * cin), weight = randn(cout * cin * 9), bias = randn(cout)
        let conv = Conv2d(torchWeight: weight, bias: bias, inChannels: cin, outChannels: cout, kernel: 3, stride: 2,
                          asymmetricPadding: (0, 0, 1, 1))
        var ws = Workspace()
        let out = conv(Tensor(shape: [n, h, w, cin], scalars: x), workspace: &ws)
        #expect(out.shape == [1, 3, 3, cout])  // (7 + 1 − 3) / 2 + 1 = 3, (6 + 1 − 3) / 2 + 1 = 3
        let expected = Tensor(shape: out.shape, scalars: naiveConv(x, n: n, h: h, w: w, cin: cin, weight: weight, bias: bias,
                                                                   cout: cout, k: 3, stride: 2, pad: (0, 0, 1, 1)))
        #expect(relativeError(out, expected) < 1e-5)
    }

    @Test mutating func temporalConvMatchesDefinition() throws {
        let (b, f, p, c) = (2, 5, 3, 4)
        let x = randn(b * f * p * c), weight = randn(c * c * 3), bias = randn(c)
        let conv = TemporalConv(torchWeight: weight, bias: bias, inChannels: c, outChannels: c)
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeBufferPointer { xs in
            out.withUnsafeMutableBufferPointer { conv.forward(xs.baseAddress!, batch: b, frames: f, pixels: p, into: $0.baseAddress!) }
        }
        for bi in 0..<b { for fi in 0..<f { for pi in 0..<p { for o in 0..<c {
            var acc = Double(bias[o])
            for d in 0..<3 where fi + d - 1 >= 0 && fi + d - 1 < f {
                for i in 0..<c { acc += Double(x[((bi * f + fi + d - 1) * p + pi) * c + i]) * Double(weight[(o * c + i) * 3 + d]) }
            }
            #expect(abs(Float(acc) - out[((bi * f + fi) * p + pi) * c + o]) < 1e-4)
        } } } }
    }

    @Test mutating func groupNormIsStableFarFromZero() throws {
        let (samples, positions, channels, groups) = (2, 50, 8, 2)
        // A common offset 10⁴ standard deviations away from zero: one-pass E[x²] − E[x]², or
        // x·(γ/σ) + (β − μγ/σ), loses most digits here. (The offset stays where fp32 still
        // resolves the data: ulp(100)/σ ≈ 8e-4, so no fp32 implementation can beat ~1e-3.)
        let x = randn(samples * positions * channels).map { 100 + 0.01 * $0 }
        let gamma = randn(channels), beta = randn(channels)
        let norm = try GroupNorm(groups: groups, channels: channels, eps: 1e-6, gamma: gamma, beta: beta)
        let out = norm(Tensor(shape: [samples * positions, channels], scalars: x), samples: samples)
        let cpg = channels / groups
        for s in 0..<samples { for g in 0..<groups {
            var values: [Double] = []
            for p in 0..<positions { for j in 0..<cpg { values.append(Double(x[(s * positions + p) * channels + g * cpg + j])) } }
            let mean = values.reduce(0, +) / Double(values.count)
            let variance = values.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(values.count)
            for p in 0..<positions { for j in 0..<cpg {
                let ch = g * cpg + j
                let expected = (Double(x[(s * positions + p) * channels + ch]) - mean) / (variance + 1e-6).squareRoot()
                    * Double(gamma[ch]) + Double(beta[ch])
                #expect(abs(Double(out.scalars[(s * positions + p) * channels + ch]) - expected) < 2e-3 * (1 + abs(expected)))
            } }
        } }
    }

    /// The element-wise kernels' vector bodies this CPU runs (GENERIC is the portable one).
    static var vectorISAs: [vidrd_isa] {
        [(ComputeKernels.ISA.avx2, VIDRD_ISA_AVX2), (.avx512, VIDRD_ISA_AVX512)]
            .filter { $0.0 <= ComputeKernels.cpuSupported }.map(\.1)
    }

    /// The element-wise kernels (exp in softmax, SiLU, GELU) against libm, on every ISA this CPU
    /// runs, and the same bits on each: exp ≤ 3e-7 relative, erf ≤ 5e-7 absolute (GELU's error is
    /// that times |x|/2), SiLU ≤ 4e-7 relative.
    @Test func elementwiseKernelsMatchLibm() {
        let isas = [VIDRD_ISA_GENERIC] + Self.vectorISAs
        // Scores ≤ 0 with a 0 among them: the shifted exp is exp itself.
        let scores = stride(from: Float(-20), through: 0, by: 0.0173).map { $0 } + [0]
        let inputs = stride(from: Float(-9), through: 9, by: 0.00731).map { $0 }
        var outputs: [[[Float]]] = []
        for isa in isas {
            var e = scores, g = inputs, si = inputs
            _ = e.withUnsafeMutableBufferPointer { vidrd_exp_shifted_row(isa, $0.baseAddress!, $0.count) }
            g.withUnsafeMutableBufferPointer { vidrd_gelu(isa, $0.baseAddress!, $0.count) }
            si.withUnsafeMutableBufferPointer { vidrd_silu(isa, $0.baseAddress!, $0.count) }
            var worstExp = 0.0, worstErf = 0.0, worstSiLU = 0.0
            for (x, y) in zip(scores, e) { worstExp = max(worstExp, abs(Double(y) / Foundation.exp(Double(x)) - 1)) }
            for (x, y) in zip(inputs, g) {
                // erf's error e shows in GELU as e·|x|/2: measure it in erf's units.
                let ref = 0.5 * Double(x) * (1 + Foundation.erf(Double(x) / 2.0.squareRoot()))
                worstErf = max(worstErf, abs(Double(y) - ref) / max(0.5, abs(Double(x)) / 2))
            }
            for (x, y) in zip(inputs, si) {
                let ref = Double(x) / (1 + Foundation.exp(-Double(x)))
                if abs(ref) > 1e-6 { worstSiLU = max(worstSiLU, abs(Double(y) - ref) / abs(ref)) }
            }
            #expect(worstExp < 3e-7, "exp relative error \(worstExp), isa \(isa)")
            #expect(worstErf < 6e-7, "erf error through GELU \(worstErf), isa \(isa)")
            #expect(worstSiLU < 4e-7, "SiLU relative error \(worstSiLU), isa \(isa)")
            outputs.append([e, g, si])
        }
        for o in outputs.dropFirst() {
            #expect(zip(o, outputs[0]).allSatisfy { $0.map(\.bitPattern) == $1.map(\.bitPattern) }, "every ISA gives the same bits")
        }
    }

    /// Every element-wise kernel on every ISA this CPU runs against the portable body, bit for bit,
    /// at every tail length (the AVX-512 body finishes a row with a group of 8 and scalar code after
    /// its 16-wide chunks, the AVX2 one with scalar code) and with inputs past exp's clamp; for
    /// exp_shifted_row the returned sum too, which every body must add up in one order.
    @Test mutating func elementwiseKernelsGiveTheSameBitsOnEveryISA() {
        let kernels = ["exp_shifted_row", "silu", "gelu", "gelu_gate", "affine_row", "affine_row+silu"]
        for n in Array(0...70) + [255, 256, 257, 1000, 4103] {
            // Mostly |x| < 12; every seventh up to a few hundred, past exp's clamp (±87).
            let x = randn(n).enumerated().map { $0.offset % 7 == 3 ? $0.element * 100 : $0.element * 4 }
            let y = randn(n).map { $0 * 4 }, scale = randn(n), mean = randn(n), beta = randn(n)
            func run(_ isa: vidrd_isa) -> [[UInt32]] {
                var e = x, si = x, ge = x, gate = y + x
                let sum = vidrd_exp_shifted_row(isa, &e, n)
                vidrd_silu(isa, &si, n)
                vidrd_gelu(isa, &ge, n)
                vidrd_gelu_gate(isa, &gate, n)
                // Three more than c: the kernel must leave them alone.
                var affine = [Float](repeating: 7, count: n + 3), affineSiLU = affine
                vidrd_affine_row(isa, x, scale, mean, beta, &affine, n, 0)
                vidrd_affine_row(isa, x, scale, mean, beta, &affineSiLU, n, 1)
                return [e + [sum], si, ge, gate, affine, affineSiLU].map { $0.map(\.bitPattern) }
            }
            let expected = run(VIDRD_ISA_GENERIC)
            for isa in Self.vectorISAs {
                for (kernel, (got, want)) in zip(kernels, zip(run(isa), expected)) {
                    #expect(got == want, "\(kernel), n = \(n), isa \(isa)")
                }
            }
        }
    }

    @Test func softmaxIsStableForHugeScores() {
        var row: [Float] = [1e4, 1e4 - 1, -1e4, 3, 1e4, 0, 0, 0, 7, 1e4 - 2]
        row.withUnsafeMutableBufferPointer { softmaxRow($0.baseAddress!, count: $0.count) }
        #expect(row.allSatisfy { $0.isFinite && $0 >= 0 })
        #expect(abs(row.reduce(0, +) - 1) < 1e-6)
        let e0 = 1 / (2 + exp(-1.0) + exp(-2.0))
        #expect(abs(Double(row[0]) - e0) < 1e-6)
    }

    @Test func sinusoidalEmbeddingMatchesFormula() {
        let t = sinusoidalTimestepEmbedding([0, 500], dimension: 6, flipSinToCos: true, downscaleFreqShift: 0)
        for (n, ts) in [Float(0), 500].enumerated() {
            for i in 0..<3 {
                let arg = Double(ts) * exp(-log(10000.0) * Double(i) / 3)
                #expect(abs(Double(t.scalars[n * 6 + i]) - cos(arg)) < 1e-4)
                #expect(abs(Double(t.scalars[n * 6 + 3 + i]) - sin(arg)) < 1e-4)
            }
        }
    }
}
