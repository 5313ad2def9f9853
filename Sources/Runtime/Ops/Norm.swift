import CVidrdKernels
#if canImport(Glibc)
import Glibc
#endif

/// Group normalisation over channels-last data viewed as `[samples, positions, channels]`.
///
/// A "sample" is one image for 2-D norms, or one whole clip (all frames) for the temporal
/// layers, which diffusers normalises over `(C/g, F, H, W)` jointly. Statistics are accumulated
/// in Double to stay within PyTorch's rounding on large groups.
public struct GroupNorm: Sendable {
    public let groups: Int
    public let channels: Int
    public let eps: Float
    let gamma: [Float]
    let beta: [Float]

    public init(groups: Int, channels: Int, eps: Float, gamma: [Float], beta: [Float]) throws {
        guard groups > 0, channels % groups == 0 else {
            throw ModelError.invalidConfig("GroupNorm: \(channels) channels are not divisible into \(groups) groups")
        }
        precondition(gamma.count == channels && beta.count == channels)
        self.groups = groups
        self.channels = channels
        self.eps = eps
        self.gamma = gamma
        self.beta = beta
    }

    /// Normalises `samples` blocks of `positions * channels` scalars; optionally applies SiLU.
    ///
    /// Channels-last rows are processed whole: statistics accumulate per channel across rows
    /// (vectorised along the row), are folded into groups, and normalisation becomes one
    /// per-channel scale and shift over each row. Mean and variance use two passes (no
    /// E[x²] − E[x]² cancellation); the first pass sums `x − x₀` (x₀: the sample's first row) so
    /// that a large common offset does not swamp fp32 partial sums; partials combine in Double.
    func forward(_ src: UnsafePointer<Float>, samples: Int, positions: Int,
                 into dst: UnsafeMutablePointer<Float>, silu fuseSiLU: Bool = false) {
        let c = channels, cpg = channels / groups, groups = self.groups
        let chunkRows = Swift.max(1, Swift.min(positions, 256))
        let chunksPerSample = (positions + chunkRows - 1) / chunkRows
        let jobs = samples * chunksPerSample
        var partial = [Double](repeating: 0, count: jobs * c)
        var mean = [Double](repeating: 0, count: samples * groups)
        var scale = [Float](repeating: 0, count: samples * c)
        var means = [Float](repeating: 0, count: samples * c)
        let count = Double(positions * cpg)

        // Pass 1 and 2: per-channel sums of x − x₀, then of (x − mean)², in row chunks.
        func channelSums(_ centre: UnsafePointer<Double>?, into out: UnsafeMutablePointer<Double>) {
            parallelChunks(jobs) { range in
                var acc = [Float](repeating: 0, count: c)
                var shiftRow = [Float](repeating: 0, count: c)
                for job in range {
                    let sIdx = job / chunksPerSample, chunk = job % chunksPerSample
                    let r0 = chunk * chunkRows, r1 = Swift.min(positions, r0 + chunkRows)
                    for j in 0..<c { acc[j] = 0 }
                    if let centre {
                        for j in 0..<c { shiftRow[j] = Float(centre[sIdx * groups + j / cpg]) }
                    } else {
                        let first = src + sIdx * positions * c
                        for j in 0..<c { shiftRow[j] = first[j] }
                    }
                    acc.withUnsafeMutableBufferPointer { a in
                        shiftRow.withUnsafeBufferPointer { sh in
                            for r in r0..<r1 {
                                let row = src + (sIdx * positions + r) * c
                                if centre != nil {
                                    for j in 0..<c { let d = row[j] - sh[j]; a[j] += d * d }
                                } else {
                                    for j in 0..<c { a[j] += row[j] - sh[j] }
                                }
                            }
                        }
                    }
                    for j in 0..<c { out[job * c + j] = Double(acc[j]) }
                }
            }
        }
        partial.withUnsafeMutableBufferPointer { channelSums(nil, into: $0.baseAddress!) }
        for sIdx in 0..<samples {
            let first = src + sIdx * positions * c
            for g in 0..<groups {
                var t = 0.0
                for chunk in 0..<chunksPerSample {
                    let base = (sIdx * chunksPerSample + chunk) * c + g * cpg
                    for j in 0..<cpg { t += partial[base + j] }
                }
                // Undo the x₀ shift: every position contributed x₀ of its channel.
                var shiftSum = 0.0
                for j in 0..<cpg { shiftSum += Double(first[g * cpg + j]) }
                mean[sIdx * groups + g] = (t + shiftSum * Double(positions)) / count
            }
        }
        mean.withUnsafeBufferPointer { m in
            partial.withUnsafeMutableBufferPointer { channelSums(m.baseAddress!, into: $0.baseAddress!) }
        }
        for sIdx in 0..<samples {
            for g in 0..<groups {
                var t = 0.0
                for chunk in 0..<chunksPerSample {
                    let base = (sIdx * chunksPerSample + chunk) * c + g * cpg
                    for j in 0..<cpg { t += partial[base + j] }
                }
                let inv = 1 / (t / count + Double(eps)).squareRoot()
                let mu = mean[sIdx * groups + g]
                for j in 0..<cpg {
                    let ch = g * cpg + j
                    scale[sIdx * c + ch] = Float(Double(gamma[ch]) * inv)
                    // Subtracting the mean before scaling keeps x·a + b from cancelling large terms.
                    means[sIdx * c + ch] = Float(mu)
                }
            }
        }
        // Pass 3: y = (x − mean) · scale + beta (+ SiLU), whole rows at a time.
        scale.withUnsafeBufferPointer { scb in
          beta.withUnsafeBufferPointer { btb in
            means.withUnsafeBufferPointer { shb in
                let sc = scb.baseAddress!, sh = shb.baseAddress!, bt = btb.baseAddress!
                let isa = ComputeKernels.active.elementwiseISA
                parallelChunks(samples * positions, minimumChunk: 64) { range in
                    for r in range {
                        let sIdx = r / positions
                        vidrd_affine_row(isa, src + r * c, sc + sIdx * c, sh + sIdx * c, bt, dst + r * c, c, fuseSiLU ? 1 : 0)
                    }
                }
            }
          }
        }
    }

    /// Convenience for tests and boundary code: normalises `x` viewed as `[samples, -1, channels]`.
    public func callAsFunction(_ x: Tensor, samples: Int, silu: Bool = false) -> Tensor {
        var out = x
        let positions = x.count / (samples * channels)
        x.scalars.withUnsafeBufferPointer { s in
            out.scalars.withUnsafeMutableBufferPointer { d in
                forward(s.baseAddress!, samples: samples, positions: positions, into: d.baseAddress!, silu: silu)
            }
        }
        return out
    }
}

/// Layer normalisation over the last axis (PyTorch `nn.LayerNorm`, elementwise affine).
public struct LayerNorm: Sendable {
    public let features: Int
    public let eps: Float
    let gamma: [Float]
    let beta: [Float]

    public init(features: Int, eps: Float, gamma: [Float], beta: [Float]) {
        precondition(gamma.count == features && beta.count == features)
        self.features = features
        self.eps = eps
        self.gamma = gamma
        self.beta = beta
    }

    func forward(_ src: UnsafePointer<Float>, rows: Int, into dst: UnsafeMutablePointer<Float>) {
        let n = features
        let eps = self.eps
        gamma.withUnsafeBufferPointer { g in
            beta.withUnsafeBufferPointer { b in
                parallelChunks(rows, minimumChunk: 64) { range in
                    for r in range {
                        let row = src + r * n
                        let out = dst + r * n
                        let raw = UnsafeRawPointer(row)
                        var sumV = FloatV(repeating: 0)
                        var j = 0
                        while j + 8 <= n { sumV += raw.loadUnaligned(fromByteOffset: j * 4, as: FloatV.self); j += 8 }
                        var sum: Float = 0
                        for l in 0..<8 { sum += sumV[l] }
                        while j < n { sum += row[j]; j += 1 }
                        let mean = sum / Float(n)
                        let meanV = FloatV(repeating: mean)
                        var sqV = FloatV(repeating: 0)
                        j = 0
                        while j + 8 <= n {
                            let d = raw.loadUnaligned(fromByteOffset: j * 4, as: FloatV.self) - meanV
                            sqV += d * d
                            j += 8
                        }
                        var sq: Float = 0
                        for l in 0..<8 { sq += sqV[l] }
                        while j < n { let d = row[j] - mean; sq += d * d; j += 1 }
                        let inv = 1 / (sq / Float(n) + eps).squareRoot()
                        let invV = FloatV(repeating: inv)
                        let gp = UnsafeRawPointer(g.baseAddress!), bp = UnsafeRawPointer(b.baseAddress!)
                        j = 0
                        while j + 8 <= n {
                            let x = raw.loadUnaligned(fromByteOffset: j * 4, as: FloatV.self)
                            let y = (x - meanV) * invV * gp.loadUnaligned(fromByteOffset: j * 4, as: FloatV.self)
                                + bp.loadUnaligned(fromByteOffset: j * 4, as: FloatV.self)
                            UnsafeMutableRawPointer(out).storeBytes(of: y, toByteOffset: j * 4, as: FloatV.self)
                            j += 8
                        }
                        while j < n { out[j] = (row[j] - mean) * inv * g[j] + b[j]; j += 1 }
                    }
                }
            }
        }
    }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var out = x
        x.scalars.withUnsafeBufferPointer { s in
            out.scalars.withUnsafeMutableBufferPointer { d in
                forward(s.baseAddress!, rows: x.count / features, into: d.baseAddress!)
            }
        }
        return out
    }
}
